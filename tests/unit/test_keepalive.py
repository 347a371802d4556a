"""Keep-alive policies (domain/keepalive.py): the cost model, histogram and timeouts."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoyo_control.domain import keepalive as ka

PRICE = 3.6  # 0.001 per second
COLD = 0.5  # a cold start is worth 500 idle seconds


def hist_of(gaps: list[float]) -> ka.GapHistogram:
    h = ka.GapHistogram()
    for g in gaps:
        h = ka.record_gap(h, g)
    return h


def test_cold_start_cost_bills_the_boot_and_values_the_wait() -> None:
    assert ka.cold_start_cost(100, PRICE, 0) == pytest.approx(0.1)
    assert ka.cold_start_cost(100, PRICE, 4) == pytest.approx(0.5)


def test_gap_cost_and_the_offline_optimum() -> None:
    assert ka.gap_cost(300, 600, PRICE, COLD) == pytest.approx(0.3)  # stayed on
    assert ka.gap_cost(900, 600, PRICE, COLD) == pytest.approx(0.6 + 0.5)  # stopped at 600
    assert ka.optimal_gap_cost(300, PRICE, COLD) == pytest.approx(0.3)
    assert ka.optimal_gap_cost(900, PRICE, COLD) == pytest.approx(0.5)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e6), st.floats(1, 1e5))
def test_break_even_is_never_worse_than_twice_the_optimum(gap: float, cold_s: float) -> None:
    cold = cold_s * PRICE / 3600
    t = ka.break_even(PRICE, cold, 0, math.inf)
    assert t == pytest.approx(cold_s)
    assert ka.gap_cost(gap, t, PRICE, cold) <= 2 * ka.optimal_gap_cost(gap, PRICE, cold) + 1e-9


def test_break_even_is_clamped_and_free_idling_never_stops() -> None:
    assert ka.break_even(PRICE, COLD, 60, 300) == 300
    assert ka.break_even(PRICE, 0.01, 60, 300) == 60
    assert ka.break_even(0.0, COLD, 60, 300) == 300


def test_bins_cover_every_gap() -> None:
    assert ka.bin_of(0) == 0 and ka.bin_of(29.9) == 0 and ka.bin_of(30) == 1
    assert ka.bin_of(10**7) == len(ka.EDGES) - 1


def test_record_gap_counts_and_decays_without_mutating() -> None:
    empty = ka.GapHistogram()
    one = ka.record_gap(empty, 45)
    assert empty == ka.GapHistogram() and one.seen == 1 and one.total() == 1
    two = ka.record_gap(one, 45, memory=2)
    b = ka.bin_of(45)
    assert two.weights[b] == pytest.approx(1.5) and two.sums[b] == pytest.approx(67.5)
    assert ka.record_gap(one, float("nan")) is one and ka.record_gap(one, -1) is one


def test_a_histogram_stays_bounded_however_many_gaps() -> None:
    h = hist_of([float(g % 5000) for g in range(5000)])
    assert len(h.weights) == len(ka.EDGES) and h.seen == 5000
    assert h.total() <= ka.MEMORY + 1e-6  # decayed weights sum to at most the memory


def test_histogram_timeout_keeps_short_gaps_warm_and_stops_at_once_for_long_ones() -> None:
    short = hist_of([40, 50, 70, 80, 100] * 4)  # all < 120 s, far below break-even 500 s
    assert ka.histogram_timeout(short, PRICE, COLD, 60, 1800) == 120
    long = hist_of([3600, 7200, 10800] * 3)
    assert ka.histogram_timeout(long, PRICE, COLD, 60, 1800) == 60


def test_histogram_timeout_falls_back_until_enough_gaps_were_seen() -> None:
    few = hist_of([7200])
    assert ka.histogram_timeout(few, PRICE, COLD, 60, 1800, min_samples=3) == 500  # break-even
    assert ka.histogram_timeout(few, PRICE, COLD, 60, 1800, min_samples=1) == 60
    # With a reference, a pool without history behaves exactly like the reference.
    empty = ka.GapHistogram()
    assert ka.histogram_timeout(empty, PRICE, COLD, 60, 1800, reference_s=600) == 600


def test_the_reference_forbids_cold_starts_the_reference_would_not_have() -> None:
    # Mostly long gaps (stop at once is cheapest) but one 10-minute gap: a 15-minute
    # reference keeps that one warm, so the adaptive timeout must too.
    h = hist_of([7200] * 10 + [600])
    assert ka.histogram_timeout(h, PRICE, COLD, 60, 1800) == 60
    assert ka.histogram_timeout(h, PRICE, COLD, 60, 1800, reference_s=900) == 900
    # Without gaps between 60 s and the reference, stopping early costs no cold start.
    h = hist_of([7200] * 10 + [40])
    assert ka.histogram_timeout(h, PRICE, COLD, 60, 1800, reference_s=900) == 60


def test_the_margin_keeps_room_above_the_longest_warm_gap() -> None:
    h = hist_of([7200] * 10 + [100])  # 100 s sits in the bin [90, 120)
    assert ka.histogram_timeout(h, PRICE, COLD, 60, 1800, reference_s=900) == 120
    assert ka.histogram_timeout(h, PRICE, COLD, 60, 1800, reference_s=900, margin=2) == 240


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 200000), min_size=1, max_size=40),
    st.floats(30, 600),
    st.floats(600, 20000),
    st.sampled_from([None, 300.0, 900.0]),
)
def test_histogram_timeout_stays_within_bounds(
    gaps: list[float], low: float, high: float, reference: float | None
) -> None:
    t = ka.histogram_timeout(hist_of(gaps), PRICE, COLD, low, high, reference_s=reference)
    assert low <= t <= high


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 20000), min_size=3, max_size=40))
def test_the_chosen_timeout_is_no_worse_on_its_history_than_any_candidate(
    gaps: list[float],
) -> None:
    h = hist_of(gaps)
    t = ka.histogram_timeout(h, PRICE, COLD, 60, 3600)
    best = ka.expected_cost(h, t, PRICE, COLD)
    for c in [60, 3600, *(e for e in ka.EDGES if 60 < e < 3600)]:
        assert best <= ka.expected_cost(h, c, PRICE, COLD) + 1e-9


def test_window_timeout_follows_local_time_and_wraps_midnight() -> None:
    tz = "Europe/Paris"
    nine = 9 * 3600.0
    seven_pm = 19 * 3600.0
    noon = datetime(2027, 3, 10, 12, tzinfo=ZoneInfo(tz)).timestamp()
    assert ka.seconds_of_day(noon, tz) == 12 * 3600
    assert ka.window_timeout(noon, tz, nine, seven_pm, 1e9, 300) == 1e9
    assert ka.window_timeout(noon + 8 * 3600, tz, nine, seven_pm, 1e9, 300) == 300
    assert ka.in_window(23 * 3600, 22 * 3600, 6 * 3600)
    assert ka.in_window(3 * 3600, 22 * 3600, 6 * 3600)
    assert not ka.in_window(12 * 3600, 22 * 3600, 6 * 3600)


def test_idle_timeout_dispatches_on_the_configured_kind() -> None:
    h = hist_of([7200] * 5)
    fixed = ka.KeepAlive(kind="fixed", idle_timeout_s=600)
    assert ka.idle_timeout(fixed, PRICE, h) == 600
    even = ka.KeepAlive(kind="break-even", idle_timeout_s=1800, boot_s=100, wait_weight=4)
    assert ka.idle_timeout(even, PRICE, h) == pytest.approx(500)
    adaptive = ka.KeepAlive(kind="adaptive", idle_timeout_s=1800, reference_s=900, margin=2)
    assert ka.idle_timeout(adaptive, PRICE, h) == 30  # only long gaps: the floor
    assert set(ka.KINDS) == {"fixed", "break-even", "adaptive"}


def test_the_default_keepalive_only_ever_shortens_the_configured_timeout() -> None:
    # bench/RESULTS.md (issue 18): keeping a VM idle past the 15-minute reference cost more
    # on the bursty benchmark than the cold starts it saved, so the default never does.
    from yoyo_control.domain.decide import idle_timeout
    from yoyo_control.domain.model import PoolPolicy, PoolState

    # A 300 s boot: idling up to 30 min is cheaper than a cold start (break-even 1800 s).
    policy = PoolPolicy(pool="p", hourly_price_usd=PRICE, boot_s=300.0)
    for gaps in ([1000.0] * 20, [1000.0, 20.0] * 10, [100.0] * 20, [7200.0] * 20):
        timeout = idle_timeout(policy, PoolState(pool="p", idle_gaps=hist_of(gaps)))
        assert ka.KeepAlive.min_s <= timeout <= policy.idle_timeout_s
    # Gaps of ~17 minutes: the histogram alone would keep them warm, the default does not.
    longer = ka.KeepAlive(
        kind="adaptive", idle_timeout_s=1800, boot_s=300, reference_s=900, margin=2
    )
    assert ka.idle_timeout(longer, PRICE, hist_of([1000.0] * 20)) > 900
