"""Cron schedules as Cloud Scheduler reads them: 5 fields, Vixie semantics, a time zone.

Parsing and iteration are cronsim's (names such as ``jan``/``mon``, weekday 7 = Sunday,
day-of-month OR day-of-week when both are restricted, DST). This module adds the dialect's
limits (exactly 5 fields; cronsim's ``L``, ``LW`` and ``#`` extensions refused), errors as
ConfigError naming the expression, and the tick's longest gap, which the caps look ahead by.

Invariants: pure (no clock); ``next_fire`` is strictly after its argument, at a whole
minute, in the given IANA time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .errors import ConfigError

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cron:
    """A 5-field expression that parsed."""

    expr: str


def _sim(expr: str, start: datetime) -> CronSim:
    try:
        sim = CronSim(expr, start)
    except CronSimError as error:
        raise ConfigError(f"cron {expr!r}: {error}") from None
    extension = any(day < 1 for day in sim.days) or any(
        not isinstance(weekday, int) for weekday in sim.weekdays
    )
    if extension:
        raise ConfigError(f"cron {expr!r}: L, LW and # are not Cloud Scheduler cron")
    return sim


def parse(expr: str) -> Cron:
    """Check a 5-field expression; raise ConfigError naming the bad one."""
    if len(expr.split()) != 5:
        raise ConfigError(f"cron {expr!r}: expected 5 fields, got {len(expr.split())}")
    _sim(expr, _EPOCH)
    return Cron(expr)


def next_fire(cron: Cron, after: float, timezone: str = "UTC") -> float:
    """The first whole minute strictly after ``after`` (epoch seconds) at which ``cron`` fires."""
    start = datetime.fromtimestamp(after, UTC).astimezone(ZoneInfo(timezone))
    try:
        return next(_sim(cron.expr, start)).timestamp()
    except StopIteration:
        raise ConfigError(f"cron {cron.expr!r} never fires") from None


def longest_gap_s(cron: Cron) -> float:
    """The longest time between two fires of a schedule that fires every hour of every day
    (the tick's); raise ConfigError for one that skips hours or days."""
    sim = _sim(cron.expr, _EPOCH)
    weekdays = {day % 7 for day in sim.weekdays if isinstance(day, int)}
    full = (
        sim.hours == set(range(24))
        and sim.days == set(range(1, 32))
        and weekdays == set(range(7))
        and sim.months == set(range(1, 13))
    )
    if not full:
        raise ConfigError(f"cron {cron.expr!r}: the tick must fire every hour of every day")
    minutes = sorted(sim.minutes)
    gaps = [b - a for a, b in pairwise(minutes)]
    return 60.0 * max([*gaps, minutes[0] + 60 - minutes[-1]])
