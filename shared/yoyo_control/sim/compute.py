"""SimCompute: ports.Compute in virtual time, with seeded boot times and preemptions.

Lifecycle, as Compute Engine: TERMINATED --start--> STAGING (``staging``, not billed)
--> RUNNING (billed; the guest boots, the agent starts after ``agent_s``, the inference
server answers after ``ready``) --stop / preemption / guest power-off--> STOPPING
(``stop``, billed) --> TERMINATED.

Invariants:
- a request id is acted on at most once; a start while STOPPING raises TemporaryError
  (Compute Engine's "resource not ready"); unknown instances raise InstanceNotFound;
- calls return at once (the operation continues in virtual time); the service records
  the outcome as if the bounded wait had seen the operation finish;
- every random draw comes from the ``random.Random`` given, so a seed fixes the run;
- ``billed_s`` is the truth the real-time ledger is measured against: time spent in
  RUNNING or STOPPING (model.BILLED_STATUSES), per instance.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Protocol

from .. import names
from ..domain.model import BILLED_STATUSES
from ..errors import InstanceNotFound, TemporaryError
from ..ports import ObservedInstance
from .events import EventQueue


@dataclass(frozen=True)
class Dist:
    """A duration: lognormal around ``median_s`` with shape ``sigma`` (0: constant)."""

    median_s: float
    sigma: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.sigma <= 0:
            return self.median_s
        return self.median_s * math.exp(self.sigma * rng.gauss(0.0, 1.0))

    @property
    def mean_s(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2)

    def quantile(self, q: float) -> float:
        if self.sigma <= 0:
            return self.median_s
        return self.median_s * math.exp(self.sigma * statistics.NormalDist().inv_cdf(q))


@dataclass(frozen=True)
class Machine:
    """How a pool's VMs behave. Defaults: a spot GPU VM with a model on a local disk."""

    staging: Dist = Dist(20.0, 0.3)
    ready: Dist = Dist(120.0, 0.3)  # RUNNING → the inference server answers
    agent_s: float = 15.0  # RUNNING → the agent's first look at the world
    stop: Dist = Dist(30.0, 0.3)
    preempt_per_hour: float = 0.0  # spot preemptions per RUNNING hour (Poisson)

    @property
    def mean_boot_s(self) -> float:
        """Mean start call → ready: what a woken request waits for."""
        return self.staging.mean_s + self.ready.mean_s


class Listener(Protocol):
    def on_running(self, instance: str, boot_id: str) -> None: ...
    def on_stopping(self, instance: str, why: str) -> None: ...


@dataclass
class _Vm:
    name: str
    pool: str
    status: str = "TERMINATED"
    generation: int = 0  # bumped on every transition; stale timers compare it
    boot_id: str = ""
    boots: int = 0
    billed_since: float | None = None
    billed_s: float = 0.0
    preemptions: int = 0


@dataclass
class SimCompute:
    queue: EventQueue
    rng: random.Random
    machine: Machine = Machine()
    listener: Listener | None = None
    vms: dict[str, _Vm] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    calls: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, pool: str, instance: str) -> None:
        self.vms[instance] = _Vm(instance, pool)

    # --- ports.Compute -----------------------------------------------------------------

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        return [
            ObservedInstance(vm.name, vm.status, {names.LABEL_POOL: pool})
            for vm in self.vms.values()
            if vm.pool == pool
        ]

    def get(self, zone: str, instance: str) -> ObservedInstance:
        vm = self._vm(instance)
        return ObservedInstance(vm.name, vm.status, {names.LABEL_POOL: vm.pool})

    def start(self, zone: str, instance: str, request_id: str) -> None:
        vm = self._vm(instance)
        if request_id in self.seen:
            return
        if vm.status == "STOPPING":
            raise TemporaryError(f"instance {instance} is stopping: resource not ready")
        self.seen.add(request_id)
        self.calls.append((self.queue.now(), "start", instance))
        if vm.status != "TERMINATED":
            return
        self._move(vm, "STAGING")
        self.queue.after(self.machine.staging.sample(self.rng), self._running, vm, vm.generation)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        vm = self._vm(instance)
        if request_id in self.seen:
            return
        self.seen.add(request_id)
        self.calls.append((self.queue.now(), "stop", instance))
        if vm.status in ("STAGING", "RUNNING"):
            self._stopping(vm, "stopped by the control plane")

    # --- what happens to a VM on its own -----------------------------------------------

    def poweroff(self, instance: str, why: str) -> None:
        """The guest powered itself off (the agent's idle backstop, dead-man, kill)."""
        vm = self._vm(instance)
        if vm.status in ("STAGING", "RUNNING"):
            self._stopping(vm, why)

    def billed_s(self, instance: str | None = None) -> float:
        now = self.queue.now()
        total = 0.0
        for vm in self.vms.values():
            if instance is not None and vm.name != instance:
                continue
            total += vm.billed_s + (now - vm.billed_since if vm.billed_since is not None else 0)
        return total

    def status(self, instance: str) -> str:
        return self._vm(instance).status

    def _vm(self, instance: str) -> _Vm:
        vm = self.vms.get(instance)
        if vm is None:
            raise InstanceNotFound(f"instance {instance} not found")
        return vm

    def _move(self, vm: _Vm, status: str) -> None:
        now = self.queue.now()
        was_billed = vm.status in BILLED_STATUSES
        if was_billed and status not in BILLED_STATUSES and vm.billed_since is not None:
            vm.billed_s += now - vm.billed_since
            vm.billed_since = None
        if not was_billed and status in BILLED_STATUSES:
            vm.billed_since = now
        vm.status = status
        vm.generation += 1

    def _running(self, vm: _Vm, generation: int) -> None:
        if vm.generation != generation:
            return
        self._move(vm, "RUNNING")
        vm.boots += 1
        vm.boot_id = f"{vm.name}-boot-{vm.boots}"
        if self.machine.preempt_per_hour > 0:
            delay = self.rng.expovariate(self.machine.preempt_per_hour / 3600.0)
            self.queue.after(delay, self._preempt, vm, vm.generation)
        if self.listener is not None:
            self.listener.on_running(vm.name, vm.boot_id)

    def _preempt(self, vm: _Vm, generation: int) -> None:
        if vm.generation == generation and vm.status == "RUNNING":
            vm.preemptions += 1
            self._stopping(vm, "preempted")

    def _stopping(self, vm: _Vm, why: str) -> None:
        self._move(vm, "STOPPING")
        self.queue.after(self.machine.stop.sample(self.rng), self._terminated, vm, vm.generation)
        if self.listener is not None:
            self.listener.on_stopping(vm.name, why)

    def _terminated(self, vm: _Vm, generation: int) -> None:
        if vm.generation == generation:
            self._move(vm, "TERMINATED")
