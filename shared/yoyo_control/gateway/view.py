"""The gateway's view of the store: the kill switch and each pool's state, read sparingly.

Invariants:
- The kill switch: pushed by the store's listener where it has one (Firestore's
  ``on_snapshot``: billed one read per change), else read with the pool at most every
  ``kill_s`` (1 s). Every request is decided on a kill switch at most ``kill_s`` old
  (plus the listener's delivery delay), so a kill refuses new requests within that.
- A pool's state (pool document + one heartbeat document per VM): read at most once per
  ``pool_s(pool)`` = max(``poll_s``, documents in one read) seconds while requests arrive,
  so steady traffic costs at most 1 document read per second per pool (plus the kill
  switch when it is polled); while a request is held the pool is read every pause
  (``changed``), from 50 ms backing off to min(``poll_s``, 0.5 s).
- One read at a time per pool, however many requests want it (they await the same one);
  reads run in a worker thread (the store's clients are synchronous); a view is replaced
  only by a newer read; ``forget`` makes the next request read afresh.
- ``refresh`` is the synchronous read (tests, and the worker thread); ``changed`` is what
  a held request awaits: the next view of its pool, or its pause running out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .. import logs
from ..domain.model import KillSwitch, PoolState
from ..ports import Clock, Store

DEFAULT_KILL_S = 1.0
FIRST_PAUSE_S = 0.05
MAX_HELD_PAUSE_S = 0.5  # a held request learns of a ready VM within this (+ a read)


@runtime_checkable
class KillFeed(Protocol):
    """A store that pushes the kill switch as it changes (Firestore's listener)."""

    def watch_kill(self, on_change: Callable[[KillSwitch], None]) -> Callable[[], None]:
        """Call ``on_change`` with the switch now and on every change; returns a stop."""
        ...


@dataclass(frozen=True)
class Snapshot:
    read_at: float
    state: PoolState
    kill: KillSwitch


class View:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        poll_s: float = 1.0,
        kill_s: float = DEFAULT_KILL_S,
        listen: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.clock, self.poll_s, self.kill_s = store, clock, poll_s, kill_s
        self._pools: dict[str, Snapshot] = {}
        self._kill: tuple[float, KillSwitch] | None = None  # pushed by the listener
        self._lock = threading.Lock()
        self._reads: dict[str, asyncio.Future[Snapshot]] = {}
        self._kill_read: asyncio.Future[KillSwitch] | None = None
        self._changed: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}
        self._pollers: dict[str, asyncio.Future[None]] = {}
        self.sleep = sleep
        self._stop_listening: Callable[[], None] | None = None
        self.listening = False
        if listen and isinstance(store, KillFeed):
            self._stop_listening = store.watch_kill(self._kill_pushed)
            self.listening = True

    def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()

    def _kill_pushed(self, kill: KillSwitch) -> None:
        with self._lock:
            self._kill = (self.clock.now(), kill)

    def pool_s(self, state: PoolState) -> float:
        """How often a pool with steady traffic is read: ≤ 1 document read per second."""
        return max(self.poll_s, 1.0 + max(1, len(state.heartbeats)))

    # --- reads ---------------------------------------------------------------------

    def refresh(self, pool: str) -> Snapshot:
        """Read the pool (and the kill switch, unless it is pushed) now, synchronously."""
        if not self.listening or self._kill is None:  # (the listener's first push may lag)
            self.refresh_kill()
        read_at = self.clock.now()
        state = self.store.get_pool(pool)
        with self._lock:
            old = self._pools.get(pool)
            if old is None or old.read_at <= read_at:
                self._pools[pool] = Snapshot(read_at, state, KillSwitch())
        view = self.current(pool)
        assert view is not None
        return view

    def refresh_kill(self) -> KillSwitch:
        read_at = self.clock.now()
        kill = self.store.get_kill()
        with self._lock:
            if self._kill is None or self._kill[0] <= read_at:
                self._kill = (read_at, kill)
        return kill

    def current(self, pool: str) -> Snapshot | None:
        """The pool's latest view with the latest kill switch (None: never read)."""
        with self._lock:
            view, kill = self._pools.get(pool), self._kill
        if view is None or kill is None:
            return None
        return Snapshot(view.read_at, view.state, kill[1])

    def forget(self, pool: str) -> None:
        with self._lock:
            self._pools.pop(pool, None)

    def _kill_fresh(self) -> bool:
        if self.listening:
            return self._kill is not None
        return self._kill is not None and self.clock.now() - self._kill[0] <= self.kill_s

    async def read(self, pool: str, max_age: float | None = None) -> Snapshot:
        """The pool's view, the pool read again if older than ``max_age`` (default: its
        rate), the kill switch if older than ``kill_s`` (unless it is pushed)."""
        view = self.current(pool)
        if view is not None:
            bound = self.pool_s(view.state) if max_age is None else max_age
            if self.clock.now() - view.read_at <= bound:
                if not self._kill_fresh():
                    await self._read_kill_once()
                    view = self.current(pool)
                assert view is not None
                return view
        return await self._read_once(pool)

    async def _read_kill_once(self) -> None:
        pending = self._kill_read
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.refresh_kill))
            self._kill_read = pending
            pending.add_done_callback(lambda _: setattr(self, "_kill_read", None))
        await asyncio.shield(pending)

    async def _read_once(self, pool: str) -> Snapshot:
        pending = self._reads.get(pool)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.refresh, pool))
            self._reads[pool] = pending
            pending.add_done_callback(lambda _: self._read_done(pool))
        return await asyncio.shield(pending)

    def _read_done(self, pool: str) -> None:
        self._reads.pop(pool, None)
        event = self._changed.pop(pool, None)
        if event is not None:
            event.set()

    async def changed(self, pool: str, timeout: float) -> None:
        """What a held request awaits: the pool's next view (read by one poller per pool
        while anyone waits, every pause from ``FIRST_PAUSE_S`` backing off to
        min(``poll_s``, ``MAX_HELD_PAUSE_S``)), or ``timeout``."""
        event = self._changed.setdefault(pool, asyncio.Event())
        self._waiting[pool] = self._waiting.get(pool, 0) + 1
        if pool not in self._pollers:
            self._pollers[pool] = asyncio.ensure_future(self._poll(pool))
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            pass
        finally:
            self._waiting[pool] -= 1

    async def _poll(self, pool: str) -> None:
        pause = FIRST_PAUSE_S
        try:
            while True:
                await self.sleep(pause)
                if self._waiting.get(pool, 0) <= 0:
                    return
                try:
                    await self._read_once(pool)
                except Exception as exc:  # the store did not answer: the hold goes on
                    logs.warning(f"gateway: pool {pool} not read ({type(exc).__name__}: {exc})")
                pause = min(pause * 1.5, self.poll_s, MAX_HELD_PAUSE_S)
        finally:
            self._pollers.pop(pool, None)
