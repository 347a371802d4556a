"""Store operations per handled event: transactions, document reads and writes, Compute calls.

``python bench/store_ops_per_event.py`` prints one row per event of bench/control_plane.py's
cycle (plus a redelivery, a kill, an unkill and a capacity refusal), each handled by the
real Service on SqliteStore wrapped by CountingStore (priced as Firestore bills the
FirestoreStore adapter's calls, sim/counting.py). It is the figure the service's shape
answers for (issue 13): one decision transaction per pass, outcomes recorded with the
next pass.

Invariant: deterministic (a manual clock; Compute answers at once).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from control_plane import POOL, VM, _Null, cycle

from yoyo_control import logs
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import Config
from yoyo_control.domain.facts import Fact, KillRequested, RunRequested, Tick, UnkillRequested
from yoyo_control.domain.model import Placement, PoolPolicy
from yoyo_control.errors import CapacityError
from yoyo_control.ports import ObservedInstance
from yoyo_control.service import Service
from yoyo_control.sim.counting import CountingStore
from yoyo_control.sim.report import markdown


class CountingCompute:
    """Compute that counts its calls; zone "a" is out of capacity."""

    def __init__(self, instances: dict[str, str]) -> None:
        self.status = dict.fromkeys(instances, "TERMINATED")
        self.zone_of = instances
        self.calls: dict[str, int] = {"list": 0, "get": 0, "start": 0, "stop": 0}

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        self.calls["list"] += 1
        return [
            ObservedInstance(n, s, {"yoyo-pool": pool})
            for n, s in self.status.items()
            if self.zone_of[n] == zone
        ]

    def get(self, zone: str, instance: str) -> ObservedInstance:
        self.calls["get"] += 1
        return ObservedInstance(instance, self.status[instance])

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self.calls["start"] += 1
        if zone == "a":
            raise CapacityError("ZONE_RESOURCE_POOL_EXHAUSTED (bench)")
        self.status[instance] = "RUNNING"

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self.calls["stop"] += 1
        self.status[instance] = "TERMINATED"


def measure(
    service: Service,
    store: CountingStore,
    compute: CountingCompute,
    clock: ManualClock,
    facts: Iterable[tuple[str, Fact]],
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for kind, fact in facts:
        before, called = dict(store.counts), dict(compute.calls)
        service.handle(fact)
        rows.append(
            {
                "event": kind,
                **{
                    k: store.counts[k] - before.get(k, 0)
                    for k in ("transactions", "reads", "writes")
                },
                "compute": ", ".join(
                    f"{k} {compute.calls[k] - called[k]}"
                    for k in called
                    if compute.calls[k] > called[k]
                ),
            }
        )
        clock.advance(10)
    return rows


def wake_cycle(clock: ManualClock) -> Iterator[tuple[str, Fact]]:
    events = cycle(1, clock.now)
    first = next(events)
    yield first
    yield "run (redelivered)", first[1]
    last: Fact | None = None
    for kind, fact in events:
        last = fact if kind.startswith("heartbeat") else last
        yield kind, fact
    assert last is not None
    yield "heartbeat (the last one redelivered)", last
    yield "run (start again)", RunRequested("run-2", clock.now(), POOL, "wake", "bench", 1800)
    yield "kill (stop)", KillRequested("kill-1", clock.now(), "bench", "bench")
    yield "unkill", UnkillRequested("unkill-1", clock.now(), "bench")
    yield "tick (nothing to do)", Tick("tick-2", clock.now())


def section() -> str:
    logs.set_stream(_Null())  # type: ignore[arg-type]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="yoyo-bench-") as tmp:
        clock = ManualClock(1_800_000_000.0)
        store = CountingStore(SqliteStore(Path(tmp) / "one.sqlite3"))
        compute = CountingCompute({VM: "z"})
        policy = PoolPolicy(pool=POOL, zone="z", instances=(VM,), hourly_price_usd=0.7)
        service = Service(store, compute, clock, Config(pools={POOL: policy}))
        rows += measure(service, store, compute, clock, wake_cycle(clock))

        store = CountingStore(SqliteStore(Path(tmp) / "zones.sqlite3"))
        compute = CountingCompute({"vm-a": "a", "vm-b": "b"})
        placed = (Placement("vm-a", "a", 0.7), Placement("vm-b", "b", 0.7))
        policy = PoolPolicy(pool="zones", instances=("vm-a", "vm-b"), placements=placed)
        service = Service(store, compute, clock, Config(pools={"zones": policy}))
        wake = RunRequested("zones-1", clock.now(), "zones", "wake", "bench", 1800)
        rows += measure(service, store, compute, clock, [("run (zone a refuses → b)", wake)])
    logs.set_stream(None)
    cols = (
        ("event", "event"),
        ("transactions", "transactions"),
        ("reads", "reads"),
        ("writes", "writes"),
        ("compute", "Compute calls"),
    )
    return markdown(rows, cols)


if __name__ == "__main__":
    print(section())
    sys.exit(0)
