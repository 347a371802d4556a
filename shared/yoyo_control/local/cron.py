"""A 5-field cron matcher (minute hour day-of-month month day-of-week), as Cloud Scheduler reads it.

Invariants: pure (no clock); fields accept ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``,
``N/S`` and comma lists, month and weekday names (``jan``, ``mon``); weekday 0 and 7 are
Sunday; when both day-of-month and day-of-week are restricted a day matches if EITHER
does (Vixie cron semantics, which Cloud Scheduler follows). ``next_fire`` is strictly
after its argument, at a whole minute, in the given IANA time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from ..errors import ConfigError

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS = (  # name, low, high, names
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)


@dataclass(frozen=True)
class Cron:
    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches(self, when: datetime) -> bool:
        """True when the minute of ``when`` (already in the schedule's zone) fires."""
        return when.minute in self.minutes and when.hour in self.hours and self.day_ok(when)

    def day_ok(self, when: datetime) -> bool:
        """True when the calendar day of ``when`` is one the schedule fires on."""
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return weekday_ok
        if self.any_weekday:
            return day_ok
        return day_ok or weekday_ok


def _value(text: str, low: int, high: int, names: tuple[str, ...], where: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (1 if low == 1 else 0)
    if not text.isdigit():
        raise ConfigError(f"cron {where}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(f"cron {where}: {value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, names: tuple[str, ...], where: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ConfigError(f"cron {where}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start = _value(a, low, high, names, where)
            end = _value(b, low, high, names, where)
            if start > end:
                raise ConfigError(f"cron {where}: range {base!r} runs backwards")
        else:
            start = _value(base, low, high, names, where)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return values


def parse(expr: str) -> Cron:
    """Parse a 5-field expression; raise ConfigError naming the bad field."""
    parts = expr.split()
    if len(parts) != 5:
        raise ConfigError(f"cron {expr!r}: expected 5 fields, got {len(parts)}")
    sets = [
        _field(text, low, high, names, f"{expr!r} {name}")
        for text, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = {d % 7 for d in sets[4]}
    return Cron(
        expr=expr,
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=frozenset(weekdays),
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )


def longest_gap_s(cron: Cron) -> float:
    """The longest time between two fires of a schedule that fires every hour of every day
    (the tick's); raise ConfigError for one that skips hours or days."""
    full = (
        cron.hours == frozenset(range(24))
        and cron.any_day
        and cron.any_weekday
        and cron.months == frozenset(range(1, 13))
    )
    if not full or not cron.minutes:
        raise ConfigError(f"cron {cron.expr!r}: the tick must fire every hour of every day")
    minutes = sorted(cron.minutes)
    gaps = [b - a for a, b in pairwise(minutes)]
    return 60.0 * max([*gaps, minutes[0] + 60 - minutes[-1]])


def next_fire(cron: Cron, after: float, timezone: str = "UTC") -> float:
    """The first whole minute strictly after ``after`` (epoch seconds) at which ``cron`` fires."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(after, UTC).astimezone(zone)
    candidate = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    # Walk minute by minute in UTC (DST-safe), skipping whole days/hours that cannot match.
    utc = candidate.astimezone(UTC)
    for _ in range(366 * 24 * 60 * 5):
        here = utc.astimezone(zone)
        if not cron.day_ok(here):
            nxt = (here + timedelta(days=1)).replace(hour=0, minute=0)
            utc = max(utc + timedelta(minutes=1), nxt.astimezone(UTC))
            continue
        if here.hour not in cron.hours:
            utc += timedelta(minutes=60 - here.minute)
            continue
        if cron.matches(here):
            return utc.timestamp()
        utc += timedelta(minutes=1)
    raise ConfigError(f"cron {cron.expr!r} never fires")


def due(cron: Cron, last: float, now: float, timezone: str = "UTC") -> bool:
    """True when the schedule fired in (last, now]."""
    return next_fire(cron, last, timezone) <= now
