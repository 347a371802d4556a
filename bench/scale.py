"""The brake and the tick at hundreds of pools, on the Firestore emulator.

``python bench/scale.py [--pools 10,100,300,1000] [--latency-ms 0] [--write]``.

For each size N: N pools of one instance each, every VM running under a lease (each pool
got a RunRequested, its start went through), then two figures:

- **kill**: ``handle(KillRequested)``; measured from the commit of the transaction that
  engaged the kill switch to the LAST stop call issued to Compute (the call's start),
  and the whole handle();
- **tick**: one ``handle(Tick)`` over the N running pools (list each pool's instances,
  reconcile each pool: no action, the steady state), taken before the kill.

Store: FirestoreStore on the Firestore emulator (tests/emulators.py), one store object,
as one function instance has. Compute: the production adapter (ComputeEngine, the
google-cloud-compute REST client) against the REST stub of tests/compute_stub.py on
127.0.0.1, run in a process of its own (Compute is remote: its work must not take the
control plane's CPU), which behaves like the service (an operation is DONE after two polls, a
requestId already seen returns the same operation). Its latency is a fixed delay on
every HTTP answer (``--latency-ms``; 0 = localhost round trips only); real Compute
Engine answers in tens to hundreds of ms and a stop's operation takes seconds, so the
figures with 0 are the control plane's own, a lower bound. Settings: the service's
defaults (``fanout``), unless ``--pool-concurrency`` / ``--stop-concurrency``.

The emulator is not Firestore: its latencies are a local lower bound, and the machine
is shared (the load average is printed beside every figure).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from _results import machine, parser, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from yoyo_control import logs, names
from yoyo_control.adapters.clock import SystemClock
from yoyo_control.adapters.compute_engine import ComputeEngine
from yoyo_control.config import Config, parse_config
from yoyo_control.domain.facts import KillRequested, RunRequested, Tick
from yoyo_control.domain.model import KillSwitch
from yoyo_control.ports import ObservedInstance, Store, Transaction
from yoyo_control.service import Service
from yoyo_control.sim.report import markdown

T = TypeVar("T")
ZONE = "us-central1-a"


def config(pools: int, overrides: dict[str, Any]) -> Config:
    doc: dict[str, Any] = {
        "backend": "gcp",
        "project": "yoyo-bench",
        "budget": {"budget_ids": ["b"]},
        "pools": {
            f"p{i:04d}": {"zone": ZONE, "instances": [f"vm-{i:04d}"], "hourly_price_usd": 1.0}
            for i in range(pools)
        },
    }
    if overrides:
        doc["fanout"] = overrides
    return parse_config(doc)


class KillCommit:
    """The Store port around the real one: notes when the kill switch's write committed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.engaged_at: float | None = None

    def transact(self, fn: Callable[[Transaction], T]) -> T:
        saved: list[KillSwitch] = []

        def body(tx: Transaction) -> T:
            class Tx:
                def __getattr__(self, name: str) -> Any:
                    return getattr(tx, name)

                def save_kill(self, kill: KillSwitch) -> None:
                    saved.append(kill)
                    tx.save_kill(kill)

            return fn(Tx())  # type: ignore[arg-type]

        result = self.inner.transact(body)
        if saved and saved[-1].engaged:
            self.engaged_at = time.perf_counter()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class StopTimes:
    """The Compute port around the real adapter: notes when each stop call was issued."""

    def __init__(self, inner: ComputeEngine) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.stops: list[float] = []

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        return self.inner.list_instances(pool, zone)

    def get(self, zone: str, instance: str) -> ObservedInstance:
        return self.inner.get(zone, instance)

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self.inner.start(zone, instance, request_id)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        with self.lock:
            self.stops.append(time.perf_counter())
        self.inner.stop(zone, instance, request_id)


def serve_stub(conn: Any, project: str) -> None:
    """The Compute stub in a process of its own (Compute is remote: its work must not
    take the control plane's CPU), driven over ``conn``."""
    from compute_stub import ComputeStub

    with ComputeStub(project=project) as stub:
        conn.send(stub.endpoint)
        while True:
            verb, arg = conn.recv()
            if verb == "add":
                for name, pool in arg:
                    stub.add(ZONE, name, labels={names.LABEL_POOL: pool})
                conn.send(None)
            elif verb == "latency":
                stub.latency_s = arg
                conn.send(None)
            elif verb == "status":
                conn.send({name: stub.status(ZONE, name) for name in arg})
            else:
                conn.send(None)
                return


class RemoteStub:
    def __init__(self, project: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_stub, args=(child, project), daemon=True)
        self.process.start()
        self.endpoint: str = self.conn.recv()

    def ask(self, verb: str, arg: Any = None) -> Any:
        self.conn.send((verb, arg))
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.ask("close")
        finally:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()


@contextmanager
def emulator() -> Iterator[Any]:
    import emulators  # tests/emulators.py

    if emulators.skip_requested():
        raise RuntimeError(f"{emulators.SKIP_ENV}=1")
    running = emulators.start_firestore()
    try:
        yield running
    finally:
        running.stop()


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def measure(host: str, pools: int, latency_s: float, overrides: dict[str, Any]) -> dict[str, Any]:
    from google.auth.credentials import AnonymousCredentials

    import emulators
    from yoyo_control.adapters.firestore_store import FirestoreStore

    project = f"yoyo-scale-{pools}-{os.getpid()}"
    cfg = config(pools, overrides)
    client = emulators.firestore_client(host, project)
    inner: Store = FirestoreStore(project=project, client=client, **store_options(cfg))
    store = KillCommit(inner)
    stub = RemoteStub(project)
    vms = [p.instances[0] for p in cfg.pools.values()]
    stub.ask("add", [(p.instances[0], name) for name, p in cfg.pools.items()])
    engine = ComputeEngine(
        project,
        client_options={"api_endpoint": stub.endpoint},
        transport="rest",
        credentials=AnonymousCredentials(),
        poll_interval_s=0.001,
        operation_timeout_s=60.0,
        request_timeout_s=30.0,
    )
    compute = StopTimes(engine)
    service = Service(store, compute, SystemClock(), cfg)  # type: ignore[arg-type]
    try:
        now = time.time()
        for name in cfg.pools:  # set-up: every VM running under a lease (no latency)
            service.handle(RunRequested(f"run-{name}", now, name, "operator", "bench", 7200))
        running = sum(s == "RUNNING" for s in stub.ask("status", vms).values())
        assert running == pools, f"set-up: {running} of {pools} running"
        stub.ask("latency", latency_s)
        load_tick = loadavg()
        began = time.perf_counter()
        service.handle(Tick("tick-1", time.time()))
        tick_s = time.perf_counter() - began
        load_kill = loadavg()
        began = time.perf_counter()
        service.handle(KillRequested("kill-1", time.time(), "bench", "bench"))
        handle_s = time.perf_counter() - began
        assert store.engaged_at is not None
        stopped = sum(s in ("STOPPING", "TERMINATED") for s in stub.ask("status", vms).values())
        assert stopped == pools, f"kill: {stopped} of {pools} stopped"
        first_stop = min(compute.stops) - store.engaged_at
        last_stop = max(compute.stops) - store.engaged_at
        return {
            "pools": pools,
            "latency": latency_s * 1000,
            "first": first_stop,
            "kill": last_stop,
            "handle": handle_s,
            "stops": len(compute.stops),
            "tick": tick_s,
            "per_pool": tick_s / pools * 1000,
            "load": f"{load_tick} / {load_kill}",
        }
    finally:
        engine.close()
        inner.close()  # type: ignore[attr-defined]
        client.close()
        stub.close()


def store_options(cfg: Config) -> dict[str, Any]:
    """The FirestoreStore options the deployment uses (bootstrap.build_store); none
    before there was a fan-out (the same script measures the code before it)."""
    fan = getattr(cfg, "fanout", None)
    return {"concurrency": fan.pools} if fan is not None else {}


def section(sizes: list[int], latency_s: float, overrides: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    logs.set_stream(_Null())
    try:
        with emulator() as running:
            for n in sizes:
                try:
                    rows.append(measure(running.host, n, latency_s, overrides))
                except Exception as exc:
                    notes.append(f"- {n} pools: not measured ({type(exc).__name__}: {exc})")
                print(rows[-1] if rows else notes[-1], file=sys.stderr)
    except Exception as exc:
        notes.append(f"- not measured ({type(exc).__name__}: {exc})".splitlines()[0])
    finally:
        logs.set_stream(None)
    cols = (
        ("pools", "pools"),
        ("latency", "Compute latency ms"),
        ("first", "kill: commit → first stop issued, s"),
        ("kill", "kill: commit → last stop issued, s"),
        ("handle", "kill: handle(), s"),
        ("stops", "stop calls"),
        ("tick", "tick, s"),
        ("per_pool", "tick per pool, ms"),
        ("load", "load avg (tick / kill)"),
    )
    settings = overrides or "defaults"
    return "\n".join(
        [
            "### Scale: the kill and the tick at N pools (Firestore emulator)",
            "",
            "Reproduce: `make bench-scale` (= `.venv/bin/python bench/scale.py --write`). "
            "One instance per pool, every VM running under a lease; store: FirestoreStore on "
            "the emulator; Compute: the production adapter (google-cloud-compute, REST) "
            "against tests/compute_stub.py in a process of its own, each answer delayed by "
            f"the Compute latency column; fan-out settings: {settings}. The first stop waits "
            "for every pool's read; the kill's handle() includes each pool's reconcile "
            "recording its stop.",
            "",
            markdown(rows, cols),
            "",
            *notes,
            "",
            f"_Generated {machine()}._",
        ]
    )


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--pools", default="10,100,300,1000")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--pool-concurrency", type=int, default=None)
    p.add_argument("--stop-concurrency", type=int, default=None)
    p.add_argument("--name", default="scale", help="the RESULTS.md section to write")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.pools.split(",") if x]
    overrides = {
        k: v
        for k, v in (("pools", args.pool_concurrency), ("stops", args.stop_concurrency))
        if v is not None
    }
    return report(args.name, section(sizes, args.latency_ms / 1000, overrides), args.write)


if __name__ == "__main__":
    sys.exit(main())
