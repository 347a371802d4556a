"""The agent's thin I/O shell around policy.step: observe, decide, act, sleep.

Invariants: every observation failure becomes "unknown" for the policy (never a crash);
the store (kill switch, lease) is read at most once per ``store_every_s``, the last
reading standing in between;
a failed heartbeat publish is logged and retried at the next step; the power-off command
runs only when the policy says so; ``step()`` does one round without sleeping, so tests
drive it with a manual clock.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import logs
from ..ports import Clock, Publisher, Store
from . import policy
from .policy import AgentState, Kill, Metrics, Observation, PoolView, Settings, Verdict


def run_command(argv: Sequence[str]) -> None:
    """Run the power-off command; raise on failure."""
    subprocess.run(list(argv), check=True, timeout=60)


@dataclass
class Agent:
    settings: Settings
    topic: str
    store: Store | None
    publisher: Publisher
    read_metrics: Callable[[], Metrics | None]
    poweroff: Callable[[], None]
    clock: Clock
    preempted: threading.Event
    state: AgentState | None = None
    store_every_s: float = 0.0
    _store_read_at: float | None = None
    _store_view: tuple[Kill | None, PoolView | None] = (None, None)

    def observe(self) -> Observation:
        now = self.clock.now()
        fresh = self._store_read_at is not None and now - self._store_read_at < self.store_every_s
        kill, pool = self._store_view if fresh else self._read_store(now)
        try:
            metrics = self.read_metrics()
        except Exception:
            metrics = None
        return Observation(now, metrics, kill, pool, self.preempted.is_set())

    def _read_store(self, now: float) -> tuple[Kill | None, PoolView | None]:
        kill: Kill | None = None
        pool: PoolView | None = None
        if self.store is not None:
            try:
                k = self.store.get_kill()
                kill = Kill(k.engaged, k.reason, k.by)
                state = self.store.get_pool(self.settings.pool)
                deadline = state.lease.deadline() if state.lease is not None else None
                pool = PoolView(deadline, state.updated_at)
            except Exception as exc:  # unknown, not fatal: the idle backstop still holds
                logs.warning(f"agent: store not readable: {exc}", pool=self.settings.pool)
                kill, pool = None, None
        self._store_read_at, self._store_view = now, (kill, pool)
        return kill, pool

    def step(self) -> Verdict:
        obs = self.observe()
        if self.state is None:
            self.state = AgentState(started_at=obs.now)
        self.state, verdict = policy.step(self.state, obs, self.settings)
        labels = {"pool": self.settings.pool, "instance": self.settings.instance}
        if verdict.note:
            logs.info(f"agent: {verdict.note}", **labels)
        if verdict.heartbeat is not None:
            try:
                self.publisher.publish(
                    self.topic,
                    json.dumps(verdict.heartbeat).encode(),
                    **(verdict.heartbeat_attributes or {}),
                )
            except Exception as exc:
                logs.warning(f"agent: heartbeat not published: {exc}", **labels)
        if verdict.poweroff is not None:
            logs.warning(f"agent: powering off: {verdict.poweroff}", **labels)
            try:
                self.poweroff()
            except Exception as exc:
                logs.error(f"agent: power-off command failed: {exc}", **labels)
        return verdict

    def run(self, stop: threading.Event, poll_s: float) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(poll_s)
