"""SimResult: what one simulation measured, and its summary (plain data).

Invariants: ``cost_usd`` = billed dollars + the valued waits of cold starts, in the same
model as ``optimum`` (sim/optimum.py), so ``ratio`` compares like with like; a result
with no optimum (no requests) has ratio 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .optimum import Optimum


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class SimResult:
    workload: str
    policy: str
    seed: int
    requests: int
    span_s: float
    gpu_s: float
    dollars: float
    cold_starts: int
    boots: int
    preemptions: int
    waits: list[float]
    cold_wait_s: float
    cost_usd: float
    optimum: Optimum
    ledger_usd: float | None
    timeouts: list[tuple[float, float]]
    delivered: Counter[str]
    poweroffs: Counter[str]
    interrupted: int
    events: int
    wall_s: float
    prewarms: int = 0  # pre-warm leases granted (the pool's own, or the oracle's)
    prewarm_lease_s: float = 0.0  # their lease-seconds, charged to the pre-warm budget

    @property
    def waited(self) -> int:
        """Requests that waited for a cold start (more than a second)."""
        return sum(w > 1.0 for w in self.waits)

    @property
    def ratio(self) -> float:
        return self.cost_usd / self.optimum.cost_usd if self.optimum.cost_usd > 0 else 1.0

    def wait_p(self, q: float) -> float:
        return percentile(self.waits, q)

    def summary(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "policy": self.policy,
            "seed": self.seed,
            "requests": self.requests,
            "gpu_hours": round(self.gpu_s / 3600.0, 3),
            "dollars": round(self.dollars, 4),
            "cold_starts": self.cold_starts,
            "boots": self.boots,
            "preemptions": self.preemptions,
            "wait_p50_s": round(self.wait_p(50), 2),
            "wait_p95_s": round(self.wait_p(95), 2),
            "wait_p99_s": round(self.wait_p(99), 2),
            "wait_cost_usd": round(self.cost_usd - self.dollars, 4),
            "cost_usd": round(self.cost_usd, 4),
            "optimum_usd": round(self.optimum.cost_usd, 4),
            "optimum_dollars": round(self.optimum.dollars, 4),
            "optimum_cold_starts": self.optimum.cold_starts,
            "ratio": round(self.ratio, 3),
            "ledger_usd": None if self.ledger_usd is None else round(self.ledger_usd, 4),
            "final_timeout_s": self.timeouts[-1][1] if self.timeouts else None,
            "delivered": dict(self.delivered),
            "poweroffs": dict(self.poweroffs),
            "interrupted": self.interrupted,
            "waited": self.waited,
            "cold_wait_s": round(self.cold_wait_s, 1),
            "prewarms": self.prewarms,
            "prewarm_lease_min": round(self.prewarm_lease_s / 60.0, 1),
            "events": self.events,
            "wall_s": round(self.wall_s, 3),
        }
