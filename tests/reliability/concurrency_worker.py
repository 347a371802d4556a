"""One process of the concurrency test: its own store client, its own Service, the real
Compute Engine adapter against the shared Compute REST stub (tests/compute_stub.py).

Runs in a spawned process (nothing inherited but the arguments). Phases are entered and
left together through a barrier shared with the test. Every start call is recorded with
whether the delivery that issued it began after the kill switch was known to be engaged
(``kill_done`` set by the process that engaged it, after its commit).
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

PHASES = ("run", "stop", "kill", "final")


def facts_for(phase: str, round_: int, index: int, workers: int, per_worker: int) -> list[Any]:
    """The facts this worker delivers in a phase (message ids unique per fact, except the
    deliberate duplicates: each worker also delivers one of its neighbour's messages)."""
    from yoyo_control.domain.facts import QueueDepthObserved, RunRequested, StopRequested, Tick

    now = time.time()
    neighbour = (index + 1) % workers
    if phase == "run":
        facts: list[Any] = [
            RunRequested(f"run-{round_}-{index}-{j}", now, "gpu", "wake", "request", 3600)
            for j in range(per_worker)
        ]
        facts.append(RunRequested(f"run-{round_}-{neighbour}-0", now, "gpu", "wake", "dup", 3600))
        facts.append(QueueDepthObserved(f"queue-{round_}-{index}", now, "gpu", 1, "producer"))
        facts.append(Tick(f"tick-run-{round_}-{index}", now))
    elif phase == "stop":
        facts = [
            StopRequested(f"stop-{round_}-{index}-{j}", now, "gpu", "ops", "done") for j in range(2)
        ]
        facts.append(StopRequested(f"stop-{round_}-{neighbour}-0", now, "gpu", "ops", "dup"))
        facts.append(Tick(f"tick-stop-{round_}-{index}", now))
        facts.append(QueueDepthObserved(f"drain-{round_}-{index}", now, "gpu", 0, "producer"))
    else:
        facts = [Tick(f"final-{round_}-{index}", now)]
    random.Random(f"{phase}/{round_}/{index}").shuffle(facts)
    return facts


def main(index: int, spec: dict[str, Any], barrier: Any, kill_done: Any, results: Any) -> None:
    report: dict[str, Any] = {"index": index, "handled": [], "starts": [], "error": None}
    try:
        _run(index, spec, barrier, kill_done, report)
    except BaseException:
        report["error"] = traceback.format_exc()
        barrier.abort()  # the test fails at once instead of waiting for a timeout
    finally:
        results.put(report)


def _build(spec: dict[str, Any]) -> tuple[Any, Any]:
    from google.auth.credentials import AnonymousCredentials

    from yoyo_control import logs
    from yoyo_control.adapters.clock import SystemClock
    from yoyo_control.adapters.compute_engine import ComputeEngine
    from yoyo_control.config import parse_config
    from yoyo_control.service import Service

    logs.set_stream(open("/dev/null", "w"))  # noqa: SIM115 — lives as long as the process
    if spec["store"] == "sqlite":
        from yoyo_control.adapters.sqlite_store import SqliteStore

        store: Any = SqliteStore(spec["sqlite_path"])
    else:
        import emulators
        from yoyo_control.adapters.firestore_store import FirestoreStore

        client = emulators.firestore_client(spec["firestore_host"], spec["project"])
        store = FirestoreStore(spec["project"], client=client, retry_deadline_s=60.0)
    engine = ComputeEngine(
        spec["compute_project"],
        client_options={"api_endpoint": spec["compute_endpoint"]},
        transport="rest",
        credentials=AnonymousCredentials(),
        poll_interval_s=0.001,
        operation_timeout_s=20.0,
        request_timeout_s=10.0,
    )
    engine.instances_client(), engine.operations_client()  # warm up before the clock runs
    service = Service(store, Recording(engine), SystemClock(), parse_config(spec["config"]))
    return service, engine


class Recording:
    """The Compute port, recording each start with what its delivery knew of the kill."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kill_seen = False
        self.starts: list[tuple[str, bool]] = []
        self.timings: list[tuple[str, int, float]] = []  # (message id, redeliveries, seconds)

    def list_instances(self, pool: str, zone: str) -> Any:
        return self.inner.list_instances(pool, zone)

    def get(self, zone: str, instance: str) -> Any:
        return self.inner.get(zone, instance)

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self.starts.append((request_id, self.kill_seen))
        self.inner.start(zone, instance, request_id)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self.inner.stop(zone, instance, request_id)


def _deliver(service: Any, recording: Recording, kill_done: Any, fact: Any) -> str:
    """Pub/Sub: redeliver on TemporaryError (with a little jitter) until acknowledged."""
    from yoyo_control.errors import TemporaryError

    for attempt in range(200):
        recording.kill_seen = kill_done.is_set()  # known before this delivery began
        began = time.monotonic()
        try:
            note = str(service.handle(fact).note)
            recording.timings.append((fact.message_id, attempt, time.monotonic() - began))
            return note
        except TemporaryError:
            time.sleep(random.uniform(0.001, 0.02))
    raise AssertionError(f"{fact.message_id}: still failing after 200 deliveries")


def _run(index: int, spec: dict[str, Any], barrier: Any, kill_done: Any, report: Any) -> None:

    service, engine = _build(spec)
    recording = service.compute
    timeout = spec["barrier_timeout_s"]
    try:
        for phase, round_ in spec["phases"]:
            barrier.wait(timeout)
            if phase == "kill":
                _kill_phase(index, spec, round_, service, recording, kill_done, report)
            else:
                facts = facts_for(phase, round_, index, spec["workers"], spec["per_worker"])
                for fact in facts:
                    note = _deliver(service, recording, kill_done, fact)
                    report["handled"].append((fact.message_id, note))
            barrier.wait(timeout)
    finally:
        report["starts"] = recording.starts
        report["timings"] = recording.timings
        engine.close()


def _kill_phase(
    index: int,
    spec: dict[str, Any],
    round_: int,
    service: Any,
    recording: Any,
    kill_done: Any,
    report: Any,
) -> None:
    """Run requests keep coming while worker 0 engages the kill switch; each worker goes on
    until it has delivered a few requests that began after the kill was known."""
    from yoyo_control.domain.facts import KillRequested, RunRequested

    after, j = 0, 0
    deadline = time.monotonic() + spec["barrier_timeout_s"] / 2
    while (j < spec["per_worker"] or after < 3) and time.monotonic() < deadline:
        known = kill_done.is_set()
        fact = RunRequested(f"late-{round_}-{index}-{j}", time.time(), "gpu", "wake", "late", 3600)
        report["handled"].append((fact.message_id, _deliver(service, recording, kill_done, fact)))
        after += int(known)
        j += 1
        if index == 0 and j == 2:
            kill = KillRequested(f"kill-{round_}", time.time(), "maintenance", "ops")
            report["handled"].append(
                (kill.message_id, _deliver(service, recording, kill_done, kill))
            )
            kill_done.set()  # committed and acted on: everyone may know it now
    report["after_kill"] = report.get("after_kill", 0) + after
