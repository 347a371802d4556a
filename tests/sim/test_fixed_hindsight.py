"""The in-simulation hindsight bound (sim/fixed_hindsight.py) on a small trace."""

from __future__ import annotations

import pytest

from yoyo_control.sim.engine import SimParams, simulate
from yoyo_control.sim.fixed_hindsight import best_fixed_simulated, cheapest, fixed_policy
from yoyo_control.sim.workload import Request

# Gaps of 2, 8, 20 and 40 minutes: short timeouts pay cold starts, long ones pay idling.
ARRIVALS = (0.0, 120.0, 600.0, 1800.0, 4200.0)
START = 1_804_150_800.0  # 2027-03-01 09:00 UTC
CANDIDATES = (60.0, 300.0, 900.0, 3600.0)


def small_trace() -> list[Request]:
    return [Request(START + a, 5.0) for a in ARRIVALS]


def test_cheapest_keeps_the_lowest_total_and_breaks_ties_to_the_shorter() -> None:
    assert cheapest({60.0: 3.0, 300.0: 2.0, 900.0: 2.5}).timeout_s == 300.0
    assert cheapest({900.0: 2.0, 300.0: 2.0}).timeout_s == 300.0
    with pytest.raises(ValueError):
        cheapest({})


def test_the_bound_is_no_higher_than_any_fixed_timeout_it_considers() -> None:
    runs = [(small_trace(), SimParams(seed=seed)) for seed in (0, 1)]
    bound = best_fixed_simulated(runs, CANDIDATES)
    for timeout in CANDIDATES:
        each = sum(simulate(r, fixed_policy(timeout), p).cost_usd for r, p in runs)
        assert each == pytest.approx(bound.totals[timeout])  # the same simulation
        assert bound.cost_usd <= each
    assert bound.cost_usd == min(bound.totals.values())
    # The trace is built so that the candidates differ: the bound is a real choice.
    assert len({round(c, 6) for c in bound.totals.values()}) == len(CANDIDATES)
