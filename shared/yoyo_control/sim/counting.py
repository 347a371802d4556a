"""CountingStore: wraps any ports.Store and counts the Firestore operations each call costs.

The count follows how adapters/firestore_store.py maps the port onto documents, priced
as Firestore bills them (one read per document returned, a query that returns nothing
still one read; one write per document set):

| call                          | reads                         | writes |
| ---                           | ---                           | ---    |
| tx.load_pool / get_pool       | 1 (pool) + max(1, heartbeats) | 0      |
| tx.load_kill / get_kill       | 1                             | 0      |
| tx.has_event                  | 1 (once per id per txn)       | 0      |
| tx.save_pool, tx.save_kill    | 0                             | 1      |
| tx.append                     | 1 unless has_event checked it | 1      |
| put_heartbeat                 | 1                             | 1      |
| list_pools                    | max(1, pools)                 | 0      |
| events(limit)                 | max(1, returned)              | 0      |

Every appended event is deleted again by the TTL policy (``event_ttl_days``), so in a
steady state ``deletes`` per day equals event writes per day.

Invariants: the wrapped store's behaviour is unchanged (same results, same exceptions);
counts are per wrapper, so two wrappers over one store attribute operations to their
callers (e.g. the control plane and the VM agent); a transaction ``fn`` that raises is
still counted (Firestore bills the reads of a failed transaction too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from ..domain.model import Heartbeat, KillSwitch, PoolState
from ..ports import Event, Store

T = TypeVar("T")


class _CountingTx:
    def __init__(self, tx: Any, counts: Counter[str]) -> None:
        self._tx = tx
        self._counts = counts
        self._checked: set[str] = set()

    def _add(self, op: str, reads: int = 0, writes: int = 0) -> None:
        self._counts[f"{op}.calls"] += 1
        self._counts["reads"] += reads
        self._counts["writes"] += writes

    def load_pool(self, pool: str) -> PoolState:
        state: PoolState = self._tx.load_pool(pool)
        self._add("load_pool", reads=1 + max(1, len(state.heartbeats)))
        return state

    def load_kill(self) -> KillSwitch:
        self._add("load_kill", reads=1)
        return self._tx.load_kill()  # type: ignore[no-any-return]

    def has_event(self, event_id: str) -> bool:
        self._add("has_event", reads=0 if event_id in self._checked else 1)
        self._checked.add(event_id)
        return self._tx.has_event(event_id)  # type: ignore[no-any-return]

    def save_pool(self, state: PoolState) -> None:
        self._add("save_pool", writes=1)
        self._tx.save_pool(state)

    def save_kill(self, kill: KillSwitch) -> None:
        self._add("save_kill", writes=1)
        self._tx.save_kill(kill)

    def append(self, event: Event) -> None:
        self._add("append", reads=0 if event.id in self._checked else 1, writes=1)
        self._counts["deletes"] += 1
        self._tx.append(event)


class CountingStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()

    @property
    def reads(self) -> int:
        return self.counts["reads"]

    @property
    def writes(self) -> int:
        return self.counts["writes"]

    def _add(self, op: str, reads: int = 0, writes: int = 0) -> None:
        self.counts[f"{op}.calls"] += 1
        self.counts["reads"] += reads
        self.counts["writes"] += writes

    def transact(self, fn: Callable[[Any], T]) -> T:
        self.counts["transactions"] += 1
        return self.inner.transact(lambda tx: fn(_CountingTx(tx, self.counts)))

    def get_kill(self) -> KillSwitch:
        self._add("get_kill", reads=1)
        return self.inner.get_kill()

    def get_pool(self, pool: str) -> PoolState:
        state = self.inner.get_pool(pool)
        self._add("get_pool", reads=1 + max(1, len(state.heartbeats)))
        return state

    def list_pools(self) -> list[str]:
        pools = self.inner.list_pools()
        self._add("list_pools", reads=max(1, len(pools)))
        return pools

    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        self._add("get_heartbeat", reads=1)
        return self.inner.get_heartbeat(pool, instance)

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        self._add("put_heartbeat", reads=1, writes=1)
        return self.inner.put_heartbeat(pool, heartbeat)

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        found = self.inner.events(pool, since, limit)
        self._add("events", reads=max(1, len(found)))
        return found
