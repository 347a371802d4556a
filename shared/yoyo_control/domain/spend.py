"""Spend across pools (pure): the overall caps of ``config.caps`` and cost projections.

Each pool's ledger (ledger.py) lives on its own document. The overall caps need the sum
over every pool, so the service reads the OTHER pools' documents before a reconcile
(outside its transaction: pools never contend) and hands decide() a ``Spend``: those
pools' spend accrued to ``now`` plus the caps. decide() adds the pool's own, freshly
accrued ledger and pauses the pool when a total reaches a cap (rule 2).

Invariants:
- A ledger counts toward a period's total only if it belongs to that period (an idle
  pool's document from yesterday adds nothing to today);
- ``accrued`` never writes anything: other pools' spend is projected to ``now`` from
  their observed running instances exactly as their own reconcile would charge it;
- with no overall cap configured the check is a no-op (``Spend()``), so a single-pool
  deployment reads nothing extra;
- overrun past an overall cap is bounded by one tick of every pool's running price
  (each pool stops at its own next reconcile).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from .ledger import Cap, CapPeriod, accrue, period_keys
from .model import BILLED_STATUSES, Ledger, PoolPolicy, PoolState


@dataclass(frozen=True)
class Spend:
    """What the other pools have spent in the current periods, and the overall caps."""

    day: str = ""
    month: str = ""
    day_usd: float = 0.0
    month_usd: float = 0.0
    daily_cap_usd: float | None = None
    monthly_cap_usd: float | None = None

    @property
    def capped(self) -> bool:
        return self.daily_cap_usd is not None or self.monthly_cap_usd is not None


NO_SPEND = Spend()


def accrued(state: PoolState, policy: PoolPolicy, now: float) -> Ledger:
    """The pool's ledger as its next reconcile at ``now`` would charge it (nothing saved)."""
    return accrue(state.ledger, state.instances.values(), policy.prices, now, policy.timezone)


def others(
    pools: Iterable[tuple[PoolState, PoolPolicy]],
    now: float,
    timezone: str,
    daily_cap_usd: float | None,
    monthly_cap_usd: float | None,
) -> Spend:
    """The summed current-period spend of ``pools`` (every pool but the one deciding)."""
    day, month = period_keys(now, timezone)
    day_usd = month_usd = 0.0
    for state, policy in pools:
        ledger = accrued(state, policy, now)
        day_usd += ledger.day_usd if ledger.day == day else 0.0
        month_usd += ledger.month_usd if ledger.month == month else 0.0
    return Spend(day, month, day_usd, month_usd, daily_cap_usd, monthly_cap_usd)


def overall_cap_reached(own: Ledger, spend: Spend) -> Cap | None:
    """The overall cap that pauses every pool, or None. ``own`` is already accrued."""
    if not spend.capped:
        return None
    day_total = own.day_usd + (spend.day_usd if spend.day == own.day else 0.0)
    month_total = own.month_usd + (spend.month_usd if spend.month == own.month else 0.0)
    cap = spend.daily_cap_usd
    if cap is not None and day_total >= cap:
        why = f"overall daily cap {cap:.2f} reached ({day_total:.2f} across pools on {own.day})"
        return Cap(CapPeriod.DAY, why)
    cap = spend.monthly_cap_usd
    if cap is not None and month_total >= cap:
        why = (
            f"overall monthly cap {cap:.2f} reached ({month_total:.2f} across pools in {own.month})"
        )
        return Cap(CapPeriod.MONTH, why)
    return None


# --- projections (yoyoctl cost) --------------------------------------------------------


def billed_running(state: PoolState) -> int:
    """Instances the ledger is charging for right now."""
    return sum(
        1
        for i in state.instances.values()
        if i.observed in BILLED_STATUSES and i.running_since is not None
    )


def run_rate(state: PoolState, policy: PoolPolicy) -> float:
    """Spend per hour right now: each billed running instance at its own hourly price."""
    prices = policy.prices
    return sum(
        prices.get(i.name, policy.top_price)
        for i in state.instances.values()
        if i.observed in BILLED_STATUSES and i.running_since is not None
    )


def period_bounds(now: float, timezone: str) -> tuple[float, float, float, float]:
    """(day start, day end, month start, month end) around ``now``, local calendar."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    day_start = datetime(local.year, local.month, local.day, tzinfo=zone)
    next_day = datetime.fromordinal(day_start.toordinal() + 1)
    day_end = datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
    month_start = datetime(local.year, local.month, 1, tzinfo=zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    month_end = datetime(year, month, 1, tzinfo=zone)
    return (
        day_start.timestamp(),
        day_end.timestamp(),
        month_start.timestamp(),
        month_end.timestamp(),
    )


def projected_month_end(month_usd: float, rate_per_hour: float, now: float, tz: str) -> float:
    """Month-to-date spend plus the current run rate until the month ends."""
    month_end = period_bounds(now, tz)[3]
    return month_usd + rate_per_hour * max(0.0, month_end - now) / 3600.0


def projected_at_average(month_usd: float, now: float, tz: str) -> float:
    """Month-to-date spend scaled to the whole month (the average rate so far)."""
    _, _, start, end = period_bounds(now, tz)
    elapsed = max(1.0, now - start)
    return month_usd * (end - start) / elapsed
