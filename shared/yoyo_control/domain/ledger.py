"""Real-time spend ledger: observed running time × configured hourly price.

Invariants: pure; periods (day, month) are calendar periods in the pool's time zone;
an interval that crosses a period boundary is split so that each period is charged
only for its own part; a ledger with nothing running is returned unchanged except for
a period roll-over, so an idle pool causes no store writes; time never runs backwards
for a ledger (a ``now`` older than ``accrued_until`` — a transaction that read its clock
before another committed — charges nothing, and periods only roll forward).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from .model import BILLED_STATUSES, Instance, Ledger, PoolPolicy


class CapPeriod(StrEnum):
    DAY = "daily"
    MONTH = "monthly"


@dataclass(frozen=True)
class Cap:
    """A spend cap reached: the period it bounds (a pause lifts when that period rolls
    over) and why, in words (``PoolState.paused``)."""

    period: CapPeriod
    reason: str


def period_keys(now: float, timezone: str) -> tuple[str, str]:
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")


def _day_start(now: float, timezone: str) -> float:
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(timezone))
    midnight = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(timezone))
    return midnight.timestamp()


def _month_start(now: float, timezone: str) -> float:
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(timezone))
    return datetime(local.year, local.month, 1, tzinfo=ZoneInfo(timezone)).timestamp()


def billed_seconds(instances: Iterable[Instance], start: float, end: float) -> float:
    """Instance-seconds billed in [start, end) given when each instance began running."""
    total = 0.0
    for inst in instances:
        if inst.observed in BILLED_STATUSES and inst.running_since is not None:
            total += max(0.0, end - max(start, inst.running_since))
    return total


def _cost(
    instances: Iterable[Instance], prices: float | Mapping[str, float], start: float, end: float
) -> float:
    """Dollars billed in [start, end): each instance at its own hourly price (a plain
    number prices every instance alike; an instance without a price is charged the
    highest one, so an unknown instance never looks cheap)."""
    if not isinstance(prices, Mapping):
        return billed_seconds(instances, start, end) * prices / 3600.0
    top = max(prices.values(), default=0.0)
    return sum(
        billed_seconds([i], start, end) * prices.get(i.name, top) / 3600.0 for i in instances
    )


def accrue(
    ledger: Ledger,
    instances: Iterable[Instance],
    hourly_price: float | Mapping[str, float],
    now: float,
    timezone: str,
) -> Ledger:
    if ledger.accrued_until is not None and now < ledger.accrued_until:
        now = ledger.accrued_until  # an older clock: nothing to charge, nothing to reset
    day, month = period_keys(now, timezone)
    if day > ledger.day:  # ISO keys sort as dates: a period only ever rolls forward
        ledger = replace(ledger, day=day, day_usd=0.0)
    if month > ledger.month:
        ledger = replace(ledger, month=month, month_usd=0.0)
    running = [i for i in instances if i.observed in BILLED_STATUSES and i.running_since]
    if not running:
        return replace(ledger, accrued_until=None) if ledger.accrued_until else ledger
    # Never accrued since these started: charge from each one's running_since.
    start = min(ledger.accrued_until if ledger.accrued_until is not None else 0.0, now)
    day_cost = _cost(running, hourly_price, max(start, _day_start(now, timezone)), now)
    month_cost = _cost(running, hourly_price, max(start, _month_start(now, timezone)), now)
    return replace(
        ledger,
        day_usd=ledger.day_usd + day_cost,
        month_usd=ledger.month_usd + month_cost,
        accrued_until=now,
    )


def cap_reached(
    ledger: Ledger, daily_cap: float | None, monthly_cap: float | None, ahead: float = 0.0
) -> Cap | None:
    """The cap that stops spend, or None. ``ahead``: what will be spent before the next
    look that a pause now would not save anyway (it is counted as already spent)."""
    if daily_cap is not None and ledger.day_usd + ahead >= daily_cap:
        why = f"daily cap {daily_cap:.2f} reached ({ledger.day_usd:.2f} on {ledger.day})"
        return Cap(CapPeriod.DAY, why)
    if monthly_cap is not None and ledger.month_usd + ahead >= monthly_cap:
        why = f"monthly cap {monthly_cap:.2f} reached ({ledger.month_usd:.2f} in {ledger.month})"
        return Cap(CapPeriod.MONTH, why)
    return None


def pool_cap_reached(ledger: Ledger, policy: PoolPolicy) -> Cap | None:
    """Why the pool's own caps pause it now (rule 2), or None. Until the next tick every
    instance of the pool may spend: it pauses early enough that a cap is overrun by at
    most one tick of ONE instance (DESIGN.md §4), however many run."""
    ahead = policy.top_price / 3600.0 * policy.tick_s * max(0, policy.max_instances - 1)
    return cap_reached(ledger, policy.daily_cap_usd, policy.monthly_cap_usd, ahead)


def next_period_start(now: float, timezone: str) -> float:
    """When the day containing ``now`` ends (a daily pause lifts)."""
    return _day_start(_day_start(now, timezone) + timedelta(hours=26).total_seconds(), timezone)
