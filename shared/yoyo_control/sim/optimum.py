"""The offline optimum of one instance for a request stream, and the cost model it uses.

Cost of a schedule = dollars billed + the value of the time users waited for a cold
start. With ``p`` the price per second and ``w = wait_weight × p`` the value of one
user-second of waiting:

- a **cold start** costs ``C = p × (boot_billed_s) + w × boot_wait_s``: the instance bills
  while it loads the model (``Machine.ready``) and while it stops afterwards
  (``Machine.stop``), and the request that woke it waits the whole boot
  (``Machine.staging + Machine.ready``), all at their means;
- **busy** time (the union over requests of [arrival, arrival + service)) costs ``p`` per
  second under every schedule;
- an **idle gap** ``g`` between two busy periods costs the optimum ``min(g·p, C)``: it
  knows the gap's length, so it either stays on or stops at once and pays the cold start;
- the first request always pays one cold start; after the last one the optimum stops.

This is the best *reactive* schedule (it starts the instance only when a request comes).
A policy that starts ahead of demand (a daily window) may beat it; its ratio is then < 1.
The simulator charges the policies it runs with the same model: their billed dollars
plus ``w ×`` the wait of each cold start's first request.

Invariants: exact for a single instance (gaps are independent once busy periods are
fixed); ``optimum(…).cost_usd <= cost of any timeout schedule`` on the same stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from .workload import Request


@dataclass(frozen=True)
class CostModel:
    hourly_price: float
    wait_weight: float
    boot_billed_s: float
    boot_wait_s: float

    @property
    def price_per_s(self) -> float:
        return self.hourly_price / 3600.0

    @property
    def wait_per_s(self) -> float:
        return self.wait_weight * self.price_per_s

    @property
    def cold_cost(self) -> float:
        return self.price_per_s * self.boot_billed_s + self.wait_per_s * self.boot_wait_s

    @property
    def break_even_s(self) -> float:
        """The idle gap whose idling costs exactly one cold start."""
        return self.cold_cost / self.price_per_s if self.price_per_s > 0 else float("inf")


def busy_periods(requests: Iterable[Request]) -> list[tuple[float, float]]:
    """The union of the requests' service intervals, as sorted disjoint (start, end)."""
    periods: list[tuple[float, float]] = []
    for r in sorted(requests, key=lambda r: r.arrival):
        start, end = r.arrival, r.arrival + max(0.0, r.service_s)
        if periods and start <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], end))
        else:
            periods.append((start, end))
    return periods


def idle_gaps(periods: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[1] for a, b in itertools.pairwise(periods)]


@dataclass(frozen=True)
class Optimum:
    cost_usd: float
    dollars: float  # the billed part
    gpu_s: float
    cold_starts: int
    busy_s: float
    kept_idle_s: float
    gaps: int


def offline_optimum(requests: Iterable[Request], model: CostModel) -> Optimum:
    periods = busy_periods(requests)
    if not periods:
        return Optimum(0.0, 0.0, 0.0, 0, 0.0, 0.0, 0)
    p, c = model.price_per_s, model.cold_cost
    busy = sum(end - start for start, end in periods)
    kept = 0.0
    cold = 1
    for gap in idle_gaps(periods):
        if gap * p <= c:
            kept += gap
        else:
            cold += 1
    gpu_s = busy + kept + cold * model.boot_billed_s
    dollars = gpu_s * p
    cost = dollars + cold * model.wait_per_s * model.boot_wait_s
    return Optimum(cost, dollars, gpu_s, cold, busy, kept, len(periods) - 1)
