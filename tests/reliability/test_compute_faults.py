"""Compute faults through Service + SQLite + the simulated Compute, over simulated minutes.

- 429, 5xx and timeouts are retried with the same request id on a doubling backoff, a
  bounded number of times, then recorded as a permanent error on the pool document (where
  ``yoyoctl status`` reads it: ``Instance.error`` and ``last_action.outcome``);
- quota and "instance not found" are permanent at once: one call, recorded, not retried;
- a stop is never abandoned: when Compute recovers the VM is stopped;
- an operation that never finishes is bounded too (bug B4), and a retry never reuses a
  request id whose operation is long finished (bugs B2, B2b);
- one pool's failing Compute calls do not starve the other pools (bug B8).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from reliability.harness import Crash, World, pool_config, quiet_logs, scratch_dir
from reliability.invariants import TALLY
from yoyo_control.domain.facts import KillRequested, RunRequested, StopRequested, Tick
from yoyo_control.domain.model import OutcomeKind
from yoyo_control.errors import TemporaryError

SUITE = "compute-faults"


def config(**policy: Any) -> Any:
    defaults: dict[str, Any] = {
        "instances": ("vm-0",),
        "action_retry_s": 60,
        "max_action_attempts": 4,
        "lease_s": 3600,
        "idle_timeout_s": 3600,
        "heartbeat_gap_s": 600,
        "boot_grace_s": 900,
    }
    defaults.update(policy)
    return pool_config(**defaults)


@pytest.fixture
def world() -> Iterator[World]:
    with scratch_dir() as directory, quiet_logs():
        w = World.build(config(), directory)
        try:
            yield w
        finally:
            w.close()


def deliver(w: World, fact: Any) -> str:
    try:
        w.service.handle(fact)
    except TemporaryError as exc:
        return f"temporary: {exc}"
    return "ok"


def ticks(w: World, minutes: int) -> list[str]:
    """A tick at every minute for ``minutes`` (a tick that raises would be redelivered)."""
    results = []
    for _ in range(minutes):
        w.clock.advance(60)
        results.append(deliver(w, Tick(f"tick-{w.clock.now():.0f}", w.clock.now())))
    return results


def run(w: World) -> str:
    now = w.clock.now()
    return deliver(w, RunRequested(f"run-{now:.0f}", now, "gpu", "cycle", "nightly", 3600))


def instance(w: World) -> Any:
    return w.store.get_pool("gpu").instances["vm-0"]


@pytest.mark.parametrize("kind", ["429", "503", "hang"])
def test_temporary_start_failures_back_off_then_become_a_recorded_error(
    world: World, kind: str
) -> None:
    w = world
    w.sim.fail_next(kind, 100, ("start",))
    assert run(w).startswith("temporary")
    ticks(w, 30)
    calls = w.sim.calls_for("vm-0", "start")
    TALLY[SUITE]["bounded-retries"].add(relevant=True)
    assert len(calls) == 4, [(c.at, c.result) for c in calls]  # max_action_attempts
    assert len({c.request_id for c in calls}) == 1  # one request id: Compute can deduplicate
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert gaps == [60, 120, 240], gaps  # action_retry_s doubling
    inst = instance(w)
    assert inst.error is not None and "gave up after 4 attempts" in inst.error
    assert inst.last_action.outcome == OutcomeKind.ERROR
    assert inst.last_action.detail.startswith("gave up after 4 attempts")
    assert w.store.get_pool("gpu").lease is None  # nothing can run under it: released


def test_the_event_log_says_when_retries_gave_up(world: World) -> None:
    """B5 (fixed in 42c50c1): the last attempt was logged as 'retry', not 'gave up'."""
    w = world
    w.sim.fail_next("503", 100, ("start",))
    run(w)
    ticks(w, 30)
    assert "gave up after 4 attempts" in (instance(w).error or "")
    reasons = [e.reason for e in w.all_events() if e.kind == "action"]
    assert any("gave up after 4 attempts" in r for r in reasons), reasons[-1]


def test_a_start_whose_answer_was_lost_runs_once_and_is_known_at_the_next_tick(
    world: World,
) -> None:
    w = world
    w.sim.fail_next("lost", 1, ("start",))  # it acted; the answer never came back
    assert run(w).startswith("temporary")
    assert w.sim.running("vm-0")
    ticks(w, 5)
    TALLY[SUITE]["no-duplicate-start"].add(relevant=True)
    assert len(w.sim.acted_starts()) == 1
    assert instance(w).observed == "RUNNING" and instance(w).error is None


@pytest.mark.parametrize(
    ("fault", "error"),
    [("quota", "quota exceeded"), ("not-found", "not found")],
)
def test_quota_and_not_found_are_permanent_at_once(world: World, fault: str, error: str) -> None:
    w = world
    if fault == "quota":
        w.sim.fail_next("quota", 100, ("start",))
    else:
        w.sim.delete("vm-0")
    assert run(w) == "ok"  # recorded and acknowledged: redelivering would not help
    ticks(w, 30)
    calls = w.sim.calls_for("vm-0", "start")
    TALLY[SUITE]["permanent-at-once"].add(relevant=True)
    assert len(calls) == 1, calls
    inst = instance(w)
    assert inst.error is not None and error in inst.error.lower()
    assert inst.last_action.outcome in (OutcomeKind.ERROR, OutcomeKind.NOT_FOUND)
    assert w.store.get_pool("gpu").lease is None
    # The next lease clears the error and tries again, once.
    if fault == "quota":
        w.sim.faults.clear()
    else:
        w.sim.recreate("vm-0")
    assert run(w) == "ok"
    ticks(w, 1)  # a missing instance is started once a tick has seen it exist again
    assert len(w.sim.calls_for("vm-0", "start")) == 2 and w.sim.running("vm-0")


@pytest.mark.parametrize("kind", ["429", "503", "hang"])
def test_a_failing_stop_is_retried_until_compute_recovers(world: World, kind: str) -> None:
    w = world
    assert run(w) == "ok" and w.sim.running("vm-0")
    w.sim.fail_next(kind, 6, ("stop",))  # more than max_action_attempts
    assert deliver(w, StopRequested("stop-1", w.clock.now(), "gpu", "alice", "done")).startswith(
        "temporary"
    )
    results = ticks(w, 30)
    TALLY[SUITE]["stop-never-abandoned"].add(relevant=True)
    assert not w.sim.running("vm-0"), results
    stops = w.sim.calls_for("vm-0", "stop")
    assert len(stops) == 7 and stops[-1].result == "ok"
    gaps = [b.at - a.at for a, b in itertools.pairwise(stops)]
    assert min(gaps) >= 60  # never faster than action_retry_s
    assert instance(w).observed == "TERMINATED"


def test_a_failing_list_fails_the_tick_and_the_next_tick_heals(world: World) -> None:
    w = world
    assert run(w) == "ok"
    w.clock.advance(4000)  # the lease is long over
    w.sim.fail_next("503", 1, ("list",))
    outcome = deliver(w, Tick("t-1", w.clock.now()))
    assert outcome.startswith("temporary") and "list instances" in outcome, outcome
    assert w.sim.running("vm-0")  # nothing was decided on a failed observation
    assert deliver(w, Tick("t-1", w.clock.now())) == "ok"  # Pub/Sub redelivers it
    assert not w.sim.running("vm-0")


def test_a_start_operation_that_never_finishes_becomes_a_recorded_error(world: World) -> None:
    w = world
    w.sim.mode, w.sim.stuck_steps = "stuck", 10**6
    assert run(w).startswith("temporary")
    w.sim.mode = "instant"  # only that one operation hangs
    for _ in range(30):
        ticks(w, 1)
        w.sim.advance()
    inst = instance(w)
    starts = w.sim.calls_for("vm-0", "start")
    assert inst.error is not None and "gave up after 4 attempts" in inst.error, (
        f"after 30 minutes: observed {inst.observed}, {len(starts)} start call(s), "
        f"last action {inst.last_action}"
    )
    assert not w.sim.running("vm-0")


def test_a_stop_operation_that_never_finishes_becomes_a_recorded_error(world: World) -> None:
    w = world
    assert run(w) == "ok"
    w.sim.mode, w.sim.stuck_steps = "stuck", 10**6
    deliver(w, StopRequested("stop-1", w.clock.now(), "gpu", "alice", "done"))
    w.sim.mode = "instant"
    for _ in range(30):
        ticks(w, 1)
        w.sim.advance()
    inst = instance(w)
    stops = w.sim.calls_for("vm-0", "stop")
    assert inst.last_action.outcome in (OutcomeKind.ERROR, OutcomeKind.NOT_FOUND), (
        f"after 30 minutes: observed {inst.observed}, {len(stops)} stop call(s), "
        f"last action {inst.last_action}"
    )


def test_a_stale_retry_does_not_reuse_a_spent_request_id(world: World) -> None:
    """B2 (fixed in 42c50c1): the retry re-sent a spent request id; the no-op counted as done."""
    w = world
    assert run(w) == "ok"
    w.sim.fail_next("lost", 1, ("stop",))  # the stop acts; its answer is lost
    kill = KillRequested("kill-1", w.clock.now(), "maintenance", "ops")
    assert deliver(w, kill).startswith("temporary")
    assert not w.sim.running("vm-0")
    ticks(w, 1)  # the tick sees the VM stopped
    assert instance(w).observed == "TERMINATED"
    w.clock.advance(30)
    assert w.sim.console_start("vm-0")  # someone starts it by hand, kill switch engaged
    ticks(w, 1)  # the next tick must stop it
    TALLY[SUITE]["stale-request-id"].add(relevant=True)
    stop = w.sim.calls_for("vm-0", "stop")[-1]
    assert not w.sim.running("vm-0"), (
        f"the tick re-sent stop {stop.request_id[:8]} (acted={stop.acted}) and recorded "
        f"{instance(w).observed} while the VM runs"
    )


def test_a_failing_pool_does_not_starve_the_other_pools() -> None:
    """B8 (fixed in 42c50c1): one pool's TemporaryError ended the tick and reconcile_all."""
    both = config(
        max_action_attempts=1,  # every failure gives up: a fresh stop at every tick
        extra_pools={"cpu": {"zone": "z", "instances": ["cpu-0"], "hourly_price_usd": 0.36}},
    )
    with scratch_dir() as directory, quiet_logs():
        w = World.build(both, directory)
        try:
            assert run(w) == "ok"
            cpu = RunRequested("run-cpu", w.clock.now(), "cpu", "cycle", "nightly", 3600)
            assert deliver(w, cpu) == "ok" and w.sim.running("cpu-0")
            w.sim.fail_next("503", 1000, ("stop",), instances=("vm-0",))  # gpu's stops fail
            kill = KillRequested("kill-1", w.clock.now(), "maintenance", "ops")
            outcomes = [deliver(w, kill), deliver(w, kill)]  # and Pub/Sub redelivers it
            for _ in range(10):
                tick = Tick(f"tick-{w.clock.now() + 60:.0f}", w.clock.now() + 60)
                w.clock.advance(60)
                outcomes += [deliver(w, tick), deliver(w, tick)]  # each one redelivered too
            TALLY[SUITE]["pools-isolated"].add(relevant=True)
            assert not w.sim.running("cpu-0"), (
                "10 minutes after the kill, pool cpu's VM still runs because pool gpu's "
                f"stop fails first in every reconcile: {sorted(set(outcomes))[:2]}"
            )
        finally:
            w.close()


def test_a_reissued_stop_answered_from_a_spent_operation_is_not_taken_for_a_stop(
    world: World,
) -> None:
    w = world
    assert run(w) == "ok"
    stop = StopRequested("stop-1", w.clock.now(), "gpu", "alice", "done")
    w.boundaries.reset(4)  # before-commit, after-commit, before-stop, after-stop: dies here
    with pytest.raises(Crash, match="after-stop"):
        w.service.handle(stop)  # the stop acted; the process died before recording it
    w.boundaries.reset()
    assert not w.sim.running("vm-0") and w.sim.console_start("vm-0")  # started by hand
    deliver(w, stop)  # redelivered: in flight, not re-sent before action_retry_s
    ticks(w, 1)  # re-sent now, with its request id: Compute answers from the old operation
    TALLY[SUITE]["stale-request-id"].add(relevant=True)
    assert not w.sim.running("vm-0") or instance(w).observed == "RUNNING", (
        f"the pool says {instance(w).observed} while the VM runs"
    )
