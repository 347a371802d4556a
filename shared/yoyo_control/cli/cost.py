"""``yoyoctl cost``: spend, caps and projections, per pool and in total.

``cost_report`` builds it as a plain dict (the ``--json`` output). What it shows, at
``now`` (the ledger accrued to ``now`` exactly as the next reconcile would charge it —
nothing is written):
- per pool: day and month spend, its caps, the run rate (billed running instances ×
  hourly price), the month-end projection at that rate and at the month's average rate
  so far, and why the pool is paused (its own cap, or the overall cap) and until when;
- in total: the same sums against ``config.caps`` (the caps across pools);
- the kill switch, and whether a budget alert engaged it (``budget_kill``): budget kills
  and caps are separate mechanisms — a cap pauses pools until its period rolls over, a
  budget kill stops everything until an operator lifts the switch.

Invariants: read-only (Store.get_pool/get_kill only); every number is JSON-serialisable;
a pool never written yet reports zeros; money is rounded to 1/10000 of the currency.
"""

from __future__ import annotations

import time
from typing import Any

from ..config import Config
from ..domain import spend
from ..domain.codec import from_doc
from ..domain.killswitch import banner
from ..domain.ledger import Cap, CapPeriod, period_keys, pool_cap_reached
from ..domain.model import KillSource, KillSwitch, Ledger
from ..ports import Store
from .context import Commands, Ctx


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _until(cap: Cap | None, bounds: tuple[float, float, float, float]) -> float | None:
    if cap is None:
        return None
    return bounds[1] if cap.period == CapPeriod.DAY else bounds[3]


def _projections(
    month_usd: float, rate: float, now: float, timezone: str
) -> dict[str, float | None]:
    """Month-end spend at the current run rate, and at the month's average so far."""
    return {
        "projected_month_usd": _money(spend.projected_month_end(month_usd, rate, now, timezone)),
        "projected_month_usd_at_average": _money(
            spend.projected_at_average(month_usd, now, timezone)
        ),
    }


def _why(cap: Cap | None) -> str | None:
    return cap.reason if cap is not None else None


def cost_report(store: Store, config: Config, now: float) -> dict[str, Any]:
    timezone = config.timezone
    bounds = spend.period_bounds(now, timezone)
    day, month = period_keys(now, timezone)
    pools: dict[str, Any] = {}
    day_total = month_total = rate_total = 0.0
    for name, policy in config.pools.items():
        state = store.get_pool(name)
        ledger = spend.accrued(state, policy, now)
        day_usd = ledger.day_usd if ledger.day == day else 0.0
        month_usd = ledger.month_usd if ledger.month == month else 0.0
        rate = spend.run_rate(state, policy)
        paused = pool_cap_reached(ledger, policy)  # as rule 2 decides it
        pools[name] = {
            "hourly_price_usd": policy.hourly_price_usd,
            "running_instances": spend.billed_running(state),
            "run_rate_usd_per_hour": _money(rate),
            "day_usd": _money(day_usd),
            "month_usd": _money(month_usd),
            "daily_cap_usd": policy.daily_cap_usd,
            "monthly_cap_usd": policy.monthly_cap_usd,
            **_projections(month_usd, rate, now, timezone),
            "paused": _why(paused),
            "paused_until": _until(paused, bounds),
            "paused_recorded": state.paused,
            "accrued_until": ledger.accrued_until,
        }
        day_total += day_usd
        month_total += month_usd
        rate_total += rate
    caps = config.caps
    overall = spend.Spend(day, month, 0.0, 0.0, caps.daily_usd, caps.monthly_usd)
    total_ledger = Ledger(day=day, month=month, day_usd=day_total, month_usd=month_total)
    overall_paused = spend.overall_cap_reached(total_ledger, overall)
    if overall_paused:
        for entry in pools.values():
            entry["paused"] = entry["paused"] or overall_paused.reason
            entry["paused_until"] = entry["paused_until"] or _until(overall_paused, bounds)
    kill = store.get_kill()
    return {
        "at": now,
        "timezone": timezone,
        "day": day,
        "month": month,
        "day_ends_at": bounds[1],
        "month_ends_at": bounds[3],
        "pools": pools,
        "total": {
            "day_usd": _money(day_total),
            "month_usd": _money(month_total),
            "daily_cap_usd": caps.daily_usd,
            "monthly_cap_usd": caps.monthly_usd,
            "run_rate_usd_per_hour": _money(rate_total),
            **_projections(month_total, rate_total, now, timezone),
            "paused": _why(overall_paused),
            "paused_until": _until(overall_paused, bounds),
        },
        "kill_switch": {
            "engaged": kill.engaged,
            "reason": kill.reason,
            "by": kill.by,
            "at": kill.at,
            "budget_kill": kill.engaged and kill.source == KillSource.BUDGET,
        },
    }


def cmd_cost(ctx: Ctx) -> int:
    report = cost_report(ctx.store, ctx.config, time.time())
    lines = []
    for name, pool in report["pools"].items():
        caps = f"caps day {_cap(pool['daily_cap_usd'])} / month {_cap(pool['monthly_cap_usd'])}"
        paused = f"; PAUSED: {pool['paused']}" if pool["paused"] else ""
        lines.append(
            f"pool {name}: today ${pool['day_usd']:.2f}, month ${pool['month_usd']:.2f}, "
            f"run rate ${pool['run_rate_usd_per_hour']:.2f}/h, projected month "
            f"${pool['projected_month_usd']:.2f}; {caps}{paused}"
        )
    total = report["total"]
    lines.append(
        f"total: today ${total['day_usd']:.2f}, month ${total['month_usd']:.2f}, projected "
        f"month ${total['projected_month_usd']:.2f}; caps day {_cap(total['daily_cap_usd'])}"
        f" / month {_cap(total['monthly_cap_usd'])}"
        + (f"; PAUSED: {total['paused']}" if total["paused"] else "")
    )
    kill = report["kill_switch"]
    if kill["engaged"]:
        lines.append(banner(from_doc(KillSwitch, kill)))
    ctx.out(report, "\n".join(lines), "yoyoctl status")
    return 0


def _cap(value: float | None) -> str:
    return "none" if value is None else f"${value:.2f}"


def register(commands: Commands) -> None:
    commands.add("cost", cmd_cost, "spend today and this month, caps, projected month-end spend")
