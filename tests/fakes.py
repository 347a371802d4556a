"""In-memory Compute Engine that behaves like the real service (for unit tests), a
publisher that records what it was given (where the bus is not under test), and a store
that refuses writes as Firestore does for a read-only account.

Invariants: statuses move through the real lifecycle (TERMINATED → STAGING → RUNNING →
STOPPING → TERMINATED) as the test advances ``settle()``; a request id already seen is
not acted on twice; start/stop of an unknown instance raise InstanceNotFound;
injected faults raise TemporaryError/PermanentError like the adapter maps 429/5xx/quota.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yoyo_control import names
from yoyo_control.errors import InstanceNotFound, TemporaryError
from yoyo_control.ports import ObservedInstance


@dataclass
class Call:
    kind: str
    instance: str
    request_id: str
    acted: bool


@dataclass
class FakeCompute:
    pools: dict[str, list[str]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    faults: list[Exception] = field(default_factory=list)  # raised by the next calls, in order
    instant: bool = True  # operations finish before the call returns (like a waited op)
    on_call: Callable[[str, str, str], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, pool: str, instance: str, status: str = "TERMINATED") -> None:
        self.pools.setdefault(pool, []).append(instance)
        self.status[instance] = status
        self.labels[instance] = pool

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        with self.lock:
            return [
                ObservedInstance(name, self.status[name], {names.LABEL_POOL: pool})
                for name, owner in self.labels.items()
                if owner == pool
            ]

    def get(self, zone: str, instance: str) -> ObservedInstance:
        with self.lock:
            if instance not in self.status:
                raise InstanceNotFound(f"instance {instance} not found")
            return ObservedInstance(instance, self.status[instance])

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self._act("start", instance, request_id)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self._act("stop", instance, request_id)

    def _act(self, kind: str, instance: str, request_id: str) -> None:
        if self.on_call is not None:
            self.on_call(kind, instance, request_id)
        with self.lock:
            if self.faults:
                raise self.faults.pop(0)
            if instance not in self.status:
                raise InstanceNotFound(f"instance {instance} not found")
            acted = request_id not in self.seen
            self.calls.append(Call(kind, instance, request_id, acted))
            if not acted:
                return
            self.seen.add(request_id)
            current = self.status[instance]
            if kind == "start":
                if current == "STOPPING":
                    raise TemporaryError(f"instance {instance} is stopping (409)")
                if current in ("TERMINATED", "SUSPENDED"):
                    self.status[instance] = "RUNNING" if self.instant else "STAGING"
            elif current not in ("TERMINATED", "STOPPING"):
                self.status[instance] = "TERMINATED" if self.instant else "STOPPING"

    def settle(self) -> None:
        """Let every pending operation finish (STAGING → RUNNING, STOPPING → TERMINATED)."""
        with self.lock:
            for name, status in self.status.items():
                self.status[name] = {"STAGING": "RUNNING", "STOPPING": "TERMINATED"}.get(
                    status, status
                )

    def preempt(self, instance: str) -> None:
        with self.lock:
            self.status[instance] = "TERMINATED"

    def acted(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind and c.acted]


class RecordingPublisher:
    """ports.Publisher that keeps what it was given, for tests where the bus is not under
    test (the agent's heartbeats); message ids are numbered like Pub/Sub's."""

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        self.data.append(data)
        return str(len(self.data))


class ReadOnlyStore:
    """A store as roles/datastore.viewer sees it (the gateway's account in the cloud):
    reads pass to ``store``, every write (a transaction, a heartbeat, a batch record) is
    refused as Firestore refuses it, with google.api_core's PermissionDenied (403)."""

    WRITES = ("transact", "put_heartbeat", "update_batch", "append")

    def __init__(self, store: Any) -> None:
        self._store = store
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self.WRITES:

            def refuse(*args: Any, **kwargs: Any) -> Any:
                from google.api_core.exceptions import PermissionDenied

                self.refused.append(name)
                raise PermissionDenied("Missing or insufficient permissions.")

            return refuse
        if name == "watch_kill":  # only Firestore's store has a listener (a read)
            raise AttributeError(name)
        return getattr(self._store, name)
