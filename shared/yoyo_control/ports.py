"""The ports: what the service needs from the outside world, as Protocols.

Invariants: the service and the domain depend only on these; every adapter in
``adapters/`` implements one of them; only adapters import google.*, sqlite3 or
read the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeVar, runtime_checkable

from .domain.batch import Batch
from .domain.model import Heartbeat, KillSwitch, PoolState

T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """One entry of the event log: a fact, a decision, an action outcome or a rejection."""

    id: str  # facts: "fact:<origin>:<message id>" (service.fact_event_id); others: unique
    kind: str  # "fact" | "decision" | "action" | "rejected" | "error"
    at: float
    pool: str = ""
    message_id: str = ""
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


class Transaction(Protocol):
    """Reads first, then writes; the store commits all or nothing."""

    def load_pool(self, pool: str) -> PoolState: ...
    def load_kill(self) -> KillSwitch: ...
    def has_event(self, event_id: str) -> bool: ...
    def save_pool(self, state: PoolState) -> None: ...
    def save_kill(self, kill: KillSwitch) -> None: ...
    def append(self, event: Event) -> None: ...


@runtime_checkable
class PoolDocuments(Protocol):
    """A store that reads many pools' documents in one call (an optional capability:
    the kill's brake reads every pool at once through it, else pool by pool)."""

    def get_pools(self, pools: Sequence[str]) -> dict[str, PoolState]:
        """The pools' documents (a pool without one: absent), heartbeats NOT included."""
        ...


class Store(Protocol):
    def transact(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` in one serialisable transaction (retried on contention).

        ``fn`` may be called more than once; it must not have side effects outside
        the transaction. Raises TemporaryError when contention does not clear.
        """
        ...

    def get_kill(self) -> KillSwitch: ...
    def get_pool(self, pool: str) -> PoolState: ...
    def list_pools(self) -> list[str]: ...
    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        """The instance's stored heartbeat (one document read)."""
        ...

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        """Store the instance's latest heartbeat; return the one it replaced."""
        ...

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        """The newest ``limit`` events (optionally of one pool, after ``since``), oldest first."""
        ...

    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch record (one document read); None if there is none."""
        ...

    def list_batches(self, pool: str | None = None, pending: bool = False) -> list[Batch]:
        """Batch records (of one pool; only those not yet terminal), newest first."""
        ...

    def update_batch(
        self, batch_id: str, change: Callable[[Batch | None], Batch | None]
    ) -> Batch | None:
        """In one transaction: read the record, save ``change(record)`` unless it is None
        or unchanged, return what is stored after. ``change`` may run more than once."""
        ...


@dataclass(frozen=True)
class ObservedInstance:
    name: str
    status: str  # Compute Engine status: RUNNING, TERMINATED, STAGING, …
    labels: Mapping[str, str] = field(default_factory=dict)


class Compute(Protocol):
    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        """Every instance labelled for ``pool`` in ``zone``."""
        ...

    def get(self, zone: str, instance: str) -> ObservedInstance: ...

    def start(self, zone: str, instance: str, request_id: str) -> None:
        """Start and wait (bounded) for the operation. Idempotent per request_id."""
        ...

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        """Stop and wait (bounded) for the operation. Idempotent per request_id."""
        ...


class Publisher(Protocol):
    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish and return the message id."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...


class IdentityVerifier(Protocol):
    def claims(self, token: str) -> Mapping[str, Any]:
        """The claims of a signed identity token whose signature, expiry and audience hold.

        Raises InvalidMessage when the token is not good (acknowledge: a redelivery would
        not make it good) and TemporaryError when the signing keys cannot be fetched.
        """


class UpstreamLost(Exception):
    """The VM could not be reached, or stopped answering mid-response.

    ``kind`` says whose failure it is: ``connect`` (no connection: the VM's or the
    network's), ``timeout`` (silence after the request was sent), ``dropped`` (the server
    took the request and closed without a whole answer: perhaps this request's own),
    ``not_ready`` (the server answered 503 before running it: its model is loading).
    """

    def __init__(self, message: str, kind: str = "dropped") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamResponse(Protocol):
    status: int
    content_type: str

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (raises UpstreamLost when the VM goes away)."""
        ...

    async def close(self) -> None: ...


class Upstream(Protocol):
    """The gateway's way to a VM's inference server (vLLM's OpenAI API), async."""

    async def post(self, address: str, path: str, body: bytes) -> UpstreamResponse:
        """POST ``body`` (JSON) to ``http://address/path``; raises UpstreamLost."""
        ...


class Storage(Protocol):
    """Objects by key in one bucket (Cloud Storage) or directory (embedded default).

    Keys are "/"-separated names without a leading "/" or "." / ".." parts. A ``put``
    is durable and atomic when it returns: readers see the whole object or none.
    Transient failures raise TemporaryError.
    """

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) the whole object."""
        ...

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes | None:
        """Bytes ``[start, end)`` of the object (to its end if ``end`` is None); None if absent."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes; None if absent."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; absent is fine."""
        ...

    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A stream that writes the whole object in bounded memory; the object is
        replaced only when the block ends without an exception (else nothing is left)."""
        ...


@runtime_checkable
class SignedUrls(Protocol):
    """A Storage that can hand out a short-lived link to one object (Cloud Storage's V4
    signed URLs): large contents then leave by the link, not through the gateway."""

    def signed_url(self, key: str, expires_s: int, filename: str) -> str:
        """A URL that GETs the object ``key`` without credentials for ``expires_s``
        seconds, downloaded as ``filename``; TemporaryError if it cannot be made now."""
        ...


@dataclass(frozen=True)
class ScheduledJob:
    """One scheduler job as an operator reads it (``yoyoctl schedule``)."""

    job: str  # its short name
    schedule: str  # a cron expression, or "every 0.5s" for the local stack's fast tick
    time_zone: str
    state: str  # ENABLED, PAUSED, …
    next_at: float | None
    last_attempt_at: float | None = None


@dataclass(frozen=True)
class CycleRun:
    """A pool's cycle run now: a scheduler job forced (``job``), or its message published
    directly (``window`` and ``message_id``)."""

    pool: str
    job: str = ""
    window: str = ""
    message_id: str = ""


class Scheduler(Protocol):
    """The cycle and tick jobs: Cloud Scheduler's, or the local stack's own."""

    def list_jobs(self, now: float) -> list[ScheduledJob]:
        """This deployment's jobs, with their next fire time after ``now``."""
        ...

    def run_cycle(self, pool: str) -> CycleRun:
        """Run the pool's cycle now, as its scheduled job would."""
        ...


@dataclass(frozen=True)
class Metrics:
    """What a model server says of its work: requests running and waiting now, and a
    counter that grows as requests finish (sums over every label set)."""

    running: int = 0
    waiting: int = 0
    succeeded: float = 0.0  # vLLM: vllm:request_success_total


class ModelServer(Protocol):
    """The VM's OpenAI-compatible model server (vLLM by default): where it listens, whether
    it is ready (``/health``) and how loaded it is (its metrics, under configured names).
    How it is started is the VM's business (the systemd unit; locally a command)."""

    base_url: str  # e.g. http://127.0.0.1:8000 (its /v1 is what the gateway forwards to)

    def ready(self) -> bool:
        """It answers its health check now."""
        ...

    def load(self) -> Metrics | None:
        """Its load now, or None when it does not answer (not ready)."""
        ...


class QueuedMessage(Protocol):
    """One message pulled from a work queue, until it is acknowledged or handed back."""

    @property
    def ack_id(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def attributes(self) -> dict[str, str]: ...


class WorkQueue(Protocol):
    """A pool's work subscription as the worker uses it (Pub/Sub, its emulator or the
    local bus): at-least-once, a message redelivered unless acknowledged within its
    deadline. Every call raises OSError when the queue cannot be reached."""

    def pull(self, max_messages: int = 1) -> Sequence[QueuedMessage]: ...
    def extend(self, ack_id: str, seconds: int) -> None:
        """Set the message's ack deadline to ``seconds`` from now (0: hand it back now)."""
        ...

    def acknowledge(self, ack_id: str) -> None: ...
