"""Hindsight bounds: how close a family of keep-alive policies could come to the optimum.

Each bound picks its family's parameters *knowing the whole request stream*, so a real
policy of that family, which has to learn them online, can only do worse. Schedules are
priced with the offline optimum's cost model (sim/optimum.py), ``p`` the price per
second, ``w`` the value of a user-second of waiting, ``C`` a cold start, ``B`` the boot's
billed seconds and ``W`` its waited seconds:

- **fixed timeout** ``T``: an idle gap ``g`` costs ``g·p`` if ``g <= T``, else
  ``T·p + C``; the idle tail after the last request costs ``T·p``;
- **pre-warm schedule** ``(keep, restart, until)``, the hybrid policy of Shahrad et al.
  ("Serverless in the Wild", ATC 2020) with one schedule for the whole stream: stay on
  ``keep`` seconds after a busy period; then stop, start again ``restart`` seconds after
  the busy period ended (ready ``W`` later), and stop again at ``until``. A gap ending
  before the restart pays a cold start; during the restart's boot, ``p·B`` and the rest of
  the boot waited; while the pre-warmed VM is ready, ``p·B`` plus the idling; after
  ``until``, that plus a cold start. It can beat the reactive optimum (ratio < 1),
  because a pre-warmed start makes nobody wait;
- **timeout per history class**: one ``T`` per class of what a policy knows when a gap
  begins — the previous gap (none, short, medium, long: below a quarter of the
  break-even, below it, above it) and how many short gaps came in a row before it
  (0, 1–3, 4–9, 10 or more) — each chosen in hindsight for its class.

Invariants: pure and deterministic; the fixed and per-class bounds are exact over all
timeouts (the best ``T`` for a set of gaps is 0 or one of the gaps) and never below the
offline optimum; neither the per-class nor the pre-warm bound is ever above the fixed
one (a single class, and ``restart = inf``, are fixed timeouts).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .optimum import CostModel, busy_periods, idle_gaps
from .workload import Request

INF = math.inf
# The pre-warm grid (seconds): keep-alive before stopping, restart offset, ready window.
KEEP_GRID = (0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1800.0)
RESTART_GRID = (
    60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0,
    2400.0, 3000.0, 3600.0, 4800.0, 6000.0, 7200.0, 10800.0,
)  # fmt: skip
READY_GRID = (0.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)


@dataclass(frozen=True)
class Bound:
    cost_usd: float
    label: str  # the parameters chosen, for the report


class Gaps:
    """Sorted idle gaps with prefix sums: counts and sums over any interval in O(log n)."""

    def __init__(self, gaps: Sequence[float]) -> None:
        self.sorted = sorted(gaps)
        self.prefix = [0.0, *itertools.accumulate(self.sorted)]

    def between(self, low: float, high: float) -> tuple[int, float]:
        """(count, sum) of the gaps ``g`` with ``low < g <= high``."""
        i = bisect.bisect_right(self.sorted, low)
        j = bisect.bisect_right(self.sorted, high)
        return (j - i, self.prefix[j] - self.prefix[i]) if j > i else (0, 0.0)


def _fixed_gaps_cost(gaps: Gaps, timeout_s: float, model: CostModel) -> float:
    p, c = model.price_per_s, model.cold_cost
    _, warm_sum = gaps.between(-INF, timeout_s)
    cold, _ = gaps.between(timeout_s, INF)
    return warm_sum * p + cold * (timeout_s * p + c)


def _base(periods: list[tuple[float, float]], model: CostModel) -> float:
    """What every reactive schedule pays: the first cold start and the busy time."""
    return model.cold_cost + sum(end - start for start, end in periods) * model.price_per_s


def best_fixed(requests: Sequence[Request], model: CostModel) -> Bound:
    periods = busy_periods(requests)
    if not periods:
        return Bound(0.0, "-")
    gaps = Gaps(idle_gaps(periods))
    candidates = [0.0, *gaps.sorted]
    tail = model.price_per_s
    cost, t = min((_fixed_gaps_cost(gaps, t, model) + t * tail, t) for t in candidates)
    return Bound(_base(periods, model) + cost, f"T={t:.0f}s")


def timeout_cost(requests: Sequence[Request], model: CostModel, timeout_s: float) -> float:
    """The cost of a fixed idle timeout, its idle tail after the last request included."""
    return prewarm_cost(requests, model, timeout_s, INF, INF)


def prewarm_cost(
    requests: Sequence[Request], model: CostModel, keep_s: float, restart_s: float, until_s: float
) -> float:
    """The cost of one pre-warm schedule (``restart_s = inf``: a fixed timeout ``keep_s``)."""
    periods = busy_periods(requests)
    if not periods:
        return 0.0
    return _base(periods, model) + _prewarm_gaps_cost(
        Gaps(idle_gaps(periods)), model, keep_s, restart_s, until_s
    )


def _prewarm_gaps_cost(
    gaps: Gaps, model: CostModel, keep_s: float, restart_s: float, until_s: float
) -> float:
    p, w, c = model.price_per_s, model.wait_per_s, model.cold_cost
    billed, waited = model.boot_billed_s * p, model.boot_wait_s
    if restart_s == INF:
        return _fixed_gaps_cost(gaps, keep_s, model) + keep_s * p
    restart_s = max(restart_s, keep_s)
    ready_at = restart_s + waited
    until_s = max(until_s, ready_at)
    stopped = keep_s * p
    _, warm = gaps.between(-INF, keep_s)
    n_cold, _ = gaps.between(keep_s, restart_s)  # the request wakes the stopped VM
    n_boot, boot_sum = gaps.between(restart_s, ready_at)  # it waits for the pre-warm
    n_ready, ready_sum = gaps.between(ready_at, until_s)  # the pre-warmed VM serves it
    n_late, _ = gaps.between(until_s, INF)  # stopped again: a cold start
    prewarmed = stopped + billed
    cost = warm * p + n_cold * (stopped + c)
    cost += n_boot * (prewarmed + w * ready_at) - w * boot_sum
    cost += n_ready * (prewarmed - p * ready_at) + p * ready_sum
    cost += n_late * (prewarmed + p * (until_s - ready_at) + c)
    return cost + prewarmed + p * (until_s - ready_at)  # the tail: it pre-warms once more


def best_prewarm(requests: Sequence[Request], model: CostModel) -> Bound:
    periods = busy_periods(requests)
    if not periods:
        return Bound(0.0, "-")
    gaps = Gaps(idle_gaps(periods))
    base = _base(periods, model)
    best = best_fixed(requests, model)  # restart = inf: every fixed timeout
    for keep in KEEP_GRID:
        for restart in (r for r in RESTART_GRID if r > keep):
            for ready in READY_GRID:
                until = restart + model.boot_wait_s + ready
                cost = base + _prewarm_gaps_cost(gaps, model, keep, restart, until)
                if cost < best.cost_usd:
                    label = f"keep {keep:.0f}s, restart at {restart:.0f}s, ready {ready:.0f}s"
                    best = Bound(cost, label)
    return best


def history_class(gaps: Sequence[float], index: int, break_even_s: float) -> tuple[int, int]:
    """What a policy knows when gap ``index`` begins: (previous gap's class, short run)."""
    short = break_even_s / 4
    if index == 0:
        previous = 0
    else:
        g = gaps[index - 1]
        previous = 1 if g < short else 2 if g < break_even_s else 3
    run = 0
    while run < index and gaps[index - 1 - run] < short:
        run += 1
    return previous, (0 if run == 0 else 1 if run < 4 else 2 if run < 10 else 3)


def best_per_class(requests: Sequence[Request], model: CostModel) -> Bound:
    periods = busy_periods(requests)
    if not periods:
        return Bound(0.0, "-")
    gaps = idle_gaps(periods)
    classes: dict[tuple[int, int], list[float]] = {}
    for i, g in enumerate(gaps):
        classes.setdefault(history_class(gaps, i, model.break_even_s), []).append(g)
    # The tail after the last request belongs to the class of a gap beginning then.
    tail_class = history_class([*gaps, INF], len(gaps), model.break_even_s)
    total = 0.0
    classes.setdefault(tail_class, [])
    for cls, members in classes.items():
        in_class = Gaps(members)
        tail = model.price_per_s if cls == tail_class else 0.0
        candidates = [0.0, *in_class.sorted]
        total += min(_fixed_gaps_cost(in_class, t, model) + t * tail for t in candidates)
    return Bound(_base(periods, model) + total, f"{len(classes)} classes")
