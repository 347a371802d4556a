"""SimParams: the simulated pool and its surroundings (money in USD, durations in s).

Invariants: immutable; ``pool_policy`` builds the PoolPolicy the real Service runs with,
and ``cost_model`` the cost model its optimum is computed with (sim/optimum.py), both
from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..domain.model import PoolPolicy
from .compute import Machine
from .optimum import CostModel

MONTH = 30 * 86400.0


@dataclass(frozen=True)
class SimParams:
    """The simulated pool and its surroundings. Money in USD, durations in seconds."""

    pool: str = "gpu"
    instances: int = 1
    hourly_price: float = 0.70  # a spot L4-class GPU VM
    timezone: str = "UTC"
    machine: Machine = field(default_factory=Machine)
    wait_weight: float = 5.0  # a user-second waiting is worth this many VM-seconds
    tick_s: float = 60.0
    heartbeat_s: float = 30.0
    agent_poll_s: float = 1.0
    exact_agent: bool = False
    wake_retry_s: float = 60.0
    gateway_depth: bool = True  # the gateway also publishes its queue depth (see below)
    lead_s: float = 300.0  # the simulation starts this long before the first request
    tail_s: float = 3600.0  # … and ends this long after the last one
    seed: int = 0
    lease_s: float = 3600.0
    max_session_s: float = MONTH
    max_lease_s: float = MONTH
    deadman_grace_s: float = 900.0
    idle_shutdown_s: float | None = None  # None: the policy's longest keep-alive + 300 s
    daily_cap_usd: float | None = None
    monthly_cap_usd: float | None = None
    max_events: int = 20_000
    # Pre-warm (domain/prewarm.py): None keeps PoolPolicy's default budget for the pool's
    # own keep-alive (the ``pool`` policies); fixed policies run without pre-warm.
    prewarm_budget_min: float | None = None
    restart_every_s: float | None = None  # the control plane restarts (a new Service)

    def pool_policy(self, idle_timeout_s: float | None) -> PoolPolicy:
        """The simulated pool. ``idle_timeout_s`` None: the pool's own configured
        keep-alive (whatever decide() does by default); a number: a fixed timeout that the
        policy under test sets (``keepalive="fixed"`` where PoolPolicy has that field)."""
        extra: dict[str, Any] = {}
        if self.prewarm_budget_min is not None:
            extra["prewarm_budget_min"] = self.prewarm_budget_min
        if idle_timeout_s is not None:
            extra["prewarm_budget_min"] = 0.0
            extra["idle_timeout_s"] = idle_timeout_s
            if "keepalive" in {f.name for f in fields(PoolPolicy)}:
                extra["keepalive"] = "fixed"
        return PoolPolicy(
            pool=self.pool,
            zone="sim",
            instances=tuple(f"{self.pool}-{i}" for i in range(self.instances)),
            hourly_price_usd=self.hourly_price,
            boot_s=self.machine.mean_boot_s,
            wait_weight=self.wait_weight,
            max_session_s=self.max_session_s,
            lease_s=self.lease_s,
            max_lease_s=self.max_lease_s,
            daily_cap_usd=self.daily_cap_usd,
            monthly_cap_usd=self.monthly_cap_usd,
            timezone=self.timezone,
            **extra,
        )

    def cost_model(self) -> CostModel:
        m = self.machine
        return CostModel(
            hourly_price=self.hourly_price,
            wait_weight=self.wait_weight,
            boot_billed_s=m.ready.mean_s + m.stop.mean_s,
            boot_wait_s=m.mean_boot_s,
        )


DEFAULT_PARAMS = SimParams()
