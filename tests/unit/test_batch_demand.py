"""Batch demand as its own input to decide() (issue 23): regression tests.

Each scenario failed on the code before the batch controller (the tick counted pending
shards as queue depth): a never-ready VM restarted until the batch expired, an
operator's stop undone at the next tick, a 2-shard batch below ``queue_threshold``, a
producer's depth 0 erasing batch demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import (
    BatchDemandObserved,
    HeartbeatReceived,
    QueueDepthObserved,
    StopRequested,
    Tick,
)
from yoyo_control.domain.model import Heartbeat
from yoyo_control.service import Service

BUDGET = 3


def config(instances: int = 1, threshold: int = 1):
    return parse_config(
        {
            "pools": {
                "gpu": {
                    "zone": "z",
                    "instances": [f"vm-{i}" for i in range(instances)],
                    "idle_timeout_s": 300,
                    "lease_s": 600,
                    "keepalive": "fixed",
                    "boot_grace_s": 300,
                    "heartbeat_gap_s": 180,
                    "restart_budget": BUDGET,
                    "restart_backoff_s": 60,
                    "queue_threshold": threshold,
                }
            },
        }
    )


class World:
    def __init__(self, tmp_path: Path, instances: int = 1, threshold: int = 1) -> None:
        self.clock = ManualClock()
        self.compute = FakeCompute()
        for i in range(instances):
            self.compute.add("gpu", f"vm-{i}")
        self.pending = {"gpu": 0}
        self.store = SqliteStore(tmp_path / "s.db")
        self.service = Service(
            self.store,
            self.compute,
            self.clock,
            config(instances, threshold),
        )
        self.n = 0

    def batch(self, shards: int) -> None:
        """The pool's pending batch work is ``shards`` (the batch controller's count)."""
        self.pending["gpu"] = shards

    def tick(self) -> None:
        """A minute's pulses: the batch controller's count (no shard moves), the tick."""
        self.n += 1
        now = self.clock.now()
        shards = self.pending["gpu"]
        self.service.handle(BatchDemandObserved(f"b{self.n}", now, "gpu", shards, None, 0.0))
        self.service.handle(Tick(f"t{self.n}", now))

    def beat(self, instance: str, ready: bool, busy: bool = False) -> None:
        self.n += 1
        hb = Heartbeat(instance, "boot", self.clock.now(), 0.0, busy=busy, ready=ready)
        self.service.handle(HeartbeatReceived(f"hb{self.n}", self.clock.now(), "gpu", hb))

    def starts(self) -> int:
        return len(self.compute.acted("start"))


@pytest.mark.parametrize("reports", ["silent", "not ready", "powers off"])
def test_a_never_ready_vm_gets_at_most_one_plus_budget_starts_per_batch(
    tmp_path: Path, reports: str
) -> None:
    """A VM that never serves (silent, loading forever, or powering itself off) under
    pending batch work: 1 + restart_budget starts, then the pool stops and stays down."""
    w = World(tmp_path)
    w.batch(1)
    w.tick()
    for minute in range(6 * 60):  # six hours: before, a fresh lease reset the budget
        w.clock.advance(60)
        if w.compute.status["vm-0"] == "RUNNING":
            if reports == "not ready":
                w.beat("vm-0", ready=False)
            elif reports == "powers off" and minute % 2:
                w.compute.preempt("vm-0")  # the agent's idle backstop powers it off
        w.tick()
    assert w.starts() <= 1 + BUDGET
    assert w.compute.status["vm-0"] == "TERMINATED"
    assert w.store.get_pool("gpu").lease is None


def test_an_operator_stop_holds_while_batch_work_is_pending(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.batch(4)
    w.tick()
    assert w.starts() == 1
    w.clock.advance(5)
    w.service.handle(StopRequested("stop", w.clock.now(), "gpu", "ops", "maintenance"))
    assert w.compute.status["vm-0"] == "TERMINATED"
    for _ in range(30):
        w.clock.advance(60)
        w.tick()
    assert w.starts() == 1  # before: started again at the next tick
    assert w.store.get_pool("gpu").lease is None
    said = " ".join(e.reason for e in w.store.events(limit=200))
    assert "waits" in said and "operator" in said


def test_a_two_shard_batch_wakes_a_pool_whose_queue_threshold_is_five(tmp_path: Path) -> None:
    """Shards are VMs' worth of work, not a producer's messages."""
    w = World(tmp_path, instances=2, threshold=5)
    w.batch(2)
    w.tick()
    assert w.starts() == 2


def test_a_producers_depth_zero_does_not_erase_batch_demand(tmp_path: Path) -> None:
    w = World(tmp_path, instances=3)
    w.batch(3)
    w.tick()
    assert sorted(w.compute.status.values()) == ["RUNNING"] * 3
    w.clock.advance(10)
    w.service.handle(QueueDepthObserved("p0", w.clock.now(), "gpu", 0, "producer"))
    assert sorted(w.compute.status.values()) == ["RUNNING"] * 3
    assert w.compute.acted("stop") == []


def test_a_retry_lifts_the_lapse_with_a_fresh_budget_and_an_operator_start_too(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.batch(1)
    w.tick()
    for _ in range(60):
        w.clock.advance(60)
        w.tick()
    state = w.store.get_pool("gpu")
    assert state.batch.lapsed and "no shard moved" in state.batch.lapsed
    assert state.batch.waiting == state.batch.lapsed
    lapsed_starts = w.starts()
    w.clock.advance(60)
    now = w.clock.now()
    w.service.handle(BatchDemandObserved("retry", now, "gpu", 1, None, now))
    assert w.starts() == lapsed_starts + 1
    assert not w.store.get_pool("gpu").batch.lapsed


def test_a_stop_holds_only_pending_work_and_ends_when_the_work_is_gone(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.batch(2)
    w.tick()
    w.service.handle(StopRequested("stop", w.clock.now(), "gpu", "ops", "night"))
    assert "stopped by ops" in w.store.get_pool("gpu").batch.held
    w.batch(0)  # cancelled: nothing pending
    w.clock.advance(60)
    w.tick()
    assert w.store.get_pool("gpu").batch.held == ""
    w.batch(1)  # a new batch after the work was gone runs
    w.clock.advance(60)
    w.tick()
    assert w.starts() == 2


def test_a_ready_vm_through_which_shards_move_is_never_restarted(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.batch(3)
    w.tick()
    for minute in range(120):
        w.clock.advance(60)
        now = w.clock.now()
        w.beat("vm-0", ready=True, busy=minute % 3 == 0)
        w.service.handle(BatchDemandObserved(f"p{minute}", now, "gpu", 3, now, 0.0))
        w.service.handle(Tick(f"tt{minute}", now))
    assert w.starts() == 1 and w.compute.status["vm-0"] == "RUNNING"
