"""sim/autoscale.py: VMs with a capacity, Knative's KPA and the oracle (bench/autoscale.py)."""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.sim.autoscale import AutoscaleParams, Kpa, Server, oracle, simulate
from yoyo_control.sim.loadgen import HELD_OUT, TUNED, Arrival, build

SHORT = replace(TUNED["conv-x4"], minutes=8)  # 2 simulated minutes at four times the rate


def test_a_vm_past_its_throughput_slows_every_sequence() -> None:
    server = Server(max_num_seqs=64, tokens_per_s=3000, seq_tokens_per_s=50)
    assert server.full_speed_seqs == 60
    assert server.work(Arrival(0.0, 1000, 100)) == (20.0, 120.0)


def test_each_policy_serves_every_request_once_and_is_deterministic() -> None:
    arrivals = build(SHORT)
    params = AutoscaleParams()
    for kind in ("today", "kpa", "yoyo"):
        first = simulate(arrivals, kind, params)
        assert first.unserved == 0 or kind == "today"
        assert len(first.ttft) + first.unserved == len(arrivals) or kind == "today"
        again = simulate(arrivals, kind, params)
        assert (again.vm_hours, again.ttft, again.boots) == (
            first.vm_hours,
            first.ttft,
            first.boots,
        )


def test_load_adds_vms_that_todays_rule_never_adds() -> None:
    arrivals = build(SHORT)
    params = AutoscaleParams()
    today, yoyo = simulate(arrivals, "today", params), simulate(arrivals, "yoyo", params)
    assert today.max_vms == 1 < yoyo.max_vms
    assert yoyo.p(99) < today.p(99)


def test_kpa_panics_on_a_burst_and_holds_then_scales_down_in_the_stable_window() -> None:
    kpa = Kpa(target=10)
    assert kpa.tick(0.0, 5, ready=1) == 1
    assert kpa.tick(2.0, 100, ready=1) >= 2  # panic: the 6 s window wants ≥ 2× the ready pods
    wanted = [kpa.tick(t, 5, ready=5) for t in range(4, 60, 2)]
    assert min(wanted) >= wanted[0] == max(wanted)  # panic mode never scales down
    ready = wanted[-1]
    for t in range(60, 200, 2):  # the pods it asks for are the pods that are ready
        ready = kpa.tick(t, 5, ready=ready)
    assert ready == 1


def test_kpa_scales_to_zero_after_the_stable_window_and_grace() -> None:
    kpa = Kpa(target=10)
    kpa.tick(0.0, 5, ready=1)
    assert [kpa.tick(t, 0, ready=1) for t in (60.0, 88.0)] == [1, 1]
    assert kpa.tick(92.0, 0, ready=1) == 0


def test_the_oracle_needs_no_wait_and_pays_each_boot() -> None:
    params = AutoscaleParams()
    arrivals = [Arrival(float(t), 50, 100) for t in range(0, 600, 1)]
    result = oracle(arrivals, params)
    assert result.max_vms == 1 and result.boots == 1
    assert result.vm_hours * 3600 >= 600 + params.machine.ready.mean_s


def test_the_held_out_transforms_differ_from_the_tuned_ones() -> None:
    assert not set(map(str, HELD_OUT.values())) & set(map(str, TUNED.values()))
