"""Control-plane benchmark: ``Service.handle()`` latency, and its inverse as events/s.

``python bench/control_plane.py [--cycles-sqlite 300] [--cycles-firestore 60] [--write]``.
One pool, one instance, default policy, real clock; Compute is an in-process stand-in
whose operations finish at once (so the figures are the control plane's own: decode
excluded, store transactions, decide(), the event log, the action's outcome). Each
cycle is the life of one wake: RunRequested (→ start) · busy heartbeat (new boot:
reconcile) · busy heartbeat (unchanged: stored only) · idle heartbeat (reconcile) ·
Tick (list + reconcile) · StopRequested (→ stop). Events are sent one after another and
only the time inside ``handle()`` is counted, so "events/s" is events ÷ that time
(1 / mean latency): the ceiling of one pool's serial stream, not a sustained load test
(no concurrency, no queueing, no decode or transport).

Stores: SqliteStore in a temporary directory; FirestoreStore on the Firestore emulator
started with tests/emulators.py (skipped with the reason printed when the emulator or
Java is missing, or YOYO_SKIP_EMULATORS=1). The emulator is not Firestore: its
latencies are a local lower bound, not production's.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _results import machine, parser, report

from yoyo_control import logs
from yoyo_control.adapters.clock import SystemClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import Config
from yoyo_control.domain.facts import (
    Fact,
    HeartbeatReceived,
    RunRequested,
    StopRequested,
    Tick,
)
from yoyo_control.domain.model import Heartbeat, PoolPolicy
from yoyo_control.ports import Store
from yoyo_control.service import Service
from yoyo_control.sim.engine import percentile
from yoyo_control.sim.report import markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

POOL, VM = "bench", "bench-0"


def cycle(i: int, now: Callable[[], float]) -> Iterator[tuple[str, Fact]]:
    boot = f"boot-{i}"

    def beat(busy: bool, kind: str) -> tuple[str, Fact]:
        t = now()
        hb = Heartbeat(VM, boot, t, t, busy=busy, running=int(busy), last_request_at=t)
        return kind, HeartbeatReceived(f"hb-{i}-{kind}", t, POOL, hb)

    yield "run (start)", RunRequested(f"run-{i}", now(), POOL, "wake", "bench", 1800)
    yield beat(True, "heartbeat (new boot)")
    yield beat(True, "heartbeat (unchanged)")
    yield beat(False, "heartbeat (busy→idle)")
    yield "tick", Tick(f"tick-{i}", now())
    yield "stop (stop)", StopRequested(f"stop-{i}", now(), POOL, "bench", "bench")


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def measure(store: Store, cycles: int, warmup: int = 5) -> dict[str, Any]:
    clock = SystemClock()
    policy = PoolPolicy(pool=POOL, zone="z", instances=(VM,), hourly_price_usd=0.7)
    from fakes import FakeCompute  # tests/fakes.py: operations done when the call returns

    compute = FakeCompute()
    compute.add(POOL, VM)
    service = Service(store, compute, clock, Config(pools={POOL: policy}))
    by_kind: dict[str, list[float]] = {}
    total = 0.0
    events = 0
    logs.set_stream(_Null())  # type: ignore[arg-type]
    try:
        for i in range(warmup + cycles):
            for kind, fact in cycle(i, clock.now):
                began = time.perf_counter()
                service.handle(fact)
                spent = time.perf_counter() - began
                if i >= warmup:
                    by_kind.setdefault(kind, []).append(spent)
                    total += spent
                    events += 1
    finally:
        logs.set_stream(None)
    every = [x for xs in by_kind.values() for x in xs]
    return {"by_kind": by_kind, "all": every, "events": events, "total_s": total}


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="yoyo-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3")
        try:
            yield store
        finally:
            store.close()


@contextmanager
def firestore_store() -> Iterator[Store]:
    import emulators  # tests/emulators.py (engineer a)
    from yoyo_control.adapters.firestore_store import FirestoreStore

    if emulators.skip_requested():
        raise RuntimeError(f"{emulators.SKIP_ENV}=1")
    emulator = emulators.start_firestore()
    try:
        project = "yoyo-bench"
        client = emulators.firestore_client(emulator.host, project)
        store = FirestoreStore(project=project, client=client)
        try:
            yield store
        finally:
            store.close()
            client.close()
    finally:
        emulator.stop()


def row(store: str, kind: str, samples: list[float]) -> dict[str, Any]:
    ms = [1000 * s for s in samples]
    return {
        "store": store,
        "event": kind,
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms),
    }


def section(cycles_sqlite: int, cycles_firestore: int) -> str:
    rows: list[dict[str, Any]] = []
    rates: list[dict[str, Any]] = []
    notes: list[str] = []
    stores: list[tuple[str, Callable[[], Any], int]] = [
        ("SQLite", sqlite_store, cycles_sqlite),
        ("Firestore emulator", firestore_store, cycles_firestore),
    ]
    for name, factory, cycles in stores:
        try:
            with factory() as store:
                result = measure(store, cycles)
        except Exception as exc:  # the emulator may be missing: say so, keep the rest
            notes.append(f"- {name}: not measured ({type(exc).__name__}: {exc})".splitlines()[0])
            continue
        rows.append(row(name, "all events", result["all"]))
        rows += [row(name, k, v) for k, v in result["by_kind"].items()]
        rates.append(
            {
                "store": name,
                "events": result["events"],
                "rate": result["events"] / result["total_s"],
            }
        )
    cols = (
        ("store", "store"),
        ("event", "event"),
        ("n", "n"),
        ("p50", "p50 ms"),
        ("p99", "p99 ms"),
        ("mean", "mean ms"),
    )
    rate_cols = (
        ("store", "store"),
        ("events", "events"),
        ("rate", "events/s, serial (1 / mean handle() time)"),
    )
    return "\n".join(
        [
            "### Control plane: Service.handle() latency (one pool, serial events)",
            "",
            "Reproduce: `make bench-control-plane` (= `.venv/bin/python "
            "bench/control_plane.py --write`). Wall-clock figures: they vary with the "
            "machine and its load (two cores shared with other work here).",
            "",
            markdown(rows, cols),
            "",
            markdown(rates, rate_cols),
            "",
            *notes,
            "",
            f"_Generated {machine()}._",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--cycles-sqlite", type=int, default=300)
    p.add_argument("--cycles-firestore", type=int, default=60)
    args = p.parse_args(argv)
    return report("control-plane", section(args.cycles_sqlite, args.cycles_firestore), args.write)


if __name__ == "__main__":
    sys.exit(main())
