"""MemoryStore: ports.Store in one process's memory (the simulator's and benchmarks' store).

Invariants (the same contract as SqliteStore and FirestoreStore):
- ``transact`` is serialisable: one lock, reads see committed state plus the
  transaction's own writes, and the writes are committed only when ``fn`` returns (an
  exception commits nothing);
- heartbeats live beside the pool (``load_pool`` merges them in, ``save_pool`` ignores
  them), and ``put_heartbeat`` keeps the newest per ``domain.heartbeats.merge``;
- an event id is appended once (the first wins); ``events()`` returns the newest
  ``limit`` matches ordered by (``at``, insertion), oldest first, like the other stores.
  With ``max_events`` the log (and the ids it remembers) is bounded, like Firestore's
  TTL: a duplicate older than the window is not recognised;
- ``roundtrip=True`` stores documents through the codec (to_doc/from_doc) and event data
  as plain JSON, so a value that would not survive a real document store fails here too
  (this mode passes tests/contract); the default keeps objects as given (faster).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..domain.codec import from_doc, to_doc
from ..domain.heartbeats import merge
from ..domain.model import Heartbeat, KillSwitch, PoolState
from ..ports import Event

T = TypeVar("T")


class _Tx:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._pools: dict[str, PoolState] = {}
        self._kill: KillSwitch | None = None
        self._events: dict[str, Event] = {}

    def load_pool(self, pool: str) -> PoolState:
        state = self._pools.get(pool)
        if state is None:
            state = self._store._load(pool)
        beats = self._store._beats.get(pool, {})
        return replace(state, heartbeats=dict(beats))

    def load_kill(self) -> KillSwitch:
        return self._kill if self._kill is not None else self._store._kill

    def has_event(self, event_id: str) -> bool:
        return event_id in self._events or event_id in self._store._events

    def save_pool(self, state: PoolState) -> None:
        self._pools[state.pool] = replace(state, heartbeats={})

    def save_kill(self, kill: KillSwitch) -> None:
        self._kill = kill

    def append(self, event: Event) -> None:
        if not self.has_event(event.id):
            self._events[event.id] = event


class MemoryStore:
    def __init__(self, max_events: int | None = None, roundtrip: bool = False) -> None:
        self.max_events = max_events
        self.roundtrip = roundtrip
        self._lock = threading.RLock()
        self._pools: dict[str, Any] = {}
        self._beats: dict[str, dict[str, Heartbeat]] = {}
        self._kill = KillSwitch()
        self._events: OrderedDict[str, Event] = OrderedDict()

    def _load(self, pool: str) -> PoolState:
        stored = self._pools.get(pool)
        if stored is None:
            return PoolState(pool=pool)
        return from_doc(PoolState, stored) if self.roundtrip else stored  # type: ignore[no-any-return]

    def _commit(self, tx: _Tx) -> None:
        for pool, state in tx._pools.items():
            self._pools[pool] = to_doc(state) if self.roundtrip else state
        if tx._kill is not None:
            self._kill = from_doc(KillSwitch, to_doc(tx._kill)) if self.roundtrip else tx._kill
        for event_id, event in tx._events.items():
            if self.roundtrip:
                data = json.loads(json.dumps(to_doc(event.data), default=str))
                event = replace(event, data=data)
            self._events[event_id] = event
        if self.max_events is not None:
            while len(self._events) > self.max_events:
                self._events.popitem(last=False)

    # --- Store -----------------------------------------------------------------------

    def transact(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            tx = _Tx(self)
            result = fn(tx)
            self._commit(tx)
            return result

    def get_kill(self) -> KillSwitch:
        with self._lock:
            return self._kill

    def get_pool(self, pool: str) -> PoolState:
        with self._lock:
            return replace(self._load(pool), heartbeats=dict(self._beats.get(pool, {})))

    def list_pools(self) -> list[str]:
        with self._lock:
            return sorted(self._pools)

    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        with self._lock:
            return self._beats.get(pool, {}).get(instance)

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        with self._lock:
            beats = self._beats.setdefault(pool, {})
            previous = beats.get(heartbeat.instance)
            stored = merge(previous, heartbeat)
            if stored is not None:
                if self.roundtrip:
                    stored = from_doc(Heartbeat, to_doc(stored))
                beats[heartbeat.instance] = stored
            return previous

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        with self._lock:
            found = [
                (event.at, seq, event)
                for seq, event in enumerate(self._events.values())
                if (pool is None or event.pool == pool) and (since is None or event.at > since)
            ]
        found.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in found[-limit:]] if limit > 0 else []
