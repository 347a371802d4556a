"""Hindsight bounds (sim/bounds.py) on hand-made traces, and how they order."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoyo_control.sim.bounds import (
    Gaps,
    best_fixed,
    best_per_class,
    best_prewarm,
    history_class,
    prewarm_cost,
    timeout_cost,
)
from yoyo_control.sim.optimum import CostModel, offline_optimum
from yoyo_control.sim.workload import Request

# p = 0.001 $/s, w = 0.004 $/s, a cold start bills 100 s and is waited 100 s: C = 0.5 $,
# the break-even gap is 500 s.
MODEL = CostModel(hourly_price=3.6, wait_weight=4.0, boot_billed_s=100.0, boot_wait_s=100.0)


def at(*arrivals: float) -> list[Request]:
    return [Request(a, 0.0) for a in arrivals]


def test_gaps_count_and_sum_over_half_open_intervals() -> None:
    gaps = Gaps([30, 200, 200, 500])
    assert gaps.between(-math.inf, 200) == (3, 430)
    assert gaps.between(200, math.inf) == (1, 500)
    assert gaps.between(30, 199) == (0, 0.0)


def test_a_prewarm_schedule_prices_each_way_a_gap_can_end() -> None:
    # keep 60 s, restart 300 s after the busy period (ready at 400), stop again at 600.
    # Gaps: 30 warm | 200 woken from stopped | 350 waits for the pre-warm | 500 served
    # pre-warmed | 1000 after the second stop.
    requests = at(0, 30, 230, 580, 1080, 2080)
    stopped = 0.06  # the keep-alive before the stop
    prewarmed = stopped + 0.1  # … and the restart's billed boot
    expected = (
        0.5  # the first cold start (busy time is zero)
        + 0.03
        + (stopped + 0.5)
        + (prewarmed + 0.004 * 50)
        + (prewarmed + 0.001 * 100)
        + (prewarmed + 0.001 * 200 + 0.5)
        + (prewarmed + 0.001 * 200)  # the tail: it pre-warms once more, then stops
    )
    assert prewarm_cost(requests, MODEL, 60, 300, 600) == pytest.approx(expected)


def test_a_fixed_timeout_is_a_schedule_that_never_restarts() -> None:
    requests = at(0, 110, 10120)
    # T = 60: gap 100 → 0.06 + 0.5; gap 10000 → 0.06 + 0.5; tail 0.06.
    assert timeout_cost(requests, MODEL, 60) == pytest.approx(0.5 + (0.06 + 0.5) * 2 + 0.06)
    assert prewarm_cost(requests, MODEL, 60, math.inf, math.inf) == timeout_cost(
        requests, MODEL, 60
    )


def test_the_best_fixed_timeout_is_found_exactly() -> None:
    # Gaps 100, 300, 450: T = 450 keeps all three warm and idles 450 s after the last
    # request (1.3); T = 100 pays 0.1 + 2 × (0.1 + 0.5) + 0.1, T = 0 pays 3 × 0.5.
    requests = at(0, 100, 400, 850)
    bound = best_fixed(requests, MODEL)
    assert bound.label == "T=450s"
    assert bound.cost_usd == pytest.approx(0.5 + 0.85 + 0.45)
    assert bound.cost_usd == min(timeout_cost(requests, MODEL, t) for t in (0, 100, 300, 450))


def test_pre_warming_beats_the_reactive_optimum_on_a_periodic_stream() -> None:
    # A request every 1,990 s: the optimum stops and pays C = 0.5 each time; restarting
    # 1,800 s after each request has the VM ready 90 s early: 0.1 + 0.09 per gap.
    requests = at(*(i * 1990.0 for i in range(20)))
    optimum = offline_optimum(requests, MODEL).cost_usd
    bound = best_prewarm(requests, MODEL)
    assert bound.cost_usd < 0.5 * optimum
    assert "restart at 1800s" in bound.label


def test_history_classes_see_the_previous_gap_and_the_run_of_short_ones() -> None:
    gaps = [10.0, 10.0, 10.0, 10.0, 300.0, 900.0, 10.0]
    assert history_class(gaps, 0, 500) == (0, 0)
    assert history_class(gaps, 2, 500) == (1, 1)  # two short gaps before
    assert history_class(gaps, 4, 500) == (1, 2)  # four short gaps before
    assert history_class(gaps, 5, 500) == (2, 0)  # after a medium gap
    assert history_class(gaps, 6, 500) == (3, 0)  # after a long one


def test_a_timeout_per_class_learns_that_a_burst_ends_with_a_long_gap() -> None:
    # Bursts of five requests 20 s apart, then 3,000 s of silence, ten times over: after
    # four short gaps the next one is long, so that class stops at once (no fixed T can).
    arrivals = [b * 3080.0 + i * 20.0 for b in range(10) for i in range(5)]
    requests = at(*arrivals)
    fixed, per_class = best_fixed(requests, MODEL), best_per_class(requests, MODEL)
    assert per_class.cost_usd < fixed.cost_usd
    assert per_class.cost_usd == pytest.approx(offline_optimum(requests, MODEL).cost_usd)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 40000), st.floats(0, 300)), min_size=1, max_size=30))
def test_the_bounds_order_as_their_families_nest(raw: list[tuple[float, float]]) -> None:
    requests = [Request(a, s) for a, s in raw]
    optimum = offline_optimum(requests, MODEL).cost_usd
    fixed = best_fixed(requests, MODEL).cost_usd
    assert optimum <= best_per_class(requests, MODEL).cost_usd + 1e-9
    assert best_per_class(requests, MODEL).cost_usd <= fixed + 1e-9
    assert best_prewarm(requests, MODEL).cost_usd <= fixed + 1e-9
    for t in (0.0, 60.0, 500.0, 5000.0):
        assert fixed <= timeout_cost(requests, MODEL, t) + 1e-9
