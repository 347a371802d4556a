"""The best fixed idle timeout chosen in hindsight, measured in the simulation itself.

sim/bounds.py prices every boot at its mean, while the simulation draws each boot, so a
simulated policy can land below those bounds: they are not floors for what the simulator
measures. This bound is: it runs the simulator once per candidate timeout on the very same
request streams and seeds as the policy it judges (a run's random stream depends only on
its seed, so the n-th boot draws the same duration under every policy), sums each
candidate's cost over the runs, and keeps the cheapest candidate.

Invariants: the bound's total is one of the candidates' totals and no higher than any of
them; the candidates are fixed in advance (``CANDIDATES_S``), never chosen from the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .engine import SimParams, simulate
from .policies import SimPolicy
from .workload import Request

# Every timeout the bound considers (seconds): 1 min to 1 h, denser around the
# ≈15-minute break-even of the default cost model.
CANDIDATES_S: tuple[float, ...] = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)


def fixed_policy(timeout_s: float) -> SimPolicy:
    return SimPolicy(f"fixed:{timeout_s:g}", "fixed", timeout_s)


@dataclass(frozen=True)
class FixedBound:
    timeout_s: float  # the cheapest candidate
    cost_usd: float  # its cost, summed over the runs
    totals: Mapping[float, float]  # every candidate's summed cost


def cheapest(totals: Mapping[float, float]) -> FixedBound:
    """The cheapest of the candidates' summed costs (ties: the shorter timeout)."""
    if not totals:
        raise ValueError("no candidate timeouts")
    cost, timeout = min((cost, timeout) for timeout, cost in totals.items())
    return FixedBound(timeout, cost, dict(totals))


def best_fixed_simulated(
    runs: Sequence[tuple[Sequence[Request], SimParams]],
    candidates: Sequence[float] = CANDIDATES_S,
) -> FixedBound:
    """Simulate every candidate on every (requests, params) run; the cheapest total."""
    totals = {
        t: sum(simulate(list(r), fixed_policy(t), params).cost_usd for r, params in runs)
        for t in candidates
    }
    return cheapest(totals)
