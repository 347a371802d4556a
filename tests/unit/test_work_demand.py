"""Pending batch work is queue demand for as long as it is pending (Service ticks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import HeartbeatReceived, QueueDepthObserved, Tick
from yoyo_control.domain.model import Heartbeat
from yoyo_control.errors import TemporaryError
from yoyo_control.service import Service

CONFIG = parse_config(
    {
        "pools": {
            "gpu": {
                "zone": "z",
                "instances": ["vm-0"],
                "idle_timeout_s": 300,
                "lease_s": 600,
                "keepalive": "fixed",
            }
        },
    }
)


@pytest.fixture
def world(tmp_path: Path):
    clock = ManualClock()
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    pending = {"gpu": 0}
    store = SqliteStore(tmp_path / "s.db")
    service = Service(store, compute, clock, CONFIG, work_demand=lambda pool: pending[pool])
    return service, store, compute, clock, pending


def tick_every_minute(service: Service, clock: ManualClock, minutes: int, tag: str) -> None:
    """Ticks, and the VM's agent reporting idle (a worker between shards) when it runs."""
    for i in range(minutes):
        clock.advance(60)
        if service.compute.status.get("vm-0") == "RUNNING":  # type: ignore[attr-defined]
            beat = Heartbeat("vm-0", "boot-1", clock.now(), 0.0, busy=False)
            service.handle(HeartbeatReceived(f"{tag}-hb-{i}", clock.now(), "gpu", beat))
        service.handle(Tick(f"{tag}-{i}", clock.now()))


def test_pending_work_wakes_the_pool_and_keeps_it_up_past_a_lease(world) -> None:
    service, store, compute, clock, pending = world
    pending["gpu"] = 1000
    service.handle(Tick("t0", clock.now()))
    assert compute.status["vm-0"] == "RUNNING"
    demand = store.get_pool("gpu").demand
    assert (demand.depth, demand.source) == (1000, "work")
    # Ninety minutes of pending work: far past lease_s and the idle timeout, and not one
    # busy heartbeat (a worker between shards) — the pool stays up.
    tick_every_minute(service, clock, 90, "t")
    state = store.get_pool("gpu")
    assert state.lease is not None and state.lease.valid(clock.now())
    assert compute.acted("stop") == []


def test_done_work_drops_the_demand_and_the_pool_idles_down(world) -> None:
    service, store, compute, clock, pending = world
    pending["gpu"] = 10
    service.handle(Tick("t0", clock.now()))
    pending["gpu"] = 0
    tick_every_minute(service, clock, 1, "done")
    assert store.get_pool("gpu").demand.depth == 0
    tick_every_minute(service, clock, 15, "idle")
    assert [c.kind for c in compute.acted("stop")] == ["stop"]


def test_no_work_records_nothing_and_leaves_an_incidents_demand_alone(world) -> None:
    service, store, _compute, clock, _pending = world
    service.handle(Tick("t0", clock.now()))
    assert [e for e in store.events(limit=100) if e.kind == "fact" and "work" in e.id] == []
    service.handle(QueueDepthObserved("q1", clock.now(), "gpu", 3, "monitoring:0.abc"))
    tick_every_minute(service, clock, 1, "t")
    assert store.get_pool("gpu").demand.depth == 3  # the incident closes itself


def test_a_producers_depth_is_not_cleared_by_an_empty_batch_queue(world) -> None:
    service, store, _compute, clock, _pending = world
    service.handle(QueueDepthObserved("q1", clock.now(), "gpu", 1, "producer"))
    tick_every_minute(service, clock, 1, "t")
    assert store.get_pool("gpu").demand.depth == 1  # its own depth 0 (or a lease) ends it


def test_a_submits_wake_becomes_work_demand_and_is_cleared_when_done(world) -> None:
    service, store, _compute, clock, pending = world
    pending["gpu"] = 12
    service.handle(QueueDepthObserved("wake", clock.now(), "gpu", 12, "producer"))
    tick_every_minute(service, clock, 1, "t")
    assert store.get_pool("gpu").demand.source == "work"
    pending["gpu"] = 0
    tick_every_minute(service, clock, 1, "done")
    assert store.get_pool("gpu").demand.depth == 0


def test_storage_trouble_does_not_stop_the_lifecycle_tick(world) -> None:
    service, store, _compute, clock, _pending = world

    def unreachable(pool: str) -> int:
        raise TemporaryError("storage 503")

    service.work_demand = unreachable
    service.handle(Tick("t0", clock.now()))  # no exception: VMs are still observed
    assert store.get_pool("gpu").instances["vm-0"].observed == "TERMINATED"


def test_a_broken_batch_count_does_not_stop_the_tick_for_any_pool(tmp_path: Path) -> None:
    """A count that fails for a reason that is not transient (a done marker that is not
    JSON, a bucket the control plane may no longer read) is logged and skipped: every
    pool is still listed and reconciled, so a lapsed lease still stops its VM."""
    config = parse_config(
        {
            "pools": {
                name: {"zone": "z", "instances": [f"{name}-0"], "lease_s": 600}
                for name in ("gpu", "cpu")
            }
        }
    )
    clock = ManualClock()
    compute = FakeCompute()
    for name in ("gpu", "cpu"):
        compute.add(name, f"{name}-0")

    def broken(pool: str) -> int:
        raise ValueError("batches/b1/shards/0/done.json: Expecting value: line 1 column 1")

    store = SqliteStore(tmp_path / "s.db")
    service = Service(store, compute, clock, config, work_demand=broken)
    service.handle(QueueDepthObserved("q-1", clock.now(), "cpu", 1, "producer"))
    assert compute.status["cpu-0"] == "RUNNING"
    clock.advance(3600)  # the lease (and the producer's demand) lapsed long ago
    service.handle(Tick("t-1", clock.now()))
    assert [c.instance for c in compute.acted("stop")] == ["cpu-0"]
