"""The action protocol (pure): how a lifecycle action is settled — by its outcome
(domain/outcomes.py) or by observing its effect.

Invariants:
- In flight (``outcome`` None) or awaiting a retry (``OutcomeKind.RETRY``): pending.
  Anything else is settled: its request id is spent and never re-sent; the next need
  issues a new action under a new epoch.
- A start is settled by observation when the VM is seen RUNNING after it was issued, a
  stop when the VM is seen stopped.
"""

from __future__ import annotations

from dataclasses import replace

from .model import STOPPED_STATUSES, ActionKind, ActionRecord, OutcomeKind

DONE = (OutcomeKind.DONE, OutcomeKind.OBSERVED)  # an outcome recorded, or the effect observed


def pending(record: ActionRecord | None) -> bool:
    """In flight, or awaiting a retry: not settled yet."""
    return record is not None and record.outcome in (None, OutcomeKind.RETRY)


def done(record: ActionRecord | None) -> bool:
    return record is not None and record.outcome in DONE


def supersede(record: ActionRecord | None, why: str) -> ActionRecord | None:
    """A done action that a restart (``why``: its rule) now follows: spent, so the same
    observation does not restart the instance twice."""
    if not done(record):
        return record
    assert record is not None
    return replace(record, outcome=OutcomeKind.SUPERSEDED, detail=why)


def unanswered_start(record: ActionRecord | None, at: float) -> float:
    """When an unanswered start was sent (its answer lost: the VM may have run since then,
    so the ledger and the caps charge it from then), else ``at``."""
    if record is None or record.kind != ActionKind.START or record.issued_at >= at:
        return at
    return record.issued_at if pending(record) else at


def settle_observed(record: ActionRecord | None, status: str, at: float) -> ActionRecord | None:
    """An unfinished action whose effect is observed after it was issued is done: its
    request id is spent, and must never be re-sent for a later, different need."""
    if record is None or at <= record.issued_at or not pending(record):
        return record
    # A start is done when the VM runs, not while it sits in PROVISIONING/STAGING: an
    # operation stuck there must keep counting attempts (decide re-sends it, bounded).
    reached = status in (("RUNNING",) if record.kind == ActionKind.START else STOPPED_STATUSES)
    return replace(record, outcome=OutcomeKind.OBSERVED, detail="") if reached else record
