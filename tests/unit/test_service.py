"""Service: record once, decide in one transaction, act after commit, record outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import (
    BudgetNotified,
    HeartbeatReceived,
    KillRequested,
    QueueDepthObserved,
    RunRequested,
    StopRequested,
    Tick,
    UnkillRequested,
)
from yoyo_control.domain.model import Heartbeat
from yoyo_control.errors import (
    CapacityError,
    InstanceNotFound,
    InvalidMessage,
    PermanentError,
    TemporaryError,
)
from yoyo_control.service import Service
from yoyo_control.sim.counting import CountingStore

CONFIG = parse_config(
    {
        "budget": {"budget_ids": ["b-1"], "kill_fraction": 1.0},
        "pools": {
            "gpu": {
                "zone": "z",
                "instances": ["vm-0"],
                "idle_timeout_s": 600,
                "action_retry_s": 60,
                "max_action_attempts": 3,
            }
        },
    }
)


@pytest.fixture
def world(tmp_path: Path):
    clock = ManualClock()
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    store = SqliteStore(tmp_path / "s.db")
    return Service(store, compute, clock, CONFIG), store, compute, clock


def run(clock: ManualClock, mid: str = "m1") -> RunRequested:
    return RunRequested(mid, clock.now(), "gpu", "cycle", "nightly", 1800)


def test_a_redelivered_fact_is_recorded_once_and_starts_once(world) -> None:
    service, store, compute, clock = world
    first = service.handle(run(clock))
    second = service.handle(run(clock))
    assert not first.duplicate and second.duplicate
    assert [c.kind for c in compute.acted("start")] == ["start"]
    facts = [e for e in store.events(limit=500) if e.kind == "fact"]
    assert [e.message_id for e in facts] == ["m1"]
    assert compute.status["vm-0"] == "RUNNING"
    assert store.get_pool("gpu").instances["vm-0"].last_action.outcome == "done"


def test_the_kill_switch_is_reread_immediately_before_every_start(world) -> None:
    service, store, compute, clock = world

    engaged_between_commit_and_call: list[bool] = []
    # Engage the switch behind the service's back after the decision commits:
    original = store.get_kill

    def get_kill_after_flip():
        if not engaged_between_commit_and_call:
            engaged_between_commit_and_call.append(True)
            store.transact(lambda tx: tx.save_kill(type(original())(True, "race", "test")))
        return original()

    store.get_kill = get_kill_after_flip
    handled = service.handle(run(clock))
    assert handled.actions  # the decision wanted a start …
    assert compute.calls == []  # … but the re-read saw the switch and no start was called
    outcome = store.get_pool("gpu").instances["vm-0"].last_action.said
    assert outcome == "skipped: kill switch engaged"


def test_temporary_compute_failure_raises_and_is_retried_with_the_same_request_id(world) -> None:
    service, store, compute, clock = world
    compute.faults.append(TemporaryError("503 backend error"))
    with pytest.raises(TemporaryError):
        service.handle(run(clock))
    record = store.get_pool("gpu").instances["vm-0"].last_action
    assert record.outcome.startswith("retry") and record.attempts == 1
    clock.advance(61)
    service.handle(Tick("t1", clock.now()))
    assert [c.request_id for c in compute.acted("start")] == [record.request_id]


def test_temporary_failures_become_permanent_after_the_attempt_budget(world) -> None:
    service, store, compute, clock = world
    compute.faults.extend(TemporaryError("429 rate limited") for _ in range(3))
    with pytest.raises(TemporaryError):
        service.handle(run(clock))
    for i in range(2):
        clock.advance(60 * 2 ** (i + 1))
        with pytest.raises(TemporaryError):
            service.handle(Tick(f"t{i}", clock.now()))
    inst = store.get_pool("gpu").instances["vm-0"]
    assert inst.error and "gave up after 3 attempts" in inst.error
    clock.advance(3600)
    service.handle(Tick("t-later", clock.now()))  # not retried forever
    assert compute.calls == []


def test_permanent_compute_error_is_recorded_and_swallowed(world) -> None:
    service, store, compute, clock = world
    compute.faults.append(PermanentError("QUOTA_EXCEEDED: GPUS_ALL_REGIONS"))
    service.handle(run(clock))
    inst = store.get_pool("gpu").instances["vm-0"]
    assert inst.error == "QUOTA_EXCEEDED: GPUS_ALL_REGIONS"
    assert any("error" in e.reason for e in store.events(limit=50) if e.kind == "action")


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InstanceNotFound("gone"), "error: not found: gone"),
        (PermanentError("zone not found in the region"), "error: zone not found in the region"),
    ],
)
def test_a_missing_instance_is_told_by_its_error_type_not_its_text(world, error, outcome) -> None:
    service, store, compute, clock = world
    compute.faults.append(error)
    service.handle(run(clock))
    inst = store.get_pool("gpu").instances["vm-0"]
    assert inst.last_action.said == outcome
    assert (inst.observed == "MISSING") is isinstance(error, InstanceNotFound)


def test_unknown_pool_is_an_invalid_message(world) -> None:
    service, *_ = world
    with pytest.raises(InvalidMessage, match="unknown pool 'nope'"):
        service.handle(RunRequested("m", 0.0, "nope", "cycle", "x", 60))


def test_routine_heartbeats_touch_only_the_instance_document(world) -> None:
    service, store, _compute, clock = world
    service.handle(run(clock))

    def beat(mid: str, busy: bool) -> HeartbeatReceived:
        return HeartbeatReceived(
            mid, clock.now(), "gpu", Heartbeat("vm-0", "boot-1", clock.now(), 0.0, busy=busy)
        )

    assert service.handle(beat("h1", True)).note == ""  # first beat of a boot matters
    clock.advance(30)
    assert service.handle(beat("h2", True)).note == "heartbeat recorded"
    clock.advance(30)
    assert service.handle(beat("h3", False)).note == ""  # busy → idle matters
    logged = {e.message_id for e in store.events(limit=500) if e.kind == "fact"}
    assert {"h1", "h3"} <= logged and "h2" not in logged
    assert store.get_pool("gpu").heartbeats["vm-0"].last_busy_at == clock.now() - 30


def test_a_stale_heartbeat_never_replaces_a_newer_one(world) -> None:
    service, store, _compute, clock = world
    new = Heartbeat("vm-0", "boot-2", clock.now(), 0.0, busy=True)
    old = Heartbeat("vm-0", "boot-1", clock.now() - 100, 0.0)
    service.handle(HeartbeatReceived("h-new", clock.now(), "gpu", new))
    assert service.handle(HeartbeatReceived("h-old", clock.now(), "gpu", old)).note == (
        "stale heartbeat ignored"
    )
    assert store.get_pool("gpu").heartbeats["vm-0"].boot_id == "boot-2"


def test_budget_over_the_kill_fraction_engages_the_kill_switch_and_stops(world) -> None:
    service, store, compute, clock = world
    service.handle(run(clock))
    over = BudgetNotified("b1", clock.now(), "b-1", "yoyo", 152.37, 150.0, "USD", 1.0)
    service.handle(over)
    kill = store.get_kill()
    assert kill.engaged and kill.reason == "budget: 152.37 of 150.00 USD" and kill.by == "budget"
    assert compute.status["vm-0"] == "TERMINATED"


def test_a_foreign_budget_is_logged_and_ignored(world) -> None:
    service, store, _compute, clock = world
    handled = service.handle(BudgetNotified("b2", clock.now(), "other", "x", 999, 1, "USD"))
    assert "not configured" in handled.note and not store.get_kill().engaged


def test_kill_then_unkill_then_a_new_lease_starts_again(world) -> None:
    service, _store, compute, clock = world
    service.handle(run(clock, "m1"))
    service.handle(KillRequested("k", clock.now(), "maintenance", "ops"))
    assert compute.status["vm-0"] == "TERMINATED"
    service.handle(run(clock, "m2"))
    assert len(compute.acted("start")) == 1  # denied while engaged
    service.handle(UnkillRequested("u", clock.now(), "ops"))
    service.handle(run(clock, "m3"))
    assert len(compute.acted("start")) == 2 and compute.status["vm-0"] == "RUNNING"


def test_operator_stop_releases_the_lease_and_stops(world) -> None:
    service, store, compute, clock = world
    service.handle(run(clock))
    service.handle(StopRequested("s", clock.now(), "gpu", "alice", "done for today"))
    assert store.get_pool("gpu").lease is None and compute.status["vm-0"] == "TERMINATED"
    reasons = [e.reason for e in store.events(limit=50) if e.kind == "decision"]
    assert any("released by alice" in r for r in reasons)


def test_tick_observes_a_preemption_and_restarts_after_backoff(world) -> None:
    service, _store, compute, clock = world
    service.handle(run(clock))
    clock.advance(60)
    compute.preempt("vm-0")
    service.handle(Tick("t1", clock.now()))
    assert compute.status["vm-0"] == "TERMINATED"
    clock.advance(61)
    service.handle(Tick("t2", clock.now()))
    assert compute.status["vm-0"] == "RUNNING" and len(compute.acted("start")) == 2


def test_an_unkill_published_before_the_kill_but_delivered_after_is_ignored(world) -> None:
    service, store, _compute, clock = world
    published_unkill = clock.now()
    clock.advance(5)
    service.handle(KillRequested("k", clock.now(), "maintenance", "ops"))
    handled = service.handle(UnkillRequested("u", published_unkill, "ops"))
    assert "stale unkill ignored" in handled.note
    assert store.get_kill().engaged


# --- the shape: one transaction per pass; outcomes recorded by the next pass ---------------


def test_a_start_is_one_decision_transaction_then_one_that_records_its_outcome(tmp_path) -> None:
    clock, compute = ManualClock(), FakeCompute()
    compute.add("gpu", "vm-0")
    store = CountingStore(SqliteStore(tmp_path / "s.db"))
    Service(store, compute, clock, CONFIG).handle(run(clock))
    assert store.counts["transactions"] == 2
    assert store.counts["load_kill.calls"] == 2  # the decision; after the start, in the record
    assert store.counts["get_kill.calls"] == 1  # the re-read immediately before the start


def test_a_capacity_refusal_is_recorded_with_the_decision_that_tries_the_next_zone(
    tmp_path,
) -> None:
    config = parse_config(
        {"pools": {"gpu": {"zone": "a", "instances": ["vm-a", {"name": "vm-b", "zone": "b"}]}}}
    )
    clock, compute = ManualClock(), FakeCompute()
    compute.add("gpu", "vm-a")
    compute.add("gpu", "vm-b")
    compute.faults.append(CapacityError("ZONE_RESOURCE_POOL_EXHAUSTED"))
    store = CountingStore(SqliteStore(tmp_path / "s.db"))
    handled = Service(store, compute, clock, config).handle(run(clock))
    assert [(a.kind, a.instance) for a in handled.actions] == [("start", "vm-a"), ("start", "vm-b")]
    assert compute.status["vm-b"] == "RUNNING"
    # decide → start (refused) → record + decide again → start → record: three passes.
    assert store.counts["transactions"] == 3
    outcomes = [e.reason for e in store.events(limit=50) if e.kind == "action"]
    assert [o.split(":")[0] for o in outcomes] == ["start vm-a", "start vm-b"]


class _KillReadFails(SqliteStore):
    """A store whose kill-switch read outside a transaction fails once, after ``ok`` reads."""

    def __init__(self, path: Path, ok: int) -> None:
        super().__init__(path)
        self.ok = ok

    def get_kill(self):  # type: ignore[no-untyped-def]
        self.ok -= 1
        if self.ok == -1:
            raise TemporaryError("firestore get kill switch: 503 unavailable")
        return super().get_kill()


def test_a_failed_kill_read_between_starts_loses_no_outcome(tmp_path: Path) -> None:
    """Two starts in one decision; the kill switch is re-read before each, and the second
    read fails: the first start's outcome is still recorded, the second start is not made
    and is recorded as a retry, and the event raises TemporaryError (redelivered)."""
    config = parse_config(
        {"pools": {"gpu": {"zone": "z", "instances": ["vm-0", "vm-1"], "action_retry_s": 60}}}
    )
    clock, compute = ManualClock(), FakeCompute()
    compute.add("gpu", "vm-0")
    compute.add("gpu", "vm-1")
    store = _KillReadFails(tmp_path / "s.db", ok=1)
    service = Service(store, compute, clock, config)
    with pytest.raises(TemporaryError, match="kill switch"):
        service.handle(QueueDepthObserved("q1", clock.now(), "gpu", 2, "producer"))
    assert len(compute.acted("start")) == 1
    instances = store.get_pool("gpu").instances
    outcomes = sorted(str(instances[n].last_action.said) for n in ("vm-0", "vm-1"))
    assert outcomes[0] == "done" and outcomes[1].startswith("retry")
