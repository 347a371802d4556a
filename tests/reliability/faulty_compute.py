"""FaultyCompute: Compute Engine for the reliability suite; it lags, fails, preempts and
keeps score.

Like tests/fakes.py FakeCompute (a ``Compute`` port with the real lifecycle), plus what the
invariant checks need:

- Time: the world is read at ``clock.now()``; ``advance()`` moves every unfinished
  operation one step (the test calls it once per slice of simulated time).
- Operations: ``mode`` says how a call that creates an operation returns —
  ``instant`` (DONE before the call returns), ``lag`` (the call returns while the
  instance is still STAGING/STOPPING; DONE after ``lag_steps`` steps), ``timeout`` (the
  adapter's bounded wait ran out: TemporaryError, the operation goes on and is DONE after
  ``lag_steps`` steps), ``stuck`` (TemporaryError; DONE only after ``stuck_steps`` steps).
- A request id already seen is never acted on again: the call answers from the original
  operation (DONE → ok; still running → as ``mode`` says; failed → the same error).
- Faults (``fail_next``) are consumed in order by the next matching calls: ``429``/``503``
  (TemporaryError before acting), ``lost`` (acts, then TemporaryError: the response was
  lost), ``quota`` (PermanentError before acting), ``hang`` (TemporaryError before
  acting, like a request timeout). "not found" is not a fault but the truth: ``delete()``.
- Capacity: a zone in ``refusing`` answers a start of a stopped instance there with
  CapacityError (ZONE_RESOURCE_POOL_EXHAUSTED) before acting, until it leaves the set.
- Ground truth for the checks: per instance the time it began its current run (any of
  RUNNING_STATUSES), every call made (``calls``), and the money really spent: instance
  seconds in BILLED_STATUSES × the pool's hourly price, split by UTC day and month.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from yoyo_control import names
from yoyo_control.domain.model import BILLED_STATUSES, RUNNING_STATUSES
from yoyo_control.errors import (
    CapacityError,
    InstanceNotFound,
    PermanentError,
    TemporaryError,
    YoyoError,
)
from yoyo_control.ports import Clock, ObservedInstance

MODES = ("instant", "lag", "timeout", "stuck")
FAULTS = ("429", "503", "lost", "quota", "hang")


@dataclass
class Op:
    kind: str  # start | stop
    instance: str
    request_id: str
    steps_left: int
    error: YoyoError | None = None
    done: bool = False
    waited: bool = False  # calls for it wait for DONE (and time out); else return at once


@dataclass
class SimInstance:
    name: str
    zone: str
    pool: str | None  # the yoyo-pool label (None: unlabelled)
    status: str = "TERMINATED"
    boot: int = 0  # a new boot on every start
    op: Op | None = None
    running_since: float | None = None  # truth: when the current run began
    stopped_at: float | None = None  # truth: when the last run ended
    exists: bool = True


@dataclass(frozen=True)
class CallRecord:
    at: float
    kind: str  # start | stop | list | get
    instance: str
    request_id: str
    acted: bool
    result: str  # ok | temporary | permanent | not-found


@dataclass
class Fault:
    kind: str
    methods: frozenset[str]
    instances: frozenset[str] | None = None  # None: any instance


@functools.cache
def _day_keys(day_number: int) -> tuple[str, str]:
    d = datetime.fromtimestamp(day_number * 86400.0, UTC)
    return d.strftime("%Y-%m-%d"), d.strftime("%Y-%m")


def day_month(t: float) -> tuple[str, str]:
    """The UTC day and month keys of ``t``."""
    return _day_keys(int(t // 86400))


def _next_midnight(t: float) -> float:
    d = datetime.fromtimestamp(t, UTC)
    midnight = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
    return midnight + 86400.0


@dataclass
class FaultyCompute:
    clock: Clock
    prices: Mapping[str, float] = field(default_factory=dict)  # pool → hourly price
    mode: str = "instant"
    lag_steps: int = 1
    stuck_steps: int = 30
    instances: dict[str, SimInstance] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    on_start: Callable[[str, str], None] | None = None  # (instance, request id), before acting
    spend_day: dict[tuple[str, str], float] = field(default_factory=dict)  # (pool, day)
    spend_month: dict[tuple[str, str], float] = field(default_factory=dict)  # (pool, month)
    stopping_spend: dict[str, float] = field(default_factory=dict)  # pool → spent STOPPING
    refusing: set[str] = field(default_factory=set)  # zones out of capacity: starts refused

    def __post_init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self._accrued_until = self.clock.now()
        self._ids = itertools.count(1)

    # --- the world (test side) ---------------------------------------------------------

    def add(self, pool: str | None, name: str, zone: str, status: str = "TERMINATED") -> None:
        self._accrue()
        inst = SimInstance(name, zone, pool, status)
        if status in RUNNING_STATUSES:
            inst.running_since = self.clock.now()
            inst.boot = 1
        self.instances[name] = inst

    def delete(self, name: str) -> None:
        self._accrue()
        inst = self.instances[name]
        inst.exists, inst.op = False, None
        self._set(inst, "TERMINATED")

    def recreate(self, name: str) -> None:
        self._accrue()
        inst = self.instances[name]
        inst.exists = True
        self._set(inst, "TERMINATED")

    def preempt(self, name: str) -> bool:
        """Spot preemption: a running instance is TERMINATED behind the control plane's back."""
        self._accrue()
        inst = self.instances[name]
        if not inst.exists or inst.status not in RUNNING_STATUSES:
            return False
        if inst.op is not None and inst.op.kind == "start":
            inst.op.done = True
        inst.op = None
        self._set(inst, "TERMINATED")
        return True

    def console_start(self, name: str) -> bool:
        """Someone starts the instance by hand (no request id, not through the control plane)."""
        self._accrue()
        inst = self.instances[name]
        if not inst.exists or inst.status != "TERMINATED":
            return False
        inst.boot += 1
        inst.op = None
        self._set(inst, "RUNNING")
        return True

    def fail_next(
        self,
        kind: str,
        n: int = 1,
        methods: tuple[str, ...] = ("start", "stop"),
        instances: tuple[str, ...] | None = None,
    ) -> None:
        assert kind in FAULTS, kind
        only = None if instances is None else frozenset(instances)
        self.faults.extend(Fault(kind, frozenset(methods), only) for _ in range(n))

    def advance(self) -> None:
        """One step of simulated time for every unfinished operation."""
        self._accrue()
        for inst in self.instances.values():
            op = inst.op
            if op is None or op.done:
                continue
            op.steps_left -= 1
            if op.steps_left <= 0:
                self._finish(inst, op)

    def accrue(self) -> None:
        self._accrue()

    # --- truth for the checks ------------------------------------------------------------

    def running(self, name: str) -> bool:
        inst = self.instances[name]
        return inst.exists and inst.status in RUNNING_STATUSES

    def boot_id(self, name: str) -> str:
        return f"{name}-boot-{self.instances[name].boot}"

    def day_spend(self, pool: str) -> float:
        self._accrue()
        return self.spend_day.get((pool, day_month(self.clock.now())[0]), 0.0)

    def month_spend(self, pool: str) -> float:
        self._accrue()
        return self.spend_month.get((pool, day_month(self.clock.now())[1]), 0.0)

    def calls_for(self, name: str, kind: str, since: float = float("-inf")) -> list[CallRecord]:
        return [c for c in self.calls if c.instance == name and c.kind == kind and c.at >= since]

    def acted_starts(self) -> list[CallRecord]:
        return [c for c in self.calls if c.kind == "start" and c.acted]

    # --- the Compute port ------------------------------------------------------------------

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        now = self.clock.now()
        fault = self._take_fault("list")
        if fault is not None:
            self.calls.append(CallRecord(now, "list", "", "", False, "temporary"))
            raise TemporaryError(f"list instances of {pool}: {fault.kind} (injected)")
        self.calls.append(CallRecord(now, "list", "", "", False, "ok"))
        return [
            ObservedInstance(i.name, i.status, {names.LABEL_POOL: pool})
            for i in self.instances.values()
            if i.exists and i.pool == pool and i.zone == zone
        ]

    def get(self, zone: str, instance: str) -> ObservedInstance:
        inst = self.instances.get(instance)
        if inst is None or not inst.exists or inst.zone != zone:
            raise InstanceNotFound(f"instance {instance} not found")
        labels = {names.LABEL_POOL: inst.pool} if inst.pool else {}
        return ObservedInstance(inst.name, inst.status, labels)

    def start(self, zone: str, instance: str, request_id: str) -> None:
        if self.on_start is not None:
            self.on_start(instance, request_id)
        self._act("start", zone, instance, request_id)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self._act("stop", zone, instance, request_id)

    # --- internals -------------------------------------------------------------------------

    def _record(self, kind: str, instance: str, rid: str, acted: bool, result: str) -> None:
        self.calls.append(CallRecord(self.clock.now(), kind, instance, rid, acted, result))

    def _take_fault(self, method: str, instance: str = "") -> Fault | None:
        for i, fault in enumerate(self.faults):
            if method in fault.methods and (fault.instances is None or instance in fault.instances):
                return self.faults.pop(i)
        return None

    def _act(self, kind: str, zone: str, name: str, rid: str) -> None:
        self._accrue()
        fault = self._take_fault(kind, name)
        if fault is not None and fault.kind in ("429", "503", "hang"):
            self._record(kind, name, rid, False, "temporary")
            what = {"429": "429 rateLimitExceeded", "503": "503 backendError"}.get(
                fault.kind, "deadline exceeded before an answer"
            )
            raise TemporaryError(f"{kind} instance {name} in zone {zone}: {what} (injected)")
        if fault is not None and fault.kind == "quota" and kind == "start":
            self._record(kind, name, rid, False, "permanent")
            raise PermanentError(
                f"quota exceeded: {kind} instance {name}: QUOTA_EXCEEDED NVIDIA_L4_GPUS (injected)"
            )
        inst = self.instances.get(name)
        if inst is None or not inst.exists or inst.zone != zone:
            self._record(kind, name, rid, False, "not-found")
            raise InstanceNotFound(f"instance {name} in zone {zone} not found")
        stopped = inst.status in ("TERMINATED", "SUSPENDED", "STOPPED")
        if kind == "start" and inst.zone in self.refusing and stopped and rid not in self._ops:
            self._record(kind, name, rid, False, "capacity")
            raise CapacityError(
                f"start instance {name} in zone {zone}: 503 ZONE_RESOURCE_POOL_EXHAUSTED (injected)"
            )
        op = self._ops.get(rid)
        # Like Compute Engine: a repeated request id is answered from its original
        # operation, however long ago it ended.
        acted = op is None
        if op is None:
            if kind == "start" and inst.status in ("STOPPING", "SUSPENDING"):
                self._record(kind, name, rid, False, "temporary")
                raise TemporaryError(f"start instance {name}: 409 resourceNotReady (stopping)")
            op = self._create(inst, kind, rid)
        self._record(kind, name, rid, acted, "ok")
        if fault is not None and fault.kind == "lost":
            self.calls[-1] = CallRecord(self.clock.now(), kind, name, rid, acted, "temporary")
            raise TemporaryError(f"{kind} instance {name}: response lost (injected)")
        if op.error is not None:
            raise op.error
        if not op.done and op.waited:
            self.calls[-1] = CallRecord(self.clock.now(), kind, name, rid, acted, "temporary")
            raise TemporaryError(f"operation {kind} {name} ({rid[:8]}): not DONE within the wait")

    def _create(self, inst: SimInstance, kind: str, rid: str) -> Op:
        steps = {"instant": 0, "lag": self.lag_steps, "timeout": self.lag_steps}.get(
            self.mode, self.stuck_steps
        )
        op = Op(kind, inst.name, rid, steps, waited=self.mode in ("timeout", "stuck"))
        self._ops[rid] = op
        if kind == "start" and inst.status in ("TERMINATED", "SUSPENDED", "STOPPED"):
            if inst.op is not None:
                inst.op.done = True
            inst.op = op
            inst.boot += 1
            self._set(inst, "STAGING")
        elif kind == "stop" and inst.status in RUNNING_STATUSES:
            if inst.op is not None:
                inst.op.done = True  # a stop overrides a start still in progress
            inst.op = op
            self._set(inst, "STOPPING")
        else:
            op.done = True  # nothing to do: a no-op operation, DONE at once
            return op
        if steps <= 0:
            self._finish(inst, op)
        return op

    def _finish(self, inst: SimInstance, op: Op) -> None:
        op.done = True
        inst.op = None
        self._set(inst, "RUNNING" if op.kind == "start" else "TERMINATED")

    def _set(self, inst: SimInstance, status: str) -> None:
        was_running = inst.status in RUNNING_STATUSES and inst.exists
        inst.status = status
        now_running = status in RUNNING_STATUSES and inst.exists
        if now_running and not was_running:
            inst.running_since = self.clock.now()
        elif not now_running:
            if was_running:
                inst.stopped_at = self.clock.now()
            inst.running_since = None

    def _accrue(self) -> None:
        """Charge every billed instance for the time since the last charge."""
        now = self.clock.now()
        start = self._accrued_until
        if now <= start:
            return
        billed: dict[str, int] = {}
        for inst in self.instances.values():
            if inst.exists and inst.status in BILLED_STATUSES and inst.pool is not None:
                billed[inst.pool] = billed.get(inst.pool, 0) + 1
                if inst.status == "STOPPING":
                    cost = (now - start) * self.prices.get(inst.pool, 0.0) / 3600.0
                    self.stopping_spend[inst.pool] = self.stopping_spend.get(inst.pool, 0.0) + cost
        for pool, count in billed.items():
            per_s = self.prices.get(pool, 0.0) / 3600.0 * count
            t = start
            while t < now:
                end = min(now, _next_midnight(t))
                day, month = day_month(t)
                cost = (end - t) * per_s
                self.spend_day[(pool, day)] = self.spend_day.get((pool, day), 0.0) + cost
                self.spend_month[(pool, month)] = self.spend_month.get((pool, month), 0.0) + cost
                t = end
        self._accrued_until = now
