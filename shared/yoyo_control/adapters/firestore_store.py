"""Firestore store: the production ``Store`` (same semantics and documents as SqliteStore).

Layout (names.py): ``yoyo_pools/{pool}`` holds the PoolState document without its
heartbeats; ``yoyo_pools/{pool}/instances/{instance}`` one heartbeat each;
``yoyo_control/kill_switch`` the switch; ``yoyo_events/{event id}`` the event log, with
the TTL field ``expire_at`` (wall clock + ``event_ttl_days``).

Invariants:
- ``transact`` runs ``fn`` in a real Firestore read-write transaction. Reads go through
  the transaction; writes are buffered on the Transaction object (read-your-writes, like
  SQLite) and handed to Firestore only after ``fn`` returned, so every read precedes
  every write and a ``fn`` that raises writes nothing.
- Contention (ABORTED at read or commit, "too much contention", lock timeouts) and
  transient unavailability are retried: the client retries a commit up to
  ``max_attempts`` times keeping the transaction's place in line, and this adapter
  re-runs the whole transaction with jittered backoff until ``retry_deadline_s``;
  then TemporaryError. Every other error propagates unchanged. (A commit that timed out
  may still have applied: the re-run then reads what it wrote, which the service's
  transactions handle, being idempotent on the fact id.)
- ``append`` is idempotent on the event id: the first event with an id wins (ids are
  checked inside the transaction, in one batched read at flush time).
- ``events()`` orders by (``at``, commit time, position in its transaction): a stable
  total order equal to insertion order whenever ``at`` does not go backwards.
- One store object runs at most ``concurrency`` transactions at a time (``serialize``,
  on by default; ``concurrency`` 1 by default): the threads of one process queue in
  memory instead of contending on the same documents (Firestore serialises
  transactions on a document anyway, DESIGN.md §4b). The service's fan-out
  (``fanout.pools``, bootstrap.store_options) raises it: its threads work on different
  pools, independent documents. Threads or processes that do meet on a document
  contend, and that is handled by the retries above.
- No client or network connection is made before the first call.

Kill switch documents written by an operator in the console are read leniently
(``kill_from_doc``): ``engaged`` may be a bool, a number (0 is released), or a string,
case-insensitive: "false", "f", "no", "n", "off", "0", "", "disengaged", "none", "null"
mean released, "true", "yes", "on", "1"… engaged; a missing or null ``engaged`` (or a
missing document) means released; ANY other value (unknown text, a map) counts as
engaged, because the kill switch wins and lifting it must be explicit. ``at`` may be a
Firestore timestamp, a number of seconds, a numeric or ISO-8601 string, or missing; it
is shown, never trusted: the switch's ``changed_at`` is the document's update time
(its commit time in Firestore), whatever a writer put in ``at``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from .. import names
from ..domain.batch import Batch
from ..domain.codec import from_doc, to_doc
from ..domain.heartbeats import merge
from ..domain.killswitch import kill_from_fields
from ..domain.model import Heartbeat, KillSwitch, PoolState
from ..errors import TemporaryError
from ..ports import Event

T = TypeVar("T")

# Worth retrying: contention and transient server trouble (after the client's own retries).
_TRANSIENT = (
    gexc.Aborted,
    gexc.DeadlineExceeded,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.TooManyRequests,
)
_COMMIT_EXHAUSTED = "Failed to commit transaction"  # the client's ValueError after max_attempts
_MAX_ID_BYTES = 1500
_RESERVED_ID = re.compile(r"^__.*__$")
_INT64 = (-(2**63), 2**63 - 1)


# --- documents -----------------------------------------------------------------------


def doc_id(key: str) -> str:
    """A valid Firestore document id for ``key`` (injective; readable when already valid).

    Firestore ids may not contain '/', be '.' or '..', match ``__.*__`` or exceed 1500
    bytes; ':' is fine. '%' and '/' are percent-encoded, reserved forms get an encoded
    first character, and over-long keys become ``%H<sha256>``.
    """
    encoded = key.replace("%", "%25").replace("/", "%2F")
    if encoded == "":
        encoded = "%00"
    elif encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    elif _RESERVED_ID.match(encoded):
        encoded = "%5F" + encoded[1:]
    if len(encoded.encode()) > _MAX_ID_BYTES:
        encoded = "%H" + hashlib.sha256(key.encode()).hexdigest()
    return encoded


def pool_to_doc(state: PoolState) -> dict[str, Any]:
    doc: dict[str, Any] = to_doc(state)
    doc.pop("heartbeats", None)  # heartbeats live in their own documents
    return doc


def kill_from_doc(doc: Mapping[str, Any] | None) -> KillSwitch:
    """The kill switch from a stored (or hand-written) document (domain/killswitch.py)."""
    return kill_from_fields(doc)


def kill_from_snapshot(snap: Any) -> KillSwitch:
    """The kill switch with ``changed_at`` = the document's commit time (``update_time``,
    set by Firestore: whoever wrote it, with whatever ``at``, cannot move it)."""
    if not snap.exists:
        return KillSwitch()
    kill = kill_from_doc(snap.to_dict())
    committed = snap.update_time
    return replace(kill, changed_at=committed.timestamp() if committed else None)


def kill_to_doc(kill: KillSwitch) -> dict[str, Any]:
    doc: dict[str, Any] = to_doc(kill)
    doc.pop("changed_at", None)  # the document's update_time says it (kill_from_snapshot)
    return doc


def _storable(value: Any, in_array: bool = False) -> bool:
    """True when Firestore can store ``value`` as is (no nested arrays, odd keys, big ints)."""
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and k and not _RESERVED_ID.match(k) and _storable(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return not in_array and all(_storable(v, True) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _INT64[0] <= value <= _INT64[1]
    return True


def _event_doc(event: Event, expire_at: datetime, position: int) -> dict[str, Any]:
    # The same JSON normalisation as the SQLite store, so both return equal data.
    data = json.loads(json.dumps(to_doc(event.data), default=str))
    doc: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind,
        "at": float(event.at),
        "pool": event.pool,
        "message_id": event.message_id,
        "reason": event.reason,
        names.EVENT_TTL_FIELD: expire_at,
        "committed_at": firestore.SERVER_TIMESTAMP,
        "n": position,
    }
    if _storable(data):
        doc["data"] = data
    else:
        doc["data_json"] = json.dumps(data)
    return doc


def _event_from_doc(doc: Mapping[str, Any]) -> Event:
    data = json.loads(doc["data_json"]) if "data_json" in doc else doc.get("data") or {}
    return Event(
        id=doc["id"],
        kind=doc.get("kind", ""),
        at=float(doc.get("at", 0.0)),
        pool=doc.get("pool", ""),
        message_id=doc.get("message_id", ""),
        reason=doc.get("reason", ""),
        data=data,
    )


def _contention(exc: BaseException) -> Exception | None:
    """The contention or transient error behind ``exc`` (itself or what it interrupted)."""
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            return None
        if isinstance(seen, _TRANSIENT):
            return seen
        if isinstance(seen, ValueError) and str(seen).startswith(_COMMIT_EXHAUSTED):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def _temporary_on_transient(what: str) -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        raise TemporaryError(f"firestore {what}: {exc}") from exc


# --- the transaction -----------------------------------------------------------------


class _FirestoreTx:
    """One attempt of a transaction: reads through Firestore, writes buffered until flush."""

    def __init__(self, store: FirestoreStore, txn: firestore.Transaction) -> None:
        self._store = store
        self._txn = txn
        self._pools: dict[str, PoolState] = {}
        self._kill: KillSwitch | None = None
        self._events: dict[str, Event] = {}  # insertion-ordered
        self._exists: dict[str, bool] = {}  # event ids read in this transaction

    def _read(self, ref: Any) -> dict[str, Any] | None:
        snap = self._snapshot(ref)
        return snap.to_dict() if snap.exists else None

    def _snapshot(self, ref: Any) -> Any:
        (snap,) = list(self._txn.get(ref))  # drain the stream: it ends the RPC
        return snap

    def load_pool(self, pool: str) -> PoolState:
        doc = self._read(self._store.pool_ref(pool))
        query = self._store.heartbeats_ref(pool).order_by(FieldPath.document_id())
        beats = [from_doc(Heartbeat, s.to_dict() or {}) for s in self._txn.get(query)]
        state = self._pools.get(pool)
        if state is None:
            state = from_doc(PoolState, doc) if doc is not None else PoolState(pool=pool)
        return replace(state, heartbeats={hb.instance: hb for hb in beats})

    def load_kill(self) -> KillSwitch:
        snap = self._snapshot(self._store.kill_ref())
        return self._kill if self._kill is not None else kill_from_snapshot(snap)

    def has_event(self, event_id: str) -> bool:
        if event_id in self._events:
            return True
        if event_id not in self._exists:
            self._exists[event_id] = self._read(self._store.event_ref(event_id)) is not None
        return self._exists[event_id]

    def save_pool(self, state: PoolState) -> None:
        self._pools[state.pool] = replace(state, heartbeats={})

    def save_kill(self, kill: KillSwitch) -> None:
        self._kill = kill

    def append(self, event: Event) -> None:
        if event.id not in self._events and not self._exists.get(event.id, False):
            self._events[event.id] = event

    def flush(self) -> None:
        """Hand the buffered writes to the Firestore transaction (after the last read)."""
        unchecked = [self._store.event_ref(i) for i in self._events if i not in self._exists]
        existing: set[str] = set()
        if unchecked:  # (an empty BatchGetDocuments fails on the emulator)
            existing = {s.id for s in self._txn.get_all(unchecked) if s.exists}
        for pool, state in self._pools.items():
            self._txn.set(self._store.pool_ref(pool), pool_to_doc(state))
        if self._kill is not None:
            self._txn.set(self._store.kill_ref(), kill_to_doc(self._kill))
        expire_at = datetime.now(UTC) + timedelta(days=self._store.event_ttl_days)
        fresh = [e for e in self._events.values() if doc_id(e.id) not in existing]
        for position, event in enumerate(fresh):
            self._txn.set(self._store.event_ref(event.id), _event_doc(event, expire_at, position))


# --- the store -----------------------------------------------------------------------


GET_ALL_CHUNK = 300  # documents per batched read (get_pools): one streamed response each


class FirestoreStore:
    """The Store port on Firestore (native mode). Thread-safe; one client per store."""

    def __init__(
        self,
        project: str,
        database: str = "(default)",
        event_ttl_days: int = 30,
        client: firestore.Client | None = None,
        *,
        max_attempts: int = 5,
        retry_deadline_s: float = 30.0,
        serialize: bool = True,
        concurrency: int = 1,
    ) -> None:
        self.project = project
        self.database = database
        self.event_ttl_days = event_ttl_days
        self.max_attempts = max_attempts
        self.retry_deadline_s = retry_deadline_s
        self.serialize = serialize
        self.stats: Counter[str] = Counter()  # transactions, attempts, reruns, temporary
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        # held by each transaction attempt in flight
        self._turn = threading.BoundedSemaphore(max(1, concurrency))
        self._local = threading.local()

    # --- plumbing --------------------------------------------------------------------

    @property
    def client(self) -> firestore.Client:
        with self._lock:
            if self._client is None:
                self._client = firestore.Client(project=self.project, database=self.database)
            return self._client

    def close(self) -> None:
        """Close the client this store created (an injected client belongs to the caller)."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()  # type: ignore[no-untyped-call]
                self._client = None

    def pool_ref(self, pool: str) -> Any:
        return self.client.collection(names.COLLECTION_POOLS).document(doc_id(pool))

    def heartbeats_ref(self, pool: str) -> Any:
        return self.pool_ref(pool).collection(names.SUBCOLLECTION_INSTANCES)

    def kill_ref(self) -> Any:
        return self.client.collection(names.COLLECTION_CONTROL).document(names.DOC_KILL_SWITCH)

    def event_ref(self, event_id: str) -> Any:
        return self.client.collection(names.COLLECTION_EVENTS).document(doc_id(event_id))

    def _count(self, **counts: int) -> None:
        with self._lock:
            self.stats.update(counts)

    @contextlib.contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        """This store's transactions run one at a time (see ``serialize``)."""
        if getattr(self._local, "active", False):
            raise RuntimeError("transact() called inside a transaction of the same store")
        with self._turn if self.serialize else contextlib.nullcontext():
            self._local.active = True
            try:
                yield
            finally:
                self._local.active = False

    def _run(self, body: Callable[[firestore.Transaction], T]) -> T:
        """Run ``body`` in a read-write transaction, retried as the module docstring says."""
        raised: BaseException | None = None  # what ``body`` itself raised in the last attempt

        def attempt(txn: firestore.Transaction) -> T:
            nonlocal raised
            raised = None
            self._count(attempts=1)
            try:
                return body(txn)
            except BaseException as exc:
                raised = exc
                raise

        wrapped = firestore.transactional(attempt)
        deadline = time.monotonic() + self.retry_deadline_s
        delay = 0.05
        self._count(transactions=1)
        while True:
            try:
                with self._one_at_a_time():
                    result: T = wrapped(self.client.transaction(max_attempts=self.max_attempts))
                    return result
            except Exception as exc:
                if raised is not None:  # ``body`` failed (``exc`` may be a failed rollback)
                    if not isinstance(raised, _TRANSIENT):
                        if raised is exc:
                            raise
                        raise raised from exc
                    failure: Exception = raised
                else:  # begin or commit failed
                    contention = _contention(exc)
                    if contention is None:
                        raise
                    failure = contention
            pause = delay * random.uniform(0.5, 1.5)
            if time.monotonic() + pause > deadline:
                self._count(temporary=1)
                raise TemporaryError(f"firestore transaction contended: {failure}") from failure
            self._count(reruns=1)
            time.sleep(pause)
            delay = min(delay * 2, 1.0)

    # --- Store -----------------------------------------------------------------------

    def transact(self, fn: Callable[[Any], T]) -> T:
        def body(txn: firestore.Transaction) -> T:
            tx = _FirestoreTx(self, txn)
            result = fn(tx)
            tx.flush()
            return result

        return self._run(body)

    def get_kill(self) -> KillSwitch:
        with _temporary_on_transient("get kill switch"):
            snap = self.kill_ref().get()
        return kill_from_snapshot(snap)

    def watch_kill(self, on_change: Callable[[KillSwitch], None]) -> Callable[[], None]:
        """Push the kill switch to ``on_change`` now and on every change (a Firestore
        listener: billed one read per change, not per look); returns the stop.

        https://cloud.google.com/firestore/docs/query-data/listen — "Listen to a
        document"; billed reads: https://cloud.google.com/firestore/pricing#listens
        """

        def changed(snaps: list[Any], _changes: Any, _read_time: Any) -> None:
            for snap in snaps:
                on_change(kill_from_snapshot(snap))

        watch = self.kill_ref().on_snapshot(changed)
        return watch.unsubscribe  # type: ignore[no-any-return]

    def get_pool(self, pool: str) -> PoolState:
        with _temporary_on_transient("get pool"):
            snap = self.pool_ref(pool).get()
            beats = [from_doc(Heartbeat, s.to_dict()) for s in self.heartbeats_ref(pool).stream()]
        doc = snap.to_dict() if snap.exists else None
        state = from_doc(PoolState, doc) if doc is not None else PoolState(pool=pool)
        return replace(state, heartbeats={hb.instance: hb for hb in beats})

    def get_pools(self, pools: Sequence[str]) -> dict[str, PoolState]:
        """The pools' documents in batched reads (BatchGetDocuments, ``GET_ALL_CHUNK``
        a call) instead of one read and one query per pool; heartbeats NOT included
        (ports.PoolDocuments). Billed one read per document, as get_pool's first read."""
        by_id = {doc_id(p): p for p in pools}
        found: dict[str, PoolState] = {}
        refs = [self.pool_ref(p) for p in pools]
        with _temporary_on_transient("get pools"):
            for i in range(0, len(refs), GET_ALL_CHUNK):
                for snap in self.client.get_all(refs[i : i + GET_ALL_CHUNK]):
                    doc = snap.to_dict() if snap.exists else None
                    if doc is not None and snap.id in by_id:
                        found[by_id[snap.id]] = from_doc(PoolState, doc)
        return found

    def list_pools(self) -> list[str]:
        with _temporary_on_transient("list pools"):
            snaps = self.client.collection(names.COLLECTION_POOLS).select(["pool"]).stream()
            return sorted((s.to_dict() or {}).get("pool") or s.id for s in snaps)

    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        snap = self.heartbeats_ref(pool).document(doc_id(instance)).get()
        return from_doc(Heartbeat, snap.to_dict()) if snap.exists else None

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        ref = self.heartbeats_ref(pool).document(doc_id(heartbeat.instance))

        def body(txn: firestore.Transaction) -> Heartbeat | None:
            (snap,) = list(txn.get(ref))
            previous = from_doc(Heartbeat, snap.to_dict() or {}) if snap.exists else None
            stored = merge(previous, heartbeat)
            if stored is not None:
                txn.set(ref, to_doc(stored))
            return previous

        return self._run(body)

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        if limit <= 0:
            return []
        query: Any = self.client.collection(names.COLLECTION_EVENTS)
        if pool is not None:
            query = query.where(filter=FieldFilter("pool", "==", pool))
        if since is not None:
            query = query.where(filter=FieldFilter("at", ">", float(since)))
        for key in ("at", "committed_at", "n"):
            query = query.order_by(key, direction=firestore.Query.DESCENDING)
        with _temporary_on_transient("read events"):
            docs = [s.to_dict() for s in query.limit(limit).stream()]
        return [_event_from_doc(d) for d in reversed(docs)]

    # --- batch records (yoyo_batches/{id}: the Batch document plus ``pending``) -------

    def batch_ref(self, batch_id: str) -> Any:
        return self.client.collection(names.COLLECTION_BATCHES).document(doc_id(batch_id))

    def get_batch(self, batch_id: str) -> Batch | None:
        with _temporary_on_transient("get batch"):
            snap = self.batch_ref(batch_id).get()
        return from_doc(Batch, snap.to_dict()) if snap.exists else None

    def list_batches(self, pool: str | None = None, pending: bool = False) -> list[Batch]:
        query: Any = self.client.collection(names.COLLECTION_BATCHES)
        if pool is not None:
            query = query.where(filter=FieldFilter("pool", "==", pool))
        if pending:
            query = query.where(filter=FieldFilter("pending", "==", True))
        with _temporary_on_transient("list batches"):
            batches = [from_doc(Batch, s.to_dict()) for s in query.stream()]
        return sorted(batches, key=lambda x: (x.created_at, x.id), reverse=True)

    def update_batch(
        self, batch_id: str, change: Callable[[Batch | None], Batch | None]
    ) -> Batch | None:
        ref = self.batch_ref(batch_id)

        def body(txn: firestore.Transaction) -> Batch | None:
            (snap,) = list(txn.get(ref))
            current = from_doc(Batch, snap.to_dict() or {}) if snap.exists else None
            new = change(current)
            if new is None or new == current:
                return current
            if new.id != batch_id:
                raise ValueError(f"update_batch({batch_id!r}) returned batch {new.id!r}")
            txn.set(ref, {**to_doc(new), "pending": not new.terminal})
            return new

        return self._run(body)
