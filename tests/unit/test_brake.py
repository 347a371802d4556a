"""The brake at any scale (issue 27): a kill issues every stop at once, the tick works
on pools concurrently within ``fanout.pools``, and both keep the fences.

No timing asserts: concurrency is shown by a Compute double whose calls block until
N of them are waiting at once (a barrier; a serial control plane never gets there and
the barrier breaks, after a generous timeout, failing the test).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeCompute
from yoyo_control import fanout
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import Config, parse_config
from yoyo_control.domain.facts import KillRequested, RunRequested, Tick
from yoyo_control.domain.model import KillSwitch
from yoyo_control.errors import TemporaryError
from yoyo_control.service import Service

BARRIER_S = 20.0  # only a deadlock guard: a concurrent fan-out passes at once


def config(n: int, **fanout_settings: int) -> Config:
    doc: dict[str, Any] = {
        "budget": {"budget_ids": ["b-1"]},
        "pools": {
            f"p{i}": {"zone": "z", "instances": [f"vm-{i}"], "action_retry_s": 60} for i in range(n)
        },
    }
    if fanout_settings:
        doc["fanout"] = fanout_settings
    return parse_config(doc)


def world(tmp_path: Path, cfg: Config) -> tuple[Service, SqliteStore, FakeCompute, ManualClock]:
    clock = ManualClock()
    compute = FakeCompute()
    for name, policy in cfg.pools.items():
        compute.add(name, policy.instances[0])
    store = SqliteStore(tmp_path / "s.db")
    return Service(store, compute, clock, cfg), store, compute, clock


def all_running(service: Service, clock: ManualClock) -> None:
    for pool in service.config.pools:
        service.handle(RunRequested(f"run-{pool}", clock.now(), pool, "cycle", "nightly", 3600))


def kill(clock: ManualClock, mid: str = "kill-1") -> KillRequested:
    return KillRequested(mid, clock.now(), "maintenance", "ops")


class Waiting:
    """``on_call`` for FakeCompute: each ``kind`` call waits until ``n`` are waiting."""

    def __init__(self, kind: str, n: int) -> None:
        self.kind = kind
        self.barrier = threading.Barrier(n, timeout=BARRIER_S)
        self.armed = True

    def __call__(self, kind: str, instance: str, request_id: str) -> None:
        if self.armed and kind == self.kind:
            self.barrier.wait()


def test_a_kill_issues_every_pools_stop_at_once(tmp_path: Path) -> None:
    """12 pools, ``fanout.pools`` 2: the 12 stops are all in flight together (the
    brake's bound, ``fanout.stops``, not the pools' one, applies), before any pool's
    reconcile; each pool's reconcile then records its stop without calling it again."""
    n = 12
    service, store, compute, clock = world(tmp_path, config(n, pools=2, stops=64))
    all_running(service, clock)
    compute.on_call = Waiting("stop", n)
    handled = service.handle(kill(clock))
    assert sorted(a.instance for a in handled.actions) == sorted(f"vm-{i}" for i in range(n))
    stops = [c for c in compute.calls if c.kind == "stop"]
    assert len(stops) == n and all(c.acted for c in stops)  # each stop called once
    assert all(status == "TERMINATED" for status in compute.status.values())
    for pool in service.config.pools:
        record = store.get_pool(pool).instances[f"vm-{pool[1:]}"].last_action
        assert record is not None and record.kind == "stop" and record.outcome == "done"


def test_a_tick_works_on_pools_concurrently_within_its_bound(tmp_path: Path) -> None:
    """``fanout.pools`` 4: four pools' list calls are waiting at once."""
    service, _, compute, clock = world(tmp_path, config(8, pools=4))
    all_running(service, clock)
    barrier = threading.Barrier(4, timeout=BARRIER_S)
    listed = compute.list_instances

    def waiting_list(pool: str, zone: str) -> Any:
        barrier.wait()
        return listed(pool, zone)

    compute.list_instances = waiting_list  # type: ignore[method-assign]
    handled = service.handle(Tick("t-1", clock.now()))
    assert handled.actions == ()


def test_a_transient_failure_in_the_fan_out_raises_and_the_redelivery_loses_nothing(
    tmp_path: Path,
) -> None:
    """Two of the kill's concurrent stops fail with a temporary error: the others are
    issued and recorded, the delivery raises TemporaryError (Pub/Sub redelivers), and
    the redelivery stops the two (the kill itself was recorded once)."""
    n = 6
    service, store, compute, clock = world(tmp_path, config(n, pools=3))
    all_running(service, clock)
    failing = {"vm-1", "vm-4"}
    failed: list[str] = []

    def flaky(kind: str, instance: str, request_id: str) -> None:
        if kind == "stop" and instance in failing and instance not in failed:
            failed.append(instance)
            raise TemporaryError(f"503 on {instance}")

    compute.on_call = flaky
    with pytest.raises(TemporaryError, match="vm-1") as raised:
        service.handle(kill(clock))
    assert "vm-4" in str(raised.value)
    assert store.get_kill().engaged
    stopped = {i for i, s in compute.status.items() if s == "TERMINATED"}
    assert stopped == {f"vm-{i}" for i in range(n)} - failing
    clock.advance(120)  # past action_retry_s: the failed stops are due again
    again = service.handle(kill(clock))
    assert again.duplicate
    assert all(status == "TERMINATED" for status in compute.status.values())
    facts = [e for e in store.events(limit=10_000) if e.kind == "fact" and e.message_id == "kill-1"]
    assert len(facts) == 1


def test_the_kill_switch_is_reread_before_a_start_under_concurrent_ticks(tmp_path: Path) -> None:
    """Eight pools want a start in the same tick (their VMs were preempted), four at a
    time; the switch is engaged after their decisions committed and before any start
    call (all four are held at the barrier): no start is issued, in any pool."""
    n = 8
    service, store, compute, clock = world(tmp_path, config(n, pools=4))
    all_running(service, clock)
    for name in compute.status:
        compute.preempt(name)
    started_before = len(compute.acted("start"))
    engaged = threading.Event()
    lock = threading.Lock()
    waiting: list[str] = []
    original = store.get_kill

    def engage_then_read() -> KillSwitch:
        """execute()'s re-read: the first four callers wait for each other, then the
        switch is engaged (by the console, say) before any of them reads it."""
        with lock:
            waiting.append("x")
            first_wave = len(waiting) <= 4
        if first_wave:
            barrier.wait()
            with lock:
                if not engaged.is_set():
                    now = clock.now()
                    store.transact(lambda tx: tx.save_kill(KillSwitch(True, "x", "c", now, now)))
                    engaged.set()
        return original()

    barrier = threading.Barrier(4, timeout=BARRIER_S)
    store.get_kill = engage_then_read  # type: ignore[method-assign]
    service.handle(Tick("t-1", clock.now()))
    assert len(waiting) >= 4  # the starts were decided, concurrently, and re-read the switch
    assert len(compute.acted("start")) == started_before  # and none was called
    assert store.get_kill().engaged


def test_fanout_tries_every_item_and_returns_failures_in_order() -> None:
    def fn(i: int) -> int:
        if i % 3 == 0:
            raise TemporaryError(f"item {i}")
        return i * 10

    for limit in (1, 4):
        out = fanout.each(list(range(7)), fn, limit)
        assert [type(x).__name__ if isinstance(x, Exception) else x for x in out] == [
            "TemporaryError",
            10,
            20,
            "TemporaryError",
            40,
            50,
            "TemporaryError",
        ]


def test_fanout_raises_a_dying_process_after_the_others_ended() -> None:
    class Dying(BaseException):
        pass

    done: list[int] = []

    def fn(i: int) -> int:
        if i == 0:
            raise Dying
        done.append(i)
        return i

    with pytest.raises(Dying):
        fanout.each([0, 1, 2, 3], fn, 4)
    assert sorted(done) == [1, 2, 3]
    assert threading.active_count() < 50  # no pool left behind (sanity, not timing)


def test_a_stop_the_brake_issued_from_a_stale_read_is_recorded_as_stale(tmp_path: Path) -> None:
    """The brake read a pool before a change (here: an older epoch, so other request
    ids): its stop is harmless (the kill wanted it), the pass decides and calls its own,
    and the brake's call is still in the event log, as stale."""
    service, store, compute, clock = world(tmp_path, config(2, pools=2))
    all_running(service, clock)
    fresh = store.get_pools

    def stale(pools: Any) -> Any:
        return {p: replace(state, epoch=state.epoch - 1) for p, state in fresh(pools).items()}

    store.get_pools = stale  # type: ignore[method-assign]
    service.handle(kill(clock))
    store.get_pools = fresh  # type: ignore[method-assign]
    assert all(status == "TERMINATED" for status in compute.status.values())
    stops = [c for c in compute.calls if c.kind == "stop"]
    assert len(stops) == 4 and len({c.request_id for c in stops}) == 4  # brake's + passes'
    reasons = [e.reason for e in store.events(limit=10_000) if e.kind == "action"]
    assert sum("(stale)" in r for r in reasons) == 2, reasons
    for pool in service.config.pools:
        record = store.get_pool(pool).instances[f"vm-{pool[1:]}"].last_action
        assert record is not None and record.kind == "stop" and record.outcome == "done"


def test_a_pool_the_brake_cannot_read_is_stopped_by_its_reconcile(tmp_path: Path) -> None:
    """The batched read fails: the brake reads pool by pool; the one it cannot read is
    stopped by its own reconcile; every VM is stopped once."""
    service, store, compute, clock = world(tmp_path, config(3, pools=3))
    all_running(service, clock)
    fresh = store.get_pool

    def unavailable(pools: Any) -> Any:
        raise TemporaryError("firestore unavailable")

    def flaky(pool: str) -> Any:
        if pool == "p1":
            raise TemporaryError("firestore unavailable")
        return fresh(pool)

    store.get_pools = unavailable  # type: ignore[method-assign]
    store.get_pool = flaky  # type: ignore[method-assign]
    handled = service.handle(kill(clock))
    assert {a.instance for a in handled.actions} == {"vm-0", "vm-1", "vm-2"}
    assert all(status == "TERMINATED" for status in compute.status.values())
    assert len([c for c in compute.calls if c.kind == "stop"]) == 3  # once each
