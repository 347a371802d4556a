"""Budget notifications → kill or no-op (pure). DESIGN.md §4.

Invariants: only configured budget ids act; ``cost >= amount × kill_fraction`` kills
for every amount (a zero budget too); a kill reason reads
``budget: <cost> of <budget> <currency>``; routine updates below every threshold are
no-ops; forecasts kill only when forecast_kill is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import BudgetNotified
from .model import BUDGET_KILL


@dataclass(frozen=True)
class BudgetRules:
    budget_ids: tuple[str, ...]
    kill_fraction: float = 1.0
    kill_thresholds: tuple[float, ...] = (1.0,)
    forecast_kill: bool = False


def is_ours(fact: BudgetNotified, rules: BudgetRules) -> bool:
    return fact.budget_id in rules.budget_ids


def kill_reason(fact: BudgetNotified, rules: BudgetRules) -> str | None:
    """Why this notification engages the kill switch, or None for a no-op."""
    spend = f"{BUDGET_KILL} {fact.cost:.2f} of {fact.amount:.2f} {fact.currency}".rstrip()
    if fact.cost >= fact.amount * rules.kill_fraction:  # a zero budget kills too
        return spend
    if fact.alert_threshold is not None and any(
        fact.alert_threshold >= t for t in rules.kill_thresholds
    ):
        return f"{spend} (threshold {fact.alert_threshold:g} crossed)"
    if (
        rules.forecast_kill
        and fact.forecast_threshold is not None
        and any(fact.forecast_threshold >= t for t in rules.kill_thresholds)
    ):
        return f"{spend} (forecast threshold {fact.forecast_threshold:g} crossed)"
    return None
