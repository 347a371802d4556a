"""The reliability suite's world: Service + SQLite store + simulated Compute + a manual clock,
with crash points injected through wrappers around the Store and Compute ports.

- ``Crash`` is a BaseException: it stands for the process dying, so nothing in the service
  may catch it; a crash inside a store transaction rolls it back (as a dead process would).
- ``Boundaries`` numbers the step boundaries of one ``handle()`` — before/after each commit,
  after each heartbeat write, before/after each Compute call — and raises ``Crash`` at the
  armed one, and calls its ``hook`` at every one (another process acting at that moment).
  ``CrashingStore``/``CrashingCompute`` wrap the real ports to call it; nothing of the
  service is monkeypatched.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reliability.faulty_compute import FaultyCompute
from yoyo_control import logs
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import Config, parse_config
from yoyo_control.domain.model import Heartbeat, KillSwitch, PoolState
from yoyo_control.ports import Event, ObservedInstance, Transaction
from yoyo_control.service import Service

T = TypeVar("T")

TICK_S = 60.0  # Cloud Scheduler's tick: every minute
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@dataclass
class SkewedClock:
    """The Clock port ``offset`` seconds off the world's (a function instance's clock)."""

    inner: ManualClock
    offset: float = 0.0

    def now(self) -> float:
        return self.inner.now() + self.offset


class Crash(BaseException):
    """The process died at a step boundary."""


@dataclass
class Boundaries:
    """Counts the step boundaries of a delivery and crashes at the armed one."""

    armed_at: int | None = None
    passed: list[str] = field(default_factory=list)
    # Called at every boundary: the world may change there (another process writes the
    # store between this one's commit and its Compute call).
    hook: Callable[[str], None] | None = None
    # The service's fan-out may pass boundaries from several threads at once: counting
    # (and the committed documents, CrashingStore) is done under this lock; the hook is
    # called outside it (it writes the store, which another thread may hold).
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self, armed_at: int | None = None) -> None:
        with self.lock:
            self.armed_at, self.passed = armed_at, []

    def point(self, name: str) -> None:
        with self.lock:
            self.passed.append(name)
            crash = self.armed_at is not None and len(self.passed) == self.armed_at
            if crash:
                self.armed_at = None
        if self.hook is not None:
            self.hook(name)
        if crash:
            raise Crash(name)


class _Recording:
    """A transaction that remembers the pool documents it saved."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.saved: dict[str, PoolState] = {}

    def load_pool(self, pool: str) -> PoolState:
        return self.tx.load_pool(pool)

    def load_kill(self) -> KillSwitch:
        return self.tx.load_kill()

    def has_event(self, event_id: str) -> bool:
        return self.tx.has_event(event_id)

    def save_pool(self, state: PoolState) -> None:
        self.saved[state.pool] = state
        self.tx.save_pool(state)

    def save_kill(self, kill: KillSwitch) -> None:
        self.tx.save_kill(kill)

    def append(self, event: Event) -> None:
        self.tx.append(event)


class CrashingStore:
    """The Store port around a real store, with crash points at its step boundaries.

    ``committed`` keeps the last committed pool document of each pool (what the store
    holds, without heartbeats), so checks need not decode it again after every step.
    """

    def __init__(self, inner: Any, boundaries: Boundaries) -> None:
        self.inner = inner
        self.b = boundaries
        self.committed: dict[str, PoolState] = {}

    def transact(self, fn: Callable[[Transaction], T]) -> T:
        saved: dict[str, PoolState] = {}

        def body(tx: Transaction) -> T:
            recording = _Recording(tx)
            result = fn(recording)
            saved.clear()
            saved.update(recording.saved)
            self.b.point("before-commit")  # a crash here rolls the transaction back
            return result

        result = self.inner.transact(body)
        with self.b.lock:
            self.committed.update(saved)
        self.b.point("after-commit")
        return result

    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        """Passed through: a read is no step boundary."""
        found: Heartbeat | None = self.inner.get_heartbeat(pool, instance)
        return found

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        previous: Heartbeat | None = self.inner.put_heartbeat(pool, heartbeat)
        self.b.point("after-heartbeat-write")
        return previous

    def get_kill(self) -> KillSwitch:
        kill: KillSwitch = self.inner.get_kill()
        return kill

    def get_pool(self, pool: str) -> PoolState:
        state: PoolState = self.inner.get_pool(pool)
        return state

    def list_pools(self) -> list[str]:
        return list(self.inner.list_pools())

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        return list(self.inner.events(pool, since, limit))


class CrashingCompute:
    """The Compute port around a real one, with crash points before and after each call.

    The simulated Compute is not thread-safe: the calls of the service's fan-out reach
    it one at a time (``lock``), as requests reach the real service in some order.
    """

    def __init__(self, inner: Any, boundaries: Boundaries) -> None:
        self.inner = inner
        self.b = boundaries
        self.lock = threading.RLock()

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        self.b.point("before-list")
        with self.lock:
            listed: list[ObservedInstance] = self.inner.list_instances(pool, zone)
        self.b.point("after-list")
        return listed

    def get(self, zone: str, instance: str) -> ObservedInstance:
        with self.lock:
            found: ObservedInstance = self.inner.get(zone, instance)
        return found

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self.b.point("before-start")
        with self.lock:
            self.inner.start(zone, instance, request_id)
        self.b.point("after-start")

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self.b.point("before-stop")
        with self.lock:
            self.inner.stop(zone, instance, request_id)
        self.b.point("after-stop")


def shm_dir() -> Path | None:
    """A RAM-backed temporary directory when the machine has one (fsync-free SQLite)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def scratch_dir(prefix: str = "yoyo-rel-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=shm_dir()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def quiet_logs() -> Iterator[io.StringIO]:
    """The service's JSON log lines go to a buffer (the last ones are kept for failures)."""
    buffer = io.StringIO()
    logs.set_stream(buffer)
    try:
        yield buffer
    finally:
        logs.set_stream(None)


@contextlib.contextmanager
def quiet_world(config: Config) -> Iterator[World]:
    """A World in a scratch directory with the service's logs kept quiet, closed after."""
    with scratch_dir() as directory, quiet_logs():
        w = World.build(config, directory)
        try:
            yield w
        finally:
            w.close()


def pool_config(
    *,
    instances: tuple[str, ...] = ("vm-0",),
    extra_pools: dict[str, dict[str, Any]] | None = None,
    kill_fraction: float = 1.0,
    fanout: dict[str, int] | None = None,
    **policy: Any,
) -> Config:
    """One pool ``gpu`` (plus ``extra_pools``). ``fanout`` defaults to one pool and one
    stop at a time: the service then runs in the caller's thread, so a seed replays the
    same steps and crash points (the many-pools suite passes the production bounds)."""
    gpu: dict[str, Any] = {
        "zone": "z",
        "instances": list(instances),
        "hourly_price_usd": 3.6,  # 0.001 per second
        "idle_timeout_s": 600,
        "heartbeat_gap_s": 180,
        "boot_grace_s": 300,
        "max_session_s": 3600,
        "lease_s": 1800,
        "max_lease_s": 4 * 3600,
        "restart_budget": 2,
        "restart_backoff_s": 60,
        "action_retry_s": 60,
        "max_action_attempts": 4,
    }
    gpu.update(policy)
    pools = {"gpu": gpu, **(extra_pools or {})}
    return parse_config(
        {
            "budget": {"budget_ids": ["b-1"], "kill_fraction": kill_fraction},
            "pools": pools,
            "fanout": fanout if fanout is not None else {"pools": 1, "stops": 1},
        }
    )


@dataclass
class World:
    """One control plane: the service over crash-injecting wrappers of SQLite and FaultyCompute."""

    config: Config
    clock: ManualClock
    store: SqliteStore
    sim: FaultyCompute
    boundaries: Boundaries
    service: Service

    @classmethod
    def build(cls, config: Config, directory: Path, start: float = T0) -> World:
        clock = ManualClock(start)
        store = SqliteStore(directory / "yoyo.sqlite3")
        prices = {name: p.hourly_price_usd for name, p in config.pools.items()}
        sim = FaultyCompute(clock, prices)
        for name, policy in config.pools.items():
            for instance in policy.instances:
                sim.add(name, instance, policy.placement(instance).zone)
        boundaries = Boundaries()
        service = Service(
            CrashingStore(store, boundaries), CrashingCompute(sim, boundaries), clock, config
        )
        return cls(config, clock, store, sim, boundaries, service)

    def close(self) -> None:
        self.store.close()

    def pool(self, pool: str) -> PoolState:
        """The pool's committed document (heartbeats not included): no store read."""
        store = self.service.store
        assert isinstance(store, CrashingStore)
        return store.committed.get(pool) or PoolState(pool=pool)

    def verify_pool_views(self) -> None:
        """The cached documents are what the store holds (heartbeats aside)."""
        from dataclasses import replace

        for pool in self.config.pools:
            stored = replace(self.store.get_pool(pool), heartbeats={})
            cached = replace(self.pool(pool), heartbeats={})
            assert stored == cached, f"{pool}: cache {cached} != store {stored}"

    def fact_logged(self, event_id: str) -> bool:
        return bool(self.store.transact(lambda tx: tx.has_event(event_id)))

    def all_events(self) -> list[Event]:
        return self.store.events(limit=10**9)
