"""The 5-field cron schedules (Cloud Scheduler's dialect, Vixie semantics, a time zone)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from yoyo_control.errors import ConfigError
from yoyo_control.schedule import longest_gap_s, next_fire, parse


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("* * * * *", "2027-01-15 08:00:30", "2027-01-15 08:01"),
        ("* * * * *", "2027-01-15 08:00:00", "2027-01-15 08:01"),  # strictly after
        ("0 2 * * *", "2027-01-15 08:00:00", "2027-01-16 02:00"),
        ("*/15 9-17 * * mon-fri", "2027-01-15 17:50:00", "2027-01-18 09:00"),  # Fri → Mon
        ("30 4 1,15 * *", "2027-01-15 05:00:00", "2027-02-01 04:30"),
        ("0 0 29 2 *", "2027-01-01 00:00:00", "2028-02-29 00:00"),  # leap day
        ("0 12 * jan,jul sun", "2027-01-15 00:00:00", "2027-01-17 12:00"),
        ("0 0 * * 7", "2027-01-15 00:00:00", "2027-01-17 00:00"),  # 7 is Sunday too
        ("0 0 13 * 5", "2027-01-15 08:00:00", "2027-01-22 00:00"),  # day OR weekday
        ("5-10/5 * * * *", "2027-01-15 08:06:00", "2027-01-15 08:10"),
    ],
)
def test_next_fire(expr: str, after: str, expected: str) -> None:
    assert iso(next_fire(parse(expr), at(after))) == expected


def test_time_zone_is_the_schedules_own() -> None:
    # 02:00 in Paris (UTC+1 in January) is 01:00 UTC.
    fire = next_fire(parse("0 2 * * *"), at("2027-01-15 08:00:00"), "Europe/Paris")
    assert iso(fire) == "2027-01-16 01:00"


def test_daylight_saving_fires_a_skipped_time_once_and_a_repeated_time_once() -> None:
    # Paris 2027-03-28: 02:00 → 03:00 (02:30 does not exist): fired at 03:00 CEST (01:00 UTC).
    paris = "Europe/Paris"
    fire = next_fire(parse("30 2 * * *"), at("2027-03-27 12:00:00"), paris)
    assert iso(fire) == "2027-03-28 01:00"
    # 2027-10-31: 03:00 → 02:00 (02:30 happens twice): fired at the first only, then next day.
    first = next_fire(parse("30 2 * * *"), at("2027-10-30 12:00:00"), paris)
    assert iso(first) == "2027-10-31 00:30"
    assert iso(next_fire(parse("30 2 * * *"), first, paris)) == "2027-11-01 01:30"


@pytest.mark.parametrize(
    "expr",
    [
        "* * * *",
        "0 * * * * *",  # a seconds field: not Cloud Scheduler's
        "60 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "x * * * *",
        "0 0 L * *",
        "0 0 * * 5#2",
    ],
)
def test_bad_expressions_are_config_errors(expr: str) -> None:
    with pytest.raises(ConfigError, match="cron"):
        parse(expr)


@pytest.mark.parametrize(
    ("expr", "gap_s"),
    [
        ("* * * * *", 60),
        ("*/5 * * * *", 300),
        ("0,10 * * * *", 3000),  # :10 → next hour's :00
        ("7 * * * *", 3600),
    ],
)
def test_the_longest_gap_of_a_tick_schedule(expr: str, gap_s: float) -> None:
    assert longest_gap_s(parse(expr)) == gap_s


@pytest.mark.parametrize("expr", ["* 9-17 * * *", "* * * * mon-fri", "* * 1 * *", "* * * 1-6 *"])
def test_a_tick_schedule_that_skips_hours_or_days_is_refused(expr: str) -> None:
    with pytest.raises(ConfigError, match="every hour of every day"):
        longest_gap_s(parse(expr))
