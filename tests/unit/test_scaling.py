"""Scaling on load (decide.running + domain/scaling.py): a pool grows with its load,
holds the VMs for the stable window, shrinks after it, never stops a VM with work in
flight or still loading, and never scales out past a spend cap (README "Scaling on
load")."""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.domain import scaling
from yoyo_control.domain.decide import decide
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    Ledger,
    Load,
    PoolPolicy,
    PoolState,
    Rule,
)

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
VMS = ("vm-0", "vm-1", "vm-2")
POLICY = PoolPolicy(
    pool="p",
    zone="z",
    instances=VMS,
    hourly_price_usd=3.6,
    keepalive="fixed",
    scale_window_s=60.0,
    scale_backlog_weight=1.0,
)
OFF = KillSwitch()


def lease() -> Lease:
    return Lease("wake", ("request",), 1, T0, T0 + 1800, T0 + 8 * 3600)


def up(name: str, since: float = T0 - 600) -> Instance:
    start = ActionRecord(ActionKind.START, 1, f"rid-{name}", since, "test", outcome="done")
    return Instance(name, Desired.RUNNING, "RUNNING", since, since, last_action=start)


def beat(name: str, at: float, running: int = 0, waiting: int = 0) -> Heartbeat:
    busy = running + waiting > 0
    return Heartbeat(
        name,
        "b1",
        at,
        at,
        busy=busy,
        running=running,
        waiting=waiting,
        last_busy_at=at if busy else None,
        ready_since=T0 - 500,
    )


def pool(*running: str, beats: tuple[Heartbeat, ...] = (), **kw: object) -> PoolState:
    instances = {n: up(n) for n in running}
    hbs = {hb.instance: hb for hb in beats}
    return PoolState(pool="p", epoch=1, lease=lease(), instances=instances, heartbeats=hbs, **kw)


def starts(d) -> list[str]:
    return sorted(a.instance for a in d.actions if a.kind == ActionKind.START)


def stops(d) -> list[str]:
    return sorted(a.instance for a in d.actions if a.kind == ActionKind.STOP)


def test_regression_online_load_on_one_vm_adds_vms() -> None:
    """Issue 27: with no producer queue, rule 4 ran one VM whatever the load (here 456
    requests on one VM, two VMs' worth at the default target): the pool must grow."""
    state = pool("vm-0", beats=(beat("vm-0", T0, running=256, waiting=200),))
    d = decide(state, OFF, POLICY, T0)
    assert starts(d) == ["vm-1"]  # 456 requests > 230.4 (90 % of 256 sequences)


def test_target_defaults_to_ninety_percent_of_the_servers_sequences() -> None:
    assert PoolPolicy(pool="p").target == 256 * 0.9
    assert PoolPolicy(pool="p", max_num_seqs=10).target == 9.0
    assert PoolPolicy(pool="p", scale_target=32).target == 32.0


def test_a_gateway_report_scales_out_at_once_and_counts_held_requests() -> None:
    policy = replace(POLICY, scale_target=10)
    load = Load(in_flight=12, held=9, observed_at=T0, updated_at=T0)
    d = decide(pool("vm-0", beats=(beat("vm-0", T0, running=12),), load=load), OFF, policy, T0)
    assert starts(d) == ["vm-1", "vm-2"]  # 12 + 9 = 21 → 3 VMs
    assert {a.rule for a in d.actions} == {Rule.LOAD}  # each start says why
    assert any(c.rule == Rule.LOAD and "scale out to 3" in c.reason for c in d.changes)


def test_gateway_and_vms_are_not_double_counted() -> None:
    policy = replace(POLICY, scale_target=10)
    load = Load(in_flight=9, observed_at=T0, updated_at=T0)
    d = decide(pool("vm-0", beats=(beat("vm-0", T0, running=9),), load=load), OFF, policy, T0)
    assert starts(d) == []


def test_a_stale_gateway_report_counts_for_nothing() -> None:
    policy = replace(POLICY, scale_target=10)
    load = Load(in_flight=50, observed_at=T0 - 1000, updated_at=T0 - 1000)
    d = decide(pool("vm-0", beats=(beat("vm-0", T0),), load=load), OFF, policy, T0)
    assert starts(d) == []


def test_scale_in_waits_for_the_stable_window_then_stops_only_idle_vms() -> None:
    policy = replace(POLICY, scale_target=10)
    busy = (beat("vm-0", T0, running=10), beat("vm-1", T0, running=10), beat("vm-2", T0, 10))
    state = decide(pool(*VMS, beats=busy), OFF, policy, T0).state
    assert state.load.vms == 3
    # The load drops to one VM's worth on vm-2: the others are idle but within the window.
    quiet = (beat("vm-0", T0 + 30), beat("vm-1", T0 + 30), beat("vm-2", T0 + 30, running=5))
    d = decide(replace(state, heartbeats={h.instance: h for h in quiet}), OFF, policy, T0 + 30)
    assert stops(d) == []
    later = {h.instance: replace(h, received_at=T0 + 61) for h in quiet}
    d = decide(replace(d.state, heartbeats=later), OFF, policy, T0 + 61)
    assert stops(d) == ["vm-0", "vm-1"]  # vm-2 has work in flight: never it
    assert any(c.rule == Rule.LOAD and "scale in to 1" in c.reason for c in d.changes)


def test_scale_in_never_stops_a_vm_with_work_even_below_the_target() -> None:
    policy = replace(POLICY, scale_target=100)
    beats = tuple(beat(n, T0, running=1) for n in VMS)
    d = decide(pool(*VMS, beats=beats, load=Load(vms=3, marks=((3, T0 - 30),))), OFF, policy, T0)
    assert stops(d) == []


def test_scale_in_never_stops_a_vm_still_loading() -> None:
    policy = replace(POLICY, scale_target=10)
    booting = Instance(
        "vm-1",
        Desired.RUNNING,
        "RUNNING",
        T0 - 20,
        T0 - 20,
        last_action=ActionRecord(ActionKind.START, 1, "rid-b", T0 - 30, "load", outcome="done"),
    )
    state = pool("vm-0", beats=(beat("vm-0", T0),), load=Load(vms=2, marks=((2, T0 - 30),)))
    state = replace(state, instances={**state.instances, "vm-1": booting})
    d = decide(state, OFF, policy, T0)
    assert stops(d) == []


def test_a_scale_out_that_would_cross_the_daily_cap_is_refused() -> None:
    # 08:00 UTC: 16 h left. One VM up at 3.6/h → 57.6 more today; a second → 115.2.
    policy = replace(POLICY, scale_target=10, daily_cap_usd=100.0)
    state = pool("vm-0", beats=(beat("vm-0", T0, running=30),))
    d = decide(state, OFF, policy, T0)
    assert starts(d) == []
    assert stops(d) == []  # the VM up keeps serving
    refused = [c for c in d.changes if c.rule == Rule.SCALE_CAP]
    assert refused and "daily cap 100.00 would be crossed" in refused[0].reason
    assert d.state.load.refused
    # Said once, not at every decision while it holds.
    again = decide(d.state, OFF, policy, T0 + 5)
    assert not [c for c in again.changes if c.rule == Rule.SCALE_CAP]


def test_a_scale_out_is_granted_in_part_up_to_what_the_cap_allows() -> None:
    policy = replace(POLICY, scale_target=10, daily_cap_usd=120.0)
    d = decide(pool("vm-0", beats=(beat("vm-0", T0, running=30),)), OFF, policy, T0)
    assert len(starts(d)) == 1


def test_the_overall_cap_counts_other_pools_spend() -> None:
    from yoyo_control.domain.spend import Spend

    policy = replace(POLICY, scale_target=10)
    day, month = "2027-01-15", "2027-01"
    spend = Spend(day, month, 80.0, 80.0, daily_cap_usd=150.0)
    state = pool("vm-0", beats=(beat("vm-0", T0, running=30),))
    state = replace(state, ledger=Ledger(day, month, 0.0, 0.0, T0))
    d = decide(state, OFF, policy, T0, spend=spend)
    assert starts(d) == []
    assert any("overall daily cap" in c.reason for c in d.changes if c.rule == Rule.SCALE_CAP)


def test_track_holds_the_most_wanted_within_the_window() -> None:
    load = scaling.track(Load(), 5, T0, 60)
    load = scaling.track(load, 3, T0 + 30, 60)
    load = scaling.track(load, 1, T0 + 50, 60)
    assert load.vms == 5
    load = scaling.track(load, 1, T0 + 61, 60)
    assert load.vms == 3  # the most wanted in (T0 + 1, T0 + 61]
    load = scaling.track(load, 1, T0 + 91, 60)
    assert load.vms == 1
    assert scaling.track(load, 1, T0 + 92, 60) is load  # nothing to write
    assert scaling.track(Load(), 0, T0, 60) == Load()


def test_a_heartbeat_matters_when_its_load_crosses_a_half_target_step() -> None:
    policy = replace(POLICY, scale_target=10)
    assert scaling.load_matters(beat("vm-0", T0, running=4), beat("vm-0", T0, 6), policy)
    assert not scaling.load_matters(beat("vm-0", T0, running=1), beat("vm-0", T0, 4), policy)


def test_a_load_report_lands_on_the_pool_and_an_older_one_is_ignored() -> None:
    from yoyo_control.domain.facts import LoadReported, apply_fact

    state, _ = apply_fact(pool("vm-0"), LoadReported("m1", T0, "p", 7, 2), POLICY, T0 + 1)
    assert (state.load.in_flight, state.load.held, state.load.updated_at) == (7, 2, T0 + 1)
    older, _ = apply_fact(state, LoadReported("m0", T0 - 5, "p", 99, 99), POLICY, T0 + 2)
    assert older.load == state.load


def test_the_gateway_reports_on_a_step_on_the_end_and_every_30s() -> None:
    assert not scaling.report_due(None, 0, 0, T0, 10)
    assert scaling.report_due(None, 1, 0, T0, 10)
    assert not scaling.report_due((1, 0, T0), 3, 0, T0 + 1, 10)
    assert scaling.report_due((1, 0, T0), 6, 0, T0 + 1, 10)  # crossed 5
    assert scaling.report_due((1, 0, T0), 1, 1, T0 + 1, 10)  # started holding
    assert scaling.report_due((1, 0, T0), 1, 0, T0 + 30, 10)
    assert scaling.report_due((1, 0, T0), 0, 0, T0 + 1, 10)  # the load ended
    assert not scaling.report_due((0, 0, T0), 0, 0, T0 + 99, 10)


def test_queued_requests_count_at_the_backlog_weight() -> None:
    policy = replace(POLICY, scale_target=10, scale_backlog_weight=0.5)
    load = Load(in_flight=10, held=20, observed_at=T0, updated_at=T0)
    beats = {"vm-0": beat("vm-0", T0, running=8, waiting=2)}
    assert scaling.concurrency(load, beats, policy, T0) == 8 + 11  # 8 running, (2 + 20) / 2


def test_status_says_a_refused_scale_out() -> None:
    from yoyo_control.cli.status import _pool_lines
    from yoyo_control.statusview import PoolView

    policy = replace(POLICY, scale_target=10, daily_cap_usd=100.0)
    d = decide(pool("vm-0", beats=(beat("vm-0", T0, running=30),)), OFF, policy, T0)
    view = PoolView("p", policy, d.state, T0, instances=[], zones=[], decisions=[])
    text = "\n".join(_pool_lines(view, T0))
    assert "scale:    scale-out refused (0 of 2 VM(s) added): daily cap 100.00" in text


def test_a_stopped_vms_late_heartbeat_does_not_count_as_one_serving() -> None:
    """Found by the stateful suite: vm-0 loading, vm-1 stopped but its (delayed) ready
    heartbeat still fresh; it was counted as the VM that serves while one loads, so a
    second VM started for no load at all."""
    booting = Instance(
        "vm-0",
        Desired.RUNNING,
        "RUNNING",
        T0 - 30,
        T0 - 30,
        last_action=ActionRecord(ActionKind.START, 1, "rid-0", T0 - 40, "t", outcome="done"),
    )
    state = pool(beats=(beat("vm-1", T0 - 60),))
    state = replace(state, instances={"vm-0": booting})
    assert starts(decide(state, OFF, POLICY, T0)) == []


def test_the_queue_topic_decodes_a_gateway_load_report() -> None:
    import json

    import pytest

    from yoyo_control import messages
    from yoyo_control.config import parse_config
    from yoyo_control.domain.facts import LoadReported
    from yoyo_control.errors import InvalidMessage

    config = parse_config({"pools": {"p": {"instances": ["vm-0"]}}})

    def msg(doc: object) -> messages.PubSubMessage:
        return messages.PubSubMessage(json.dumps(doc).encode(), "m-1", T0, {})

    fact = messages.decode_queue(msg({"pool": "p", "in_flight": 7, "held": 2}), config)
    assert fact == LoadReported("m-1", T0, "p", 7, 2)
    bad = (
        {"pool": "p", "in_flight": -1},
        {"pool": "p", "held": 1.5},
        {"pool": "p", "held": 1, "x": 0},
    )
    for doc in bad:
        with pytest.raises(InvalidMessage):
            messages.decode_queue(msg(doc), config)


def test_the_gateway_gets_the_fact_to_hand_over_or_none() -> None:
    fact = scaling.load_report("p", None, 6, 2, T0, 10, reporter="gw-1")
    assert fact is not None and (fact.pool, fact.in_flight, fact.held) == ("p", 6, 2)
    assert fact.message_id == f"gateway-load-p-gw-1-{int(T0 * 1000)}"
    assert scaling.load_report("p", (6, 2, T0), 6, 2, T0 + 1, 10) is None
