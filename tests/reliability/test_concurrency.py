"""Concurrency on the real stores: several PROCESSES (spawn), each with its own store client
and its own Service, delivering facts for the same pool at the same moments; one shared
Compute (the REST stub of tests/compute_stub.py behind the real ComputeEngine adapter) counts
what was really started.

Phases, entered and left together (a barrier):
- run: every process delivers run requests, a queue depth, a tick and a duplicate of its
  neighbour's message → exactly ONE lease grant and exactly ONE start acted on;
- stop: stop requests, ticks, duplicates → the VM stopped, no lease;
- kill: run requests keep coming while one process engages the kill switch → no start is
  issued by a delivery that began after the kill was committed; a final tick → stopped.
After all phases: every acknowledged fact is in the event log exactly once.

SQLite: 4 processes in ``make test``, 8 with ``--slow``. Firestore emulator: 2 processes
in ``make test`` (the emulator must be installed, or YOYO_SKIP_EMULATORS=1), 3 with --slow
(the emulator serialises contending transactions slowly: seconds per delivery).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import emulators
from compute_stub import ComputeStub
from reliability import concurrency_worker
from reliability.harness import scratch_dir
from reliability.invariants import STATS, TALLY
from yoyo_control import names

SUITE = "concurrency"
CONFIG: dict[str, Any] = {
    "budget": {"budget_ids": ["b-1"]},
    "pools": {
        "gpu": {
            "zone": "z",
            "instances": ["vm-0"],
            "hourly_price_usd": 3.6,
            "lease_s": 3600,
            "idle_timeout_s": 3600,
            "heartbeat_gap_s": 3600,
            "boot_grace_s": 3600,
            "action_retry_s": 120,
        }
    },
}
BARRIER_TIMEOUT_S = 600.0


def phases(rounds: int) -> list[tuple[str, int]]:
    plan = [(phase, r) for r in range(rounds) for phase in ("run", "stop")]
    return [*plan, ("run", rounds), ("kill", rounds), ("final", rounds)]


class Run:
    """The processes of one test, the stub and the parent's own store for the checks."""

    def __init__(self, stub: ComputeStub, store: Any, spec: dict[str, Any]) -> None:
        self.stub, self.store, self.spec = stub, store, spec
        self.grants_seen = 0

    def grants(self) -> int:
        return sum(
            1
            for e in self.store.events(limit=10**6)
            if e.kind == "decision" and " granted to " in e.reason
        )

    def vm(self) -> str:
        return self.stub.status("z", "vm-0")

    def lease(self) -> Any:
        state = self.store.get_pool("gpu")
        return state.lease

    def check(self, phase: str, round_: int) -> None:
        starts = len(self.stub.acted("start"))
        grants = self.grants()
        where = f"after {phase} {round_}"
        if phase == "run":
            TALLY[SUITE]["one-grant-one-start"].add(relevant=True)
            assert grants == self.grants_seen + 1, f"{where}: {grants - self.grants_seen} grants"
            assert starts == grants, f"{where}: {starts} starts acted for {grants} grants"
            assert self.vm() == "RUNNING", where
        elif phase == "stop":
            assert self.vm() == "TERMINATED" and self.lease() is None, (where, self.vm())
        elif phase == "final":
            TALLY[SUITE]["kill-wins"].add(relevant=True)
            assert self.store.get_kill().engaged, where
            assert self.vm() == "TERMINATED" and self.lease() is None, (where, self.vm())
            assert starts <= grants, f"{where}: {starts} starts for {grants} grants"
        self.grants_seen = grants


def run_processes(run: Run, workers: int) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    kill_done = ctx.Event()
    results = ctx.Queue()
    spec = {**run.spec, "workers": workers}
    procs = [
        ctx.Process(
            target=concurrency_worker.main,
            args=(i, spec, barrier, kill_done, results),
            name=f"yoyo-worker-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    reports: list[dict[str, Any]] = []
    broken = ""
    try:
        for proc in procs:
            proc.start()
        try:
            for phase, round_ in spec["phases"]:
                broken = f"{phase} {round_}"
                barrier.wait(BARRIER_TIMEOUT_S)  # all start the phase together …
                barrier.wait(BARRIER_TIMEOUT_S)  # … and have all finished it
                run.check(phase, round_)
            broken = ""
        except threading.BrokenBarrierError:
            pass  # a worker failed (its report says why), or the phase took too long
        finally:
            barrier.abort()  # a failed check must not leave the workers waiting
            for _ in procs:
                with contextlib.suppress(queue.Empty):
                    reports.append(results.get(timeout=60))
    finally:
        for proc in procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        results.close()
        results.join_thread()
    timings = sorted(t for r in reports for _, _, t in r.get("timings", ()))
    slowest = max((t, m) for r in reports for m, _, t in r.get("timings", ())) if timings else None
    if slowest:
        STATS[SUITE][f"{run.spec['store']}-slowest"] = slowest[1]
    if timings:
        STATS[SUITE][f"{run.spec['store']}-deliveries"] = len(timings)
        STATS[SUITE][f"{run.spec['store']}-p50-s"] = round(timings[len(timings) // 2], 3)
        STATS[SUITE][f"{run.spec['store']}-max-s"] = round(timings[-1], 3)
        redelivered = sum(a for r in reports for _, a, _ in r.get("timings", ()))
        STATS[SUITE][f"{run.spec['store']}-redeliveries"] = redelivered
    errors = [r["error"] for r in reports if r["error"]]
    real = [e for e in errors if not e.rstrip().endswith("BrokenBarrierError")]
    assert not real, "a worker failed:\n" + "\n".join(real)
    assert not broken, (
        f"phase {broken} did not finish within {BARRIER_TIMEOUT_S:.0f}s "
        f"({len(reports)} of {workers} workers reported; {len(timings)} deliveries done)"
    )
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    assert len(reports) == workers, f"{len(reports)} of {workers} workers reported"
    return reports


def check_after_all(run: Run, reports: list[dict[str, Any]]) -> None:
    # No start after the kill was known.
    late = [rid for r in reports for rid, kill_seen in r["starts"] if kill_seen]
    TALLY[SUITE]["no-start-after-kill-seen"].add(relevant=True)
    assert not late, f"starts issued by deliveries that began after the kill: {late}"
    assert all(r.get("after_kill", 0) >= 1 for r in reports), "no delivery began after the kill"
    # Exactly one start acted per request id (the stub acts once per id) and per grant.
    acted = [c.request_id for c in run.stub.acted("start")]
    assert len(acted) == len(set(acted))
    # Every acknowledged fact is in the event log exactly once.
    logged: dict[str, int] = {}
    for event in run.store.events(limit=10**6):
        if event.kind == "fact":
            logged[event.message_id] = logged.get(event.message_id, 0) + 1
    handled = {mid for r in reports for mid, _ in r["handled"]}
    TALLY[SUITE]["fact-logged-once"].add(relevant=True)
    missing = sorted(m for m in handled if logged.get(m) != 1)
    assert not missing, [(m, logged.get(m, 0)) for m in missing]
    assert set(logged) == handled


@pytest.fixture
def stub() -> Iterator[ComputeStub]:
    with ComputeStub(project="test-project") as server:
        server.add("z", "vm-0", "TERMINATED", labels={names.LABEL_POOL: "gpu"})
        yield server


def base_spec(stub: ComputeStub, rounds: int, per_worker: int) -> dict[str, Any]:
    return {
        "config": CONFIG,
        "compute_endpoint": stub.endpoint,
        "compute_project": stub.project,
        "phases": phases(rounds),
        "per_worker": per_worker,
        "barrier_timeout_s": BARRIER_TIMEOUT_S,
    }


def sqlite_run(stub: ComputeStub, directory: Path, rounds: int, per_worker: int) -> Run:
    from yoyo_control.adapters.sqlite_store import SqliteStore

    path = directory / "yoyo.sqlite3"
    store = SqliteStore(path)
    spec = {**base_spec(stub, rounds, per_worker), "store": "sqlite", "sqlite_path": str(path)}
    return Run(stub, store, spec)


@pytest.mark.timeout(600)
def test_processes_on_one_sqlite_file(stub: ComputeStub) -> None:
    with scratch_dir() as directory:
        run = sqlite_run(stub, directory, rounds=2, per_worker=4)
        try:
            check_after_all(run, run_processes(run, workers=4))
        finally:
            run.store.close()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_processes_on_one_sqlite_file_scaled_up(stub: ComputeStub) -> None:
    with scratch_dir() as directory:
        run = sqlite_run(stub, directory, rounds=6, per_worker=12)
        try:
            check_after_all(run, run_processes(run, workers=8))
        finally:
            run.store.close()


# --- Firestore emulator --------------------------------------------------------------------


@pytest.fixture(scope="module")
def firestore() -> Iterator[emulators.Emulator]:
    yield from emulators.session(emulators.start_firestore, "Firestore")


def firestore_run(
    stub: ComputeStub, emulator: emulators.Emulator, rounds: int, per_worker: int
) -> tuple[Run, Callable[[], None]]:
    from yoyo_control.adapters.firestore_store import FirestoreStore

    project = f"yoyo-rel-{uuid.uuid4().hex[:10]}"
    client = emulators.firestore_client(emulator.host, project)
    store = FirestoreStore(project, client=client)
    spec = {
        **base_spec(stub, rounds, per_worker),
        "store": "firestore",
        "firestore_host": emulator.host,
        "project": project,
    }
    return Run(stub, store, spec), client.close


@pytest.mark.emulator
@pytest.mark.timeout(600)
def test_processes_on_the_firestore_emulator(
    stub: ComputeStub, firestore: emulators.Emulator
) -> None:
    run, close = firestore_run(stub, firestore, rounds=0, per_worker=2)
    try:
        check_after_all(run, run_processes(run, workers=2))
    finally:
        close()


@pytest.mark.slow
@pytest.mark.emulator
@pytest.mark.timeout(1800)
def test_processes_on_the_firestore_emulator_scaled_up(
    stub: ComputeStub, firestore: emulators.Emulator
) -> None:
    run, close = firestore_run(stub, firestore, rounds=2, per_worker=3)
    try:
        check_after_all(run, run_processes(run, workers=3))
    finally:
        close()
