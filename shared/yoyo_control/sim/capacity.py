"""Capacity in the simulator: per-zone spot stockouts and preemptions, on the real Service.

- **Stockouts** (``Weather``): each zone alternates between "in stock" and "stocked out"
  periods, both exponential: a zone is out ``stockout_share`` of the time, in episodes
  of mean ``stockout_mean_s``. Zones are independent. While a zone is out, a start of a
  stopped spot instance there raises CapacityError (ZONE_RESOURCE_POOL_EXHAUSTED), as
  Compute Engine does; standard instances are not refused (``standard_share`` of the
  time they are, independently, when set).
- **Preemptions**: a RUNNING spot instance is preempted at ``preempt_per_hour`` per
  running hour (Poisson); standard instances are never preempted.
- The parameters are the calibration: nothing here is measured data; bench/capacity.py
  says which values it uses and why.

Invariants: deterministic for a seed (the weather has its own ``random.Random`` per zone,
drawn before the run, so the same zones are out at the same times whatever the control
plane does); every instance is priced at its own hourly price (``dollars``); the pool is
the real PoolPolicy with placements, run by the real decide() through the engine.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field, replace

from .. import names
from ..config import Config
from ..domain.model import SPOT, PoolPolicy
from ..errors import CapacityError
from ..ports import ObservedInstance
from ..service import Service
from .compute import SimCompute, _Vm
from .engine import Simulation
from .policies import SimPolicy
from .result import SimResult
from .workload import Request


@dataclass(frozen=True)
class Weather:
    """The capacity processes (see the module docstring). Durations in seconds."""

    stockout_share: float = 0.3  # share of the time a zone has no spot capacity
    stockout_mean_s: float = 3600.0  # mean length of one stockout episode
    preempt_per_hour: float = 0.05  # spot preemptions per running hour
    standard_share: float = 0.0  # share of the time standard capacity is out too
    seed: int = 0

    def outages(
        self, zone: str, start: float, end: float, share: float
    ) -> list[tuple[float, float]]:
        """The stockout intervals of ``zone`` in [start, end) (sorted, disjoint)."""
        if share <= 0:
            return []
        rng = random.Random(f"{self.seed}/{zone}/{share}")
        out_mean = self.stockout_mean_s
        in_mean = out_mean * (1 - share) / share if share < 1 else 0.0
        t = start
        out = rng.random() < share  # the stationary state at the start
        spans = []
        while t < end:
            length = rng.expovariate(1 / out_mean) if out else rng.expovariate(1 / in_mean)
            if out:
                spans.append((t, t + length))
            t += length
            out = not out
        return spans


@dataclass
class ZonedCompute(SimCompute):
    """SimCompute whose instances live in zones that run out of spot capacity."""

    policy: PoolPolicy | None = None
    outages: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    spot_preempt_per_hour: float = 0.0
    refusals: dict[str, int] = field(default_factory=dict)

    def out(self, key: str, at: float) -> bool:
        spans = self.outages.get(key, [])
        i = bisect.bisect_right(spans, (at, float("inf"))) - 1
        return i >= 0 and spans[i][0] <= at < spans[i][1]

    def _where(self, instance: str) -> tuple[str, str]:
        assert self.policy is not None
        placed = self.policy.placement(instance)
        return placed.zone, placed.provisioning

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        return [
            ObservedInstance(vm.name, vm.status, {names.LABEL_POOL: pool})
            for vm in self.vms.values()
            if vm.pool == pool and self._where(vm.name)[0] == zone
        ]

    def start(self, zone: str, instance: str, request_id: str) -> None:
        vm = self._vm(instance)
        where, provisioning = self._where(instance)
        key = where if provisioning == SPOT else f"{where}/standard"
        fresh = request_id not in self.seen and vm.status == "TERMINATED"
        if fresh and self.out(key, self.queue.now()):
            self.seen.add(request_id)  # Compute Engine keeps the failed operation
            self.refusals[key] = self.refusals.get(key, 0) + 1
            raise CapacityError(
                f"start instance {instance} in zone {where}: ZONE_RESOURCE_POOL_EXHAUSTED "
                "(simulated stockout)"
            )
        super().start(zone, instance, request_id)

    def _running(self, vm: _Vm, generation: int) -> None:
        super()._running(vm, generation)
        spot = self._where(vm.name)[1] == SPOT
        if vm.generation == generation + 1 and spot and self.spot_preempt_per_hour > 0:
            delay = self.rng.expovariate(self.spot_preempt_per_hour / 3600.0)
            self.queue.after(delay, self._preempt, vm, vm.generation)

    def dollars(self) -> float:
        assert self.policy is not None
        prices = self.policy.prices
        return sum(self.billed_s(n) * prices[n] / 3600.0 for n in self.vms)


class CapacitySimulation(Simulation):
    """The engine's simulation on a pool placed across zones, under ``weather``."""

    def __init__(
        self,
        requests: list[Request],
        policy: SimPolicy,
        pool: PoolPolicy,
        weather: Weather,
        **kwargs: object,
    ) -> None:
        super().__init__(requests, policy, **kwargs)  # type: ignore[arg-type]
        base = replace(
            pool,
            pool=self.params.pool,
            boot_s=self.params.machine.mean_boot_s,
            lease_s=self.params.lease_s,
            max_lease_s=self.params.max_lease_s,
            max_session_s=self.params.max_session_s,
            tick_s=self.params.tick_s,
        )
        machine = replace(self.params.machine, preempt_per_hour=0.0)  # per zone, below
        self.compute = ZonedCompute(
            self.queue,
            self.rng,
            machine,
            listener=self,
            policy=base,
            spot_preempt_per_hour=weather.preempt_per_hour,
        )
        for key in {p.zone for p in map(base.placement, base.instances)}:
            self.compute.outages[key] = weather.outages(
                key, self.start, self.end, weather.stockout_share
            )
            self.compute.outages[f"{key}/standard"] = weather.outages(
                f"{key}/standard", self.start, self.end, weather.standard_share
            )
        for name in base.instances:
            self.compute.add(self.params.pool, name)
        self.base = base
        self.config = Config(
            backend="local", timezone=self.params.timezone, pools={base.pool: base}
        )
        self.service = Service(self.store, self.compute, self.queue.clock, self.config)
        self.wake_waits: list[float] = []

    def _ready(self, instance: str, boot_id: str) -> None:
        first = self.episode_first
        super()._ready(instance, boot_id)
        if first is not None and self.episode_first is None:
            self.wake_waits.append(self.queue.now() - first)

    def run(self) -> SimResult:
        result = super().run()
        if self.episode_first is not None:  # a wake never served
            self.wake_waits.append(self.end - self.episode_first)
        return result
