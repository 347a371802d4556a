"""Spend across pools (domain/spend.py): the overall caps' arithmetic and projections."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from yoyo_control.domain import spend
from yoyo_control.domain.ledger import Cap, CapPeriod, cap_reached
from yoyo_control.domain.model import Desired, Instance, Ledger, PoolPolicy, PoolState

PRICE = 3.6


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: str = "UTC") -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp()


def pool(name: str, ledger: Ledger, running_since: float | None = None) -> PoolState:
    instances = {}
    if running_since is not None:
        instances["vm"] = Instance("vm", Desired.RUNNING, "RUNNING", running_since, running_since)
    return PoolState(pool=name, ledger=ledger, instances=instances)


def policy(name: str) -> PoolPolicy:
    return PoolPolicy(pool=name, instances=("vm",), hourly_price_usd=PRICE)


TODAY = Ledger(day="2027-03-10", month="2027-03", day_usd=2.0, month_usd=20.0)
NOW = at(2027, 3, 10, 12)


def test_others_sum_only_the_current_periods() -> None:
    yesterday = Ledger(day="2027-03-09", month="2027-03", day_usd=9.0, month_usd=9.0)
    last_month = Ledger(day="2027-02-28", month="2027-02", day_usd=7.0, month_usd=70.0)
    pools = [(pool("a", TODAY), policy("a")), (pool("b", yesterday), policy("b"))]
    pools.append((pool("c", last_month), policy("c")))
    total = spend.others(pools, NOW, "UTC", 10.0, 100.0)
    assert (total.day, total.month) == ("2027-03-10", "2027-03")
    assert total.day_usd == pytest.approx(2.0)
    assert total.month_usd == pytest.approx(29.0)
    assert (total.daily_cap_usd, total.monthly_cap_usd) == (10.0, 100.0)


def test_others_are_accrued_to_now_from_their_running_instances() -> None:
    ledger = Ledger(day="2027-03-10", month="2027-03", accrued_until=NOW - 600)
    total = spend.others([(pool("a", ledger, NOW - 3600), policy("a"))], NOW, "UTC", 1, None)
    assert total.day_usd == pytest.approx(0.6)  # the 600 s since its last accrual


def test_no_overall_cap_is_never_reached() -> None:
    huge = Ledger(day="2027-03-10", month="2027-03", day_usd=1e9, month_usd=1e9)
    assert spend.overall_cap_reached(huge, spend.NO_SPEND) is None
    assert not spend.NO_SPEND.capped


def test_the_overall_daily_cap_counts_this_pool_and_the_others() -> None:
    others = spend.Spend("2027-03-10", "2027-03", 2.9, 29.0, daily_cap_usd=5.0)
    assert spend.overall_cap_reached(TODAY, others) is None  # 2 + 2.9 < 5
    own = Ledger(day="2027-03-10", month="2027-03", day_usd=2.1, month_usd=21.0)
    reason = spend.overall_cap_reached(own, others)  # reaching the cap counts, like rule 2
    assert reason is not None and reason.period == CapPeriod.DAY
    assert reason.reason == "overall daily cap 5.00 reached (5.00 across pools on 2027-03-10)"


def test_the_overall_monthly_cap() -> None:
    others = spend.Spend("2027-03-10", "2027-03", 0.0, 80.0, monthly_cap_usd=100.0)
    assert spend.overall_cap_reached(TODAY, others) == Cap(
        CapPeriod.MONTH, "overall monthly cap 100.00 reached (100.00 across pools in 2027-03)"
    )


def test_others_from_another_period_than_this_pools_fresh_ledger_do_not_count() -> None:
    """Just after midnight the others' sums (taken before) may still be yesterday's."""
    others = spend.Spend("2027-03-09", "2027-03", 100.0, 100.0, daily_cap_usd=5.0)
    assert spend.overall_cap_reached(TODAY, others) is None


def test_pool_and_overall_caps_compose_as_rule_2_would() -> None:
    """The proposed decide(): paused = own caps or the overall caps."""
    pol = PoolPolicy(pool="a", daily_cap_usd=50.0)
    others = spend.Spend("2027-03-10", "2027-03", 4.0, 4.0, daily_cap_usd=5.0)
    paused = cap_reached(TODAY, pol.daily_cap_usd, pol.monthly_cap_usd) or (
        spend.overall_cap_reached(TODAY, others)
    )
    assert paused and paused.reason.startswith("overall daily cap")


def test_run_rate_counts_billed_running_instances() -> None:
    state = pool("a", TODAY, NOW - 60)
    assert spend.billed_running(state) == 1
    assert spend.run_rate(state, policy("a")) == PRICE
    assert spend.run_rate(pool("a", TODAY), policy("a")) == 0


@pytest.mark.parametrize(
    ("tz", "day", "day_hours", "month_days"),
    [
        ("UTC", (2027, 3, 14), 24, 31),
        ("America/New_York", (2027, 3, 14), 23, 31),
        ("America/New_York", (2027, 11, 7), 25, 30),
        ("Europe/Berlin", (2027, 2, 10), 24, 28),
        ("Asia/Kolkata", (2028, 2, 29), 24, 29),
    ],
)
def test_period_bounds_are_local_calendar_periods(
    tz: str, day: tuple[int, int, int], day_hours: int, month_days: int
) -> None:
    now = at(*day, 12, 0, tz)
    day_start, day_end, month_start, month_end = spend.period_bounds(now, tz)
    assert day_start == at(*day, 0, 0, tz)
    assert day_end - day_start == day_hours * 3600
    assert month_start == at(day[0], day[1], 1, 0, 0, tz)
    assert round((month_end - month_start) / 86400) == month_days
    assert day_start <= now < day_end and month_start <= now < month_end


def test_december_ends_at_new_year() -> None:
    assert spend.period_bounds(at(2027, 12, 31, 23), "UTC")[3] == at(2028, 1, 1)


def test_month_end_projection_at_the_current_rate() -> None:
    now = at(2027, 3, 31, 12)  # 12 hours left in March
    assert spend.projected_month_end(10.0, 2.0, now, "UTC") == pytest.approx(34.0)
    assert spend.projected_month_end(10.0, 0.0, now, "UTC") == pytest.approx(10.0)


def test_month_end_projection_at_the_average_rate_so_far() -> None:
    now = at(2027, 4, 16)  # exactly half of April
    assert spend.projected_at_average(15.0, now, "UTC") == pytest.approx(30.0)
