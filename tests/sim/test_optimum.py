"""The offline optimum (sim/optimum.py) on hand-made traces, and its defining property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoyo_control.sim.bounds import timeout_cost
from yoyo_control.sim.optimum import (
    CostModel,
    busy_periods,
    idle_gaps,
    offline_optimum,
)
from yoyo_control.sim.workload import Request

# 0.001 $/s; a user-second waiting is worth 4 VM-seconds; a cold start bills 100 s and
# makes its user wait 100 s: C = 0.1 + 0.4 = 0.5 $, worth 500 idle seconds.
MODEL = CostModel(hourly_price=3.6, wait_weight=4.0, boot_billed_s=100.0, boot_wait_s=100.0)


def req(at: float, service: float = 10.0) -> Request:
    return Request(at, service)


def test_the_cost_model() -> None:
    assert MODEL.price_per_s == pytest.approx(0.001)
    assert MODEL.wait_per_s == pytest.approx(0.004)
    assert MODEL.cold_cost == pytest.approx(0.5)
    assert MODEL.break_even_s == pytest.approx(500)


def test_busy_periods_merge_overlapping_and_touching_requests() -> None:
    requests = [req(0, 10), req(5, 10), req(15, 5), req(40, 1), req(100, 0)]
    assert busy_periods(requests) == [(0, 20), (40, 41), (100, 100)]
    assert idle_gaps(busy_periods(requests)) == [20, 59]
    assert busy_periods([]) == []


def test_a_hand_made_trace_keeps_short_gaps_warm_and_stops_for_long_ones() -> None:
    # busy 0-10, gap 100 (stay: 0.1), busy 110-120, gap 10000 (stop: 0.5), busy 10120-10130
    opt = offline_optimum([req(0), req(110), req(10120)], MODEL)
    assert opt.cold_starts == 2  # the first start and the one after the long gap
    assert opt.busy_s == 30 and opt.kept_idle_s == 100 and opt.gaps == 2
    assert opt.gpu_s == pytest.approx(30 + 100 + 2 * 100)
    assert opt.dollars == pytest.approx(0.33)
    assert opt.cost_usd == pytest.approx(0.33 + 2 * 0.4)  # = 0.5 + 0.03 + 0.1 + 0.5


def test_a_gap_exactly_at_break_even_is_kept_warm() -> None:
    opt = offline_optimum([req(0, 0), req(500, 0)], MODEL)
    assert opt.cold_starts == 1 and opt.kept_idle_s == 500


def test_one_request_costs_one_cold_start_and_its_service() -> None:
    opt = offline_optimum([req(0, 2)], MODEL)
    assert opt.cost_usd == pytest.approx(0.5 + 0.002)
    assert offline_optimum([], MODEL).cost_usd == 0


def test_timeout_cost_pays_its_tail_and_every_stopped_gap() -> None:
    requests = [req(0), req(110), req(10120)]
    # T = 60: gap 100 → 0.06 + 0.5; gap 10000 → 0.06 + 0.5; tail 0.06
    expected = 0.5 + 0.03 + (0.06 + 0.5) * 2 + 0.06
    assert timeout_cost(requests, MODEL, 60) == pytest.approx(expected)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 50000), st.floats(0, 300)), min_size=1, max_size=30),
    st.floats(0, 20000),
)
def test_the_optimum_is_never_beaten_by_a_fixed_timeout(
    raw: list[tuple[float, float]], timeout: float
) -> None:
    requests = [Request(a, s) for a, s in raw]
    opt = offline_optimum(requests, MODEL)
    assert opt.cost_usd <= timeout_cost(requests, MODEL, timeout) + 1e-9
    # … and its two parts add up.
    wait = opt.cold_starts * MODEL.wait_per_s * MODEL.boot_wait_s
    assert opt.cost_usd == pytest.approx(opt.dollars + wait)
