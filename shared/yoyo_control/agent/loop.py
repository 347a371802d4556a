"""The agent's thin I/O shell around policy.step: observe, decide, act, sleep.

Invariants: every observation failure becomes "unknown" for the policy (never a crash);
every read (store, metrics, the identity token) and the heartbeat publish has a total
deadline,
``read_deadline_s`` (deadline.py), so one step ends within a few deadlines whatever the
store and the inference server do, and the backstops run on schedule; the store (kill
switch, lease) is read at most once per ``store_every_s``, the last reading standing in
between; a failed heartbeat publish is logged and retried at the next step; the
power-off command runs only when the policy says so; ``step()`` does one round without
sleeping, so tests drive it with a manual clock. The clock the agent is built with is
monotonic (adapters.clock.MonotonicClock): a wall-clock step changes no interval.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import logs
from ..ports import Clock, Publisher, Store
from . import policy
from .deadline import Deadline
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
    read_deadline_s: float = 5.0
    identity: Callable[[], str] | None = None  # the VM's identity token (identity.py)
    _store_read_at: float | None = None
    _store_view: tuple[Kill | None, PoolView | None] = (None, None)
    _deadlines: dict[str, Deadline] = field(default_factory=dict)

    def bounded(self, what: str) -> Deadline:
        """The deadline of one kind of call (one call of each kind in flight at most)."""
        if what not in self._deadlines:
            self._deadlines[what] = Deadline(what, self.read_deadline_s)
        return self._deadlines[what]

    def observe(self) -> Observation:
        now = self.clock.now()
        fresh = self._store_read_at is not None and now - self._store_read_at < self.store_every_s
        kill, pool = self._store_view if fresh else self._read_store(now)
        try:
            metrics = self.bounded("metrics").call(self.read_metrics)
        except Exception:
            metrics = None
        return Observation(now, metrics, kill, pool, self.preempted.is_set())

    def _read_store(self, now: float) -> tuple[Kill | None, PoolView | None]:
        view: tuple[Kill | None, PoolView | None] = (None, None)
        if self.store is not None:
            try:
                view = self.bounded("store").call(self._store_view_now)
            except Exception as exc:  # unknown, not fatal: the idle backstop still holds
                logs.warning(f"agent: store not readable: {exc}", pool=self.settings.pool)
        self._store_read_at, self._store_view = now, view
        return view

    def _store_view_now(self) -> tuple[Kill | None, PoolView | None]:
        assert self.store is not None
        k = self.store.get_kill()
        state = self.store.get_pool(self.settings.pool)
        deadline = state.lease.deadline() if state.lease is not None else None
        return Kill(k.engaged, k.reason, k.by), PoolView(deadline, state.updated_at)

    def step(self) -> Verdict:
        obs = self.observe()
        if self.state is None:
            self.state = AgentState(started_at=obs.now)
        self.state, verdict = policy.step(self.state, obs, self.settings)
        labels = {"pool": self.settings.pool, "instance": self.settings.instance}
        if verdict.note:
            logs.info(f"agent: {verdict.note}", **labels)
        if verdict.heartbeat is not None:
            data = json.dumps({**verdict.heartbeat, **self._identity(labels)}).encode()
            attributes = verdict.heartbeat_attributes or {}
            try:
                self.bounded("publish").call(
                    lambda: self.publisher.publish(self.topic, data, **attributes)
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

    def _identity(self, labels: dict[str, str]) -> dict[str, str]:
        """The heartbeat's proof of its sender; without it the beat is sent and refused."""
        if self.identity is None:
            return {}
        try:
            return {"identity": self.bounded("identity").call(self.identity)}
        except Exception as exc:
            logs.warning(f"agent: no identity token for the heartbeat: {exc}", **labels)
            return {}

    def run(self, stop: threading.Event, poll_s: float) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(poll_s)
