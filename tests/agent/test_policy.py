"""The agent's pure policy: each backstop, heartbeats, and what must NOT power a VM off."""

from __future__ import annotations

from yoyo_control.agent.policy import (
    AgentState,
    Kill,
    Metrics,
    Observation,
    PoolView,
    Settings,
    step,
)

S = Settings(
    pool="gpu",
    instance="vm-0",
    boot_id="b1",
    heartbeat_interval_s=30,
    idle_shutdown_s=600,
    deadman_grace_s=300,
    poweroff_retry_s=20,
)
T0 = 1_800_000_000.0
LEASED = PoolView(lease_deadline=T0 + 3600, updated_at=T0)
BUSY = Metrics(running=1, waiting=0, succeeded=0)
IDLE = Metrics(running=0, waiting=0, succeeded=0)


NO_KILL = Kill(False)


def obs(now: float, metrics=IDLE, kill=NO_KILL, pool=LEASED, preempted=False) -> Observation:
    return Observation(now, metrics, kill, pool, preempted)


def test_kill_switch_powers_off_a_busy_vm() -> None:
    state = AgentState(started_at=T0)
    state, verdict = step(state, obs(T0 + 1, BUSY, Kill(True, "budget: 10 of 10", "budget")), S)
    assert verdict.poweroff is not None and "kill switch" in verdict.poweroff
    assert "budget" in verdict.poweroff
    assert verdict.heartbeat is None


def test_idle_backstop_powers_off_after_idle_shutdown_without_work() -> None:
    state = AgentState(started_at=T0)
    state, v = step(state, obs(T0 + 599), S)
    assert v.poweroff is None
    state, v = step(state, obs(T0 + 600), S)
    assert v.poweroff is not None and v.poweroff.startswith("idle backstop")


def test_work_resets_the_idle_clock() -> None:
    state = AgentState(started_at=T0)
    state, _ = step(state, obs(T0 + 500, BUSY), S)
    state, v = step(state, obs(T0 + 1000), S)
    assert v.poweroff is None  # idle for 500s only
    state, v = step(state, obs(T0 + 1100), S)
    assert v.poweroff is not None


def test_a_finished_request_counts_as_work_even_if_never_seen_running() -> None:
    state = AgentState(started_at=T0)
    state, _ = step(state, obs(T0 + 10, Metrics(0, 0, 3)), S)
    state, _ = step(state, obs(T0 + 500, Metrics(0, 0, 4)), S)
    assert state.last_request_at == T0 + 500
    _, v = step(state, obs(T0 + 1000, Metrics(0, 0, 4)), S)
    assert v.poweroff is None


def test_a_request_finished_before_the_agents_first_look_counts() -> None:
    # The woken VM's first request can be answered within one poll of the server's start.
    state = AgentState(started_at=T0)
    state, _ = step(state, obs(T0 + 5, Metrics(0, 0, 1)), S)
    assert state.last_request_at == T0 + 5
    state, _ = step(state, obs(T0 + 6, Metrics(0, 0, 1)), S)
    assert state.last_request_at == T0 + 5  # nothing new finished


def test_a_restarted_server_counts_from_zero_again() -> None:
    state = AgentState(started_at=T0)
    state, _ = step(state, obs(T0 + 5, Metrics(0, 0, 40)), S)
    state, _ = step(state, obs(T0 + 300, Metrics(0, 0, 2)), S)  # restarted, served 2
    assert state.last_request_at == T0 + 300
    state, _ = step(state, obs(T0 + 301, Metrics(0, 0, 2)), S)
    assert state.last_request_at == T0 + 300


def test_unreachable_metrics_count_as_idle() -> None:
    state = AgentState(started_at=T0)
    _, v = step(state, obs(T0 + 600, metrics=None), S)
    assert v.poweroff is not None and "idle" in v.poweroff


def test_dead_man_switch_needs_no_lease_and_a_silent_control_plane() -> None:
    expired = PoolView(lease_deadline=T0 + 100, updated_at=T0)
    state = AgentState(started_at=T0)
    # Lease over, but the control plane still has its grace to act.
    state, v = step(state, obs(T0 + 399, BUSY, pool=expired), S)
    assert v.poweroff is None
    state, v = step(state, obs(T0 + 400, BUSY, pool=expired), S)
    assert v.poweroff is not None and v.poweroff.startswith("dead-man")


def test_a_control_plane_that_writes_keeps_the_dead_man_switch_quiet() -> None:
    state = AgentState(started_at=T0)
    released = PoolView(lease_deadline=None, updated_at=T0 + 1000)
    _, v = step(state, obs(T0 + 1200, BUSY, pool=released), S)
    assert v.poweroff is None


def test_valid_lease_never_trips_the_dead_man_switch_however_old_the_pool_doc() -> None:
    state = AgentState(started_at=T0)
    old = PoolView(lease_deadline=T0 + 10_000, updated_at=T0 - 10_000)
    _, v = step(state, obs(T0 + 5000, BUSY, pool=old), S)
    assert v.poweroff is None


def test_an_unreadable_store_decides_nothing_but_the_idle_backstop_holds() -> None:
    state = AgentState(started_at=T0)
    state, v = step(state, obs(T0 + 400, BUSY, kill=None, pool=None), S)
    assert v.poweroff is None
    _, v = step(state, obs(T0 + 1000, IDLE, kill=None, pool=None), S)
    assert v.poweroff is not None and "idle" in v.poweroff


def test_poweroff_is_reissued_only_after_the_retry_delay() -> None:
    state = AgentState(started_at=T0)
    kill = Kill(True, "stop", "op")
    state, v1 = step(state, obs(T0 + 1, kill=kill), S)
    state, v2 = step(state, obs(T0 + 10, kill=kill), S)
    state, v3 = step(state, obs(T0 + 21, kill=kill), S)
    assert v1.poweroff and v2.poweroff is None and v3.poweroff


def test_heartbeats_every_interval_and_at_once_on_turning_busy() -> None:
    state = AgentState(started_at=T0)
    state, v = step(state, obs(T0), S)
    assert v.heartbeat == {
        "pool": "gpu",
        "instance": "vm-0",
        "boot_id": "b1",
        "sent_at": T0,
        "busy": False,
        "ready": True,
        "running": 0,
        "waiting": 0,
        "last_request_at": None,
    }
    state, v = step(state, obs(T0 + 10), S)
    assert v.heartbeat is None
    state, v = step(state, obs(T0 + 11, Metrics(2, 1, 0)), S)
    assert v.heartbeat is not None and v.heartbeat["busy"] and v.note == "busy"
    assert (v.heartbeat["running"], v.heartbeat["waiting"]) == (2, 1)
    assert v.heartbeat["last_request_at"] == T0 + 11
    state, v = step(state, obs(T0 + 41, Metrics(2, 1, 0)), S)
    assert v.heartbeat is not None


def test_turning_idle_waits_for_the_interval_and_short_idle_spells_cost_nothing() -> None:
    state = AgentState(started_at=T0)
    state, v = step(state, obs(T0, BUSY), S)
    assert v.heartbeat is not None and v.heartbeat["busy"]
    state, v = step(state, obs(T0 + 5), S)  # idle: noted, not sent
    assert v.heartbeat is None and v.note == "idle"
    state, v = step(state, obs(T0 + 8, BUSY), S)  # busy again: the last report said busy
    assert v.heartbeat is None
    state, v = step(state, obs(T0 + 20), S)
    assert v.heartbeat is None
    state, v = step(state, obs(T0 + 30), S)  # the interval: idle is reported …
    assert v.heartbeat is not None and not v.heartbeat["busy"]
    assert v.heartbeat["last_request_at"] == T0 + 8  # … with when work was last seen
    state, v = step(state, obs(T0 + 31, BUSY), S)  # and turning busy goes out at once
    assert v.heartbeat is not None and v.heartbeat["busy"]


def test_a_loading_server_is_reported_not_ready_and_its_answer_at_once() -> None:
    state = AgentState(started_at=T0)
    state, v = step(state, obs(T0, None), S)  # the model is loading: /metrics does not answer
    assert v.heartbeat is not None and v.heartbeat["ready"] is False
    state, v = step(state, obs(T0 + 5, None), S)
    assert v.heartbeat is None  # nothing changed
    state, v = step(state, obs(T0 + 6), S)  # it answers: say so now, not at the next interval
    assert v.heartbeat is not None and v.heartbeat["ready"] is True and v.note == "ready"


def test_preemption_sends_one_marked_heartbeat_and_does_not_power_off() -> None:
    state = AgentState(started_at=T0)
    state, _ = step(state, obs(T0), S)
    state, v = step(state, obs(T0 + 1, BUSY, preempted=True), S)
    assert v.poweroff is None
    assert v.heartbeat is not None and v.heartbeat_attributes == {"preempted": "true"}
    state, v = step(state, obs(T0 + 2, BUSY, preempted=True), S)
    assert v.heartbeat is None


def test_heartbeats_announce_the_inference_address_when_configured() -> None:
    from dataclasses import replace

    _, v = step(AgentState(started_at=T0), obs(T0), replace(S, address="10.0.0.5:8000"))
    assert v.heartbeat is not None and v.heartbeat["address"] == "10.0.0.5:8000"
    _, v = step(AgentState(started_at=T0), obs(T0), S)
    assert v.heartbeat is not None and "address" not in v.heartbeat
