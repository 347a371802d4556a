"""The simulation: a request stream against the real Service, in virtual time.

What runs is production code: ``Service.handle`` (so ``decide()``, the ledger, the event
log) on a MemoryStore (or any Store), and the VM agent's pure ``agent.policy.step`` for
heartbeats and the agent's own stop paths. What is simulated:

- **Compute** (sim/compute.py): seeded boot, stop and preemption times;
- **Cloud Scheduler**: a Tick every ``tick_s``; windowed policies publish a ``cycle``
  RunRequested at each window start;
- **the gateway** in front of the pool: a request goes to a ready instance at once;
  at a pool with none ready it waits, and the gateway publishes a RunRequested (holder
  "wake") — again every ``wake_retry_s`` while requests still wait. With
  ``gateway_depth`` it also publishes its queue depth (QueueDepthObserved, source
  "gateway") with each wake, and 0 once the requests it held have all been served (a 0
  sent as soon as the queue is handed out would race the agent's first busy heartbeat).
  Without it a woken VM still lives to serve: rule 6 counts a VM that is not ready yet
  as busy. Requests in flight on an instance that stops or is preempted go back to the
  head of the queue;
- **the agent**: it looks at the world ``agent_s`` after its VM is RUNNING, then every
  ``heartbeat_s`` and within ``agent_poll_s`` of its VM turning busy, idle or ready
  (``exact_agent``: every ``agent_poll_s``, as production, to count its store reads);
- **Pub/Sub**: delivery is instant; a handler that raises TemporaryError gets the same
  message again after 10 s, doubling up to 600 s.

The policy under test sets the pool's ``idle_timeout_s`` before every delivery (see
sim/policies.py), from the idle gaps the gateway has seen end so far (the gap from the
end of one busy period to the next request); the ``pool`` policy sets nothing, so
decide() runs with the pool's own configured keep-alive.

Invariants: deterministic for a given (workload, policy, params) — every random draw
comes from ``random.Random(params.seed)``; nothing sleeps; every process is in memory.
"""

from __future__ import annotations

import io
import itertools
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .. import logs
from ..agent import policy as agent_policy
from ..config import Config
from ..domain import keepalive, spend
from ..domain.facts import Fact, HeartbeatReceived, QueueDepthObserved, RunRequested, Tick
from ..domain.history import LONG_IDLE_S
from ..domain.history import local as history_local
from ..domain.keepalive import GapHistogram
from ..domain.model import Heartbeat, Holder
from ..errors import InvalidMessage, TemporaryError
from ..ports import Store
from ..service import Service
from .compute import SimCompute
from .events import EventQueue
from .memory_store import MemoryStore
from .optimum import busy_periods, offline_optimum
from .params import DEFAULT_PARAMS, SimParams
from .policies import FOREVER, SimPolicy
from .result import SimResult, percentile
from .workload import Request

__all__ = ["SimParams", "SimResult", "Simulation", "percentile", "simulate"]


class _NullStream(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@dataclass
class _Boot:
    """One boot of one instance, as its agent and the gateway see it."""

    instance: str
    boot_id: str
    running_at: float
    settings: agent_policy.Settings
    ready: bool = False
    in_flight: dict[int, Request] = field(default_factory=dict)
    succeeded: int = 0
    state: agent_policy.AgentState | None = None
    agent_at: float | None = None  # when the agent first looked (its poll grid's origin)
    flip_at: float | None = None  # a pending "busy/idle changed" look
    store_read_at: float | None = None  # the agent's last store read, and what it saw
    store_view: tuple[agent_policy.Kill, agent_policy.PoolView] | None = None


class Simulation:
    def __init__(
        self,
        requests: list[Request],
        policy: SimPolicy,
        params: SimParams = DEFAULT_PARAMS,
        store: Store | None = None,
        workload: str = "",
        *,
        agent_store: Store | None = None,
        span: tuple[float, float] | None = None,
    ) -> None:
        """``span`` = (start, end) overrides the window derived from the requests
        (required when there are none); ``agent_store`` is what the agents read (by
        default the same store)."""
        if not requests and span is None:
            raise ValueError("a simulation needs requests or an explicit span")
        self.requests = sorted(requests, key=lambda r: r.arrival)
        self.policy = policy
        self.params = params
        self.workload = workload
        if span is not None:
            self.start, self.end = span
        else:
            first = self.requests[0].arrival
            self.start = (first - params.lead_s) // 60 * 60
            self.end = max(r.arrival + r.service_s for r in self.requests) + params.tail_s
        self.queue = EventQueue(self.start)
        self.rng = random.Random(params.seed)
        self.compute = SimCompute(self.queue, self.rng, params.machine, listener=self)
        self.base = params.pool_policy(None if policy.kind == "pool" else policy.timeout_s)
        # The oracle's budget is the pool's (before the pool's own pre-warm is turned off).
        self.oracle_budget_s = self.base.prewarm_budget_min * 60.0
        if policy.prewarm in ("off", "oracle"):
            self.base = replace(self.base, prewarm_budget_min=0.0)
        self.prewarms = 0
        self.prewarm_lease_s = 0.0
        self.oracle_spent: dict[str, float] = {}
        for name in self.base.instances:
            self.compute.add(params.pool, name)
        self.store: Store = store if store is not None else MemoryStore(params.max_events)
        self.agent_store: Store = agent_store if agent_store is not None else self.store
        self.config = Config(
            backend="local", timezone=params.timezone, pools={params.pool: self.base}
        )
        self.service = Service(self.store, self.compute, self.queue.clock, self.config)
        self.model = params.cost_model()
        keep = policy.max_keepalive_s()
        self.idle_shutdown_s = params.idle_shutdown_s or min(FOREVER, keep + 300.0)
        self.ids = itertools.count(1)
        self.hist = GapHistogram()
        self.timeout: float | None = None
        self.timeouts: list[tuple[float, float]] = []
        self.boots: dict[str, _Boot] = {}
        self.waiting: deque[tuple[int, Request]] = deque()
        self.idle_since: float | None = None
        self.episode_first: float | None = None
        self.last_wake: float | None = None
        self.published_depth = 0
        self.policy_key: tuple[Any, ...] | None = None
        self.waits: dict[int, float] = {}
        self.cold_starts = 0
        self.cold_wait_s = 0.0
        self.interrupted = 0
        self.delivered: Counter[str] = Counter()
        self.poweroffs: Counter[str] = Counter()

    # --- running -----------------------------------------------------------------------

    def run(self) -> SimResult:
        began = time.perf_counter()
        logs.set_stream(_NullStream())
        try:
            for index, request in enumerate(self.requests):
                self.queue.at(request.arrival, self._arrive, index, request)
            self.queue.at(self.start, self._tick)
            self._schedule_windows()
            if self.policy.prewarm == "oracle":
                self._schedule_oracle()
            if self.params.restart_every_s:
                self.queue.after(self.params.restart_every_s, self._restart)
            self.queue.run_until(self.end)
        finally:
            logs.set_stream(None)
        return self._result(time.perf_counter() - began)

    def _result(self, wall_s: float) -> SimResult:
        gpu_s = self.compute.billed_s()
        dollars = gpu_s * self.model.price_per_s
        state = self.store.get_pool(self.params.pool)
        ledger = spend.accrued(state, self.service.config.policy(self.params.pool), self.end)
        same_month = ledger.month == _month(self.start, self.params.timezone)
        return SimResult(
            workload=self.workload,
            policy=self.policy.name,
            seed=self.params.seed,
            requests=len(self.requests),
            span_s=self.end - self.start,
            gpu_s=gpu_s,
            dollars=dollars,
            cold_starts=self.cold_starts,
            boots=sum(vm.boots for vm in self.compute.vms.values()),
            preemptions=sum(vm.preemptions for vm in self.compute.vms.values()),
            waits=[self.waits.get(i, self.end - r.arrival) for i, r in enumerate(self.requests)],
            cold_wait_s=self.cold_wait_s,
            cost_usd=dollars + self.model.wait_per_s * self.cold_wait_s,
            optimum=offline_optimum(self.requests, self.model),
            ledger_usd=ledger.month_usd if same_month else None,
            timeouts=self.timeouts,
            delivered=self.delivered,
            poweroffs=self.poweroffs,
            interrupted=self.interrupted,
            events=self.queue.processed,
            wall_s=wall_s,
            prewarms=self.prewarms,
            prewarm_lease_s=self.prewarm_lease_s,
        )

    def _mid(self, kind: str) -> str:
        return f"{kind}-{next(self.ids)}"

    def _deliver(self, fact: Fact, attempt: int = 0) -> None:
        """Pub/Sub push to the function: handle, and redeliver on TemporaryError."""
        self._apply_policy()
        self.delivered[type(fact).__name__] += 1
        before = self._prewarm_mark()
        try:
            self.service.handle(fact)
            after = self._prewarm_mark()
            if after is not None and after != before:
                self.prewarms += 1
                self.prewarm_lease_s += self.base.prewarm_budget_min and (
                    self.base.boot_s + self.base.prewarm_hold_s
                )
        except TemporaryError:
            self.delivered["redelivery"] += 1
            self.queue.after(min(600.0, 10.0 * 2**attempt), self._deliver, fact, attempt + 1)
        except InvalidMessage:
            self.delivered["rejected"] += 1

    def _prewarm_mark(self) -> float | None:
        """When the pool's own pre-warm last fired (its history says), if it can."""
        if self.base.prewarm_budget_min <= 0:
            return None
        return self.store.get_pool(self.params.pool).history.prewarm_at

    # --- the oracle pre-warm and a control-plane restart ---------------------------------

    def _schedule_oracle(self) -> None:
        """Knows every first request after a long idle; starts the pool ``lead`` before it,
        so that a boot at the 90th percentile is ready just in time, within the pool's
        daily budget (charged ``lead + hold`` per pre-warm, as the pool's own is)."""
        periods = busy_periods(self.requests)
        firsts = [periods[0][0]] if periods else []
        firsts += [b[0] for a, b in itertools.pairwise(periods) if b[0] - a[1] >= LONG_IDLE_S]
        for first in firsts:
            at = first - self.oracle_lead_s()
            if at > self.start:
                self.queue.at(at, self._oracle)

    def oracle_lead_s(self) -> float:
        m = self.params.machine
        return m.staging.quantile(0.9) + m.ready.quantile(0.9)

    def _oracle(self) -> None:
        now = self.queue.now()
        if self.boots or self._in_flight():
            return  # a VM is up or booting: nothing to pre-warm
        hold = self.base.prewarm_hold_s / 2
        lease_s = self.oracle_lead_s() + hold
        day = history_local(now, self.params.timezone).date().isoformat()
        spent = self.oracle_spent.get(day, 0.0)
        if spent + lease_s > self.oracle_budget_s + 1e-6:
            return
        self.oracle_spent[day] = spent + lease_s
        self.prewarms += 1
        self.prewarm_lease_s += lease_s
        fact = RunRequested(
            self._mid("oracle"),
            now,
            self.params.pool,
            holder=Holder.PREWARM,
            reason=f"oracle pre-warm: a first request in {self.oracle_lead_s():.0f}s",
            duration_s=lease_s,
        )
        self._deliver(fact)

    def _restart(self) -> None:
        """The control plane restarts: a new Service on the same store (nothing in memory
        survives; the history lives in the pool's document)."""
        self.service = Service(self.store, self.compute, self.queue.clock, self.service.config)
        self.delivered["restart"] += 1
        assert self.params.restart_every_s is not None
        self.queue.after(self.params.restart_every_s, self._restart)

    def _apply_policy(self) -> None:
        if self.policy.kind == "pool":
            return  # the pool's own keep-alive: decide() computes it
        now = self.queue.now()
        key = (self.hist.seen,) if self.policy.kind != "window" else None
        if key is not None and key == self.policy_key:
            return  # the timeout depends only on the history, which has not changed
        self.policy_key = key
        timeout = self.policy.timeout(
            now, self.params.timezone, self.hist, self.params.hourly_price, self.model.cold_cost
        )
        if timeout != self.timeout:
            self.timeout = timeout
            self.timeouts.append((now, timeout))
            pools = {self.params.pool: replace(self.base, idle_timeout_s=timeout)}
            self.service.config = replace(self.config, pools=pools)

    # --- Cloud Scheduler -----------------------------------------------------------------

    def _tick(self) -> None:
        self._deliver(Tick(self._mid("tick"), self.queue.now()))
        self.queue.after(self.params.tick_s, self._tick)

    def _schedule_windows(self) -> None:
        window = self.policy.windows()
        if window is None:
            return
        if self.policy.kind == "always":
            self.queue.at(self.start, self._cycle, self.end - self.start)
            return
        start_s, end_s = window
        length = (end_s - start_s) % 86400.0 or 86400.0
        zone = ZoneInfo(self.params.timezone)
        day = datetime.fromtimestamp(self.start, zone).date() - timedelta(days=1)
        while True:
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            opens = (midnight + timedelta(seconds=start_s)).timestamp()
            if opens >= self.end:
                break
            closes = opens + length
            if closes > self.start:
                self.queue.at(max(opens, self.start), self._cycle, closes - max(opens, self.start))
            day += timedelta(days=1)

    def _cycle(self, duration_s: float) -> None:
        overlap = 2 * self.params.tick_s  # the next window's lease overlaps this one's
        fact = RunRequested(
            self._mid("cycle"),
            self.queue.now(),
            self.params.pool,
            holder=Holder.CYCLE,
            reason=f"keep-alive window ({self.policy.name})",
            duration_s=duration_s + overlap,
        )
        self._deliver(fact)

    # --- the gateway ---------------------------------------------------------------------

    def _ready_boots(self) -> list[_Boot]:
        return [b for b in self.boots.values() if b.ready]

    def _in_flight(self) -> int:
        return sum(len(b.in_flight) for b in self.boots.values())

    def _arrive(self, index: int, request: Request) -> None:
        now = self.queue.now()
        if self.idle_since is not None:
            self.hist = keepalive.record_gap(self.hist, now - self.idle_since)
            self.idle_since = None
        ready = self._ready_boots()
        if ready:
            self._dispatch(index, request, min(ready, key=lambda b: len(b.in_flight)))
            return
        self._enqueue(index, request, front=False)

    def _enqueue(self, index: int, request: Request, front: bool) -> None:
        if front:
            self.waiting.appendleft((index, request))
        else:
            self.waiting.append((index, request))
        if self.episode_first is None:
            self.episode_first = request.arrival if not front else self.queue.now()
            self.cold_starts += 1
        self._wake()

    def _wake(self) -> None:
        now = self.queue.now()
        if not self.waiting or self._ready_boots():
            return
        if self.last_wake is not None and now - self.last_wake < self.params.wake_retry_s:
            return
        self.last_wake = now
        fact = RunRequested(
            self._mid("wake"),
            now,
            self.params.pool,
            holder=Holder.WAKE,
            reason=f"{len(self.waiting)} request(s) waiting",
            duration_s=self.params.lease_s,
        )
        self._deliver(fact)
        if self.params.gateway_depth:
            self._depth(len(self.waiting))
        self.queue.after(self.params.wake_retry_s, self._wake)

    def _depth(self, depth: int) -> None:
        fact = QueueDepthObserved(
            self._mid("depth"), self.queue.now(), self.params.pool, depth, "gateway"
        )
        self._deliver(fact)
        self.published_depth = depth

    def _dispatch(self, index: int, request: Request, boot: _Boot) -> None:
        now = self.queue.now()
        self.waits.setdefault(index, now - request.arrival)
        was_idle = not boot.in_flight
        boot.in_flight[index] = request
        if was_idle:
            self._flip(boot)
        self.queue.after(request.service_s, self._complete, boot.instance, boot.boot_id, index)

    def _complete(self, instance: str, boot_id: str, index: int) -> None:
        boot = self.boots.get(instance)
        if boot is None or boot.boot_id != boot_id or index not in boot.in_flight:
            return
        del boot.in_flight[index]
        boot.succeeded += 1
        if not boot.in_flight:
            self._flip(boot)
        if not self.waiting and self._in_flight() == 0:
            self.idle_since = self.queue.now()
            if self.published_depth:
                self._depth(0)

    def _ready(self, instance: str, boot_id: str) -> None:
        boot = self.boots.get(instance)
        if boot is None or boot.boot_id != boot_id:
            return
        boot.ready = True
        self._flip(boot)  # the agent sees the server answer at its next poll
        now = self.queue.now()
        if self.episode_first is not None:
            self.cold_wait_s += now - self.episode_first
            self.episode_first = None
        self.last_wake = None
        while self.waiting:
            index, request = self.waiting.popleft()
            self._dispatch(index, request, min(self._ready_boots(), key=lambda b: len(b.in_flight)))

    # --- SimCompute's listener -----------------------------------------------------------

    def on_running(self, instance: str, boot_id: str) -> None:
        now = self.queue.now()
        settings = agent_policy.Settings(
            pool=self.params.pool,
            instance=instance,
            boot_id=boot_id,
            heartbeat_interval_s=self.params.heartbeat_s,
            idle_shutdown_s=self.idle_shutdown_s,
            deadman_grace_s=self.params.deadman_grace_s,
        )
        self.boots[instance] = _Boot(instance, boot_id, now, settings)
        machine = self.params.machine
        self.queue.after(machine.agent_s, self._agent, instance, boot_id, True)
        self.queue.after(machine.ready.sample(self.rng), self._ready, instance, boot_id)

    def on_stopping(self, instance: str, why: str) -> None:
        boot = self.boots.pop(instance, None)
        if boot is None:
            return
        for index, request in sorted(boot.in_flight.items(), reverse=True):
            self.interrupted += 1
            self._enqueue(index, request, front=True)
        if self.waiting and not self._ready_boots():
            self._wake()

    # --- the agent -----------------------------------------------------------------------

    def _flip(self, boot: _Boot) -> None:
        """Busy/idle changed: the agent notices at its next poll (one is due anyway)."""
        if boot.agent_at is None or self.params.exact_agent:
            return
        poll = self.params.agent_poll_s
        now = self.queue.now()
        steps = -(-(now - boot.agent_at) // poll)  # ceil
        at = boot.agent_at + steps * poll
        if boot.flip_at is not None and boot.flip_at >= now:
            return
        boot.flip_at = at
        self.queue.at(at, self._agent, boot.instance, boot.boot_id, False)

    def _agent(self, instance: str, boot_id: str, periodic: bool) -> None:
        boot = self.boots.get(instance)
        if boot is None or boot.boot_id != boot_id:
            return
        now = self.queue.now()
        if not periodic:
            boot.flip_at = None
        if boot.agent_at is None:
            boot.agent_at = now
            boot.state = agent_policy.AgentState(started_at=now)
        metrics = (
            agent_policy.Metrics(len(boot.in_flight), 0, float(boot.succeeded))
            if boot.ready
            else None
        )
        # Like agent/loop.py: the store is read at most once per heartbeat interval.
        if boot.store_view is None or now - (boot.store_read_at or 0.0) >= self.params.heartbeat_s:
            kill = self.agent_store.get_kill()
            state = self.agent_store.get_pool(self.params.pool)
            deadline = state.lease.deadline() if state.lease is not None else None
            boot.store_view = (
                agent_policy.Kill(kill.engaged, kill.reason, kill.by),
                agent_policy.PoolView(deadline, state.updated_at),
            )
            boot.store_read_at = now
        obs = agent_policy.Observation(now, metrics, *boot.store_view)
        assert boot.state is not None
        boot.state, verdict = agent_policy.step(boot.state, obs, boot.settings)
        if verdict.heartbeat is not None:
            self._deliver(self._heartbeat(verdict.heartbeat, now))
        if verdict.poweroff is not None:
            self.poweroffs[verdict.poweroff.split(":")[0]] += 1
            self.compute.poweroff(instance, verdict.poweroff)
            return
        if periodic:
            every = self.params.agent_poll_s if self.params.exact_agent else self.params.heartbeat_s
            self.queue.after(every, self._agent, instance, boot_id, True)

    def _heartbeat(self, data: dict[str, Any], now: float) -> HeartbeatReceived:
        heartbeat = Heartbeat(
            instance=str(data["instance"]),
            boot_id=str(data["boot_id"]),
            sent_at=float(data["sent_at"]),
            received_at=now,
            busy=bool(data["busy"]),
            ready=bool(data["ready"]),
            running=int(data["running"]),
            waiting=int(data["waiting"]),
            last_request_at=data.get("last_request_at"),
        )
        return HeartbeatReceived(self._mid("hb"), now, self.params.pool, heartbeat)


def _month(at: float, timezone: str) -> str:
    return datetime.fromtimestamp(at, ZoneInfo(timezone)).strftime("%Y-%m")


def simulate(
    requests: list[Request],
    policy: SimPolicy,
    params: SimParams = DEFAULT_PARAMS,
    store: Store | None = None,
    workload: str = "",
) -> SimResult:
    return Simulation(requests, policy, params, store, workload).run()
