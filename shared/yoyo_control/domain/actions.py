"""The action protocol (pure): how a lifecycle action is issued, waited on, re-sent and
settled. decide() says *which* call an instance needs; this module says whether to send
it now, and under which request id.

Invariants:
- Every action carries ``request_id = uuid5(pool, instance, epoch, action)``; a re-sent
  action keeps its original epoch and request id (Compute Engine dedupes it).
- In flight (``outcome`` None): not re-issued until ``action_retry_s`` has passed — but
  at once when Compute was observed after it was issued still in the status the action
  was to change (its call died with its process).
- Awaiting a retry (``OutcomeKind.RETRY``): re-sent after ``action_retry_s`` doubling per
  attempt; outcomes.py turns the last allowed attempt into an error.
- Anything else is settled: its request id is spent and never re-sent; the next need
  issues a new action under a new epoch. A start is settled by observation when the VM
  is seen RUNNING after it was issued, a stop when the VM is seen stopped.
- A start is not issued to an instance parked on a permanent error.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from enum import Enum

from .model import (
    RUNNING_STATUSES,
    STOPPED_STATUSES,
    UNKNOWN,
    Action,
    ActionKind,
    ActionRecord,
    Desired,
    Instance,
    OutcomeKind,
    PoolPolicy,
)

REQUEST_NAMESPACE = uuid.UUID("6f1d1c7e-3b1a-5d2e-9a47-7d0f3c9b2a10")
DONE = (OutcomeKind.DONE, OutcomeKind.OBSERVED)  # an outcome recorded, or the effect observed


class Step(Enum):
    """What to do about an action an instance needs."""

    WAIT = "wait"  # the last one is in flight or its retry is not due: send nothing
    RESEND = "resend"  # send the last one again, same epoch and request id
    NEW = "new"  # issue a new one under this decision's epoch


def request_id(pool: str, instance: str, epoch: int, kind: ActionKind) -> str:
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{pool}/{instance}/{epoch}/{kind.value}"))


def pending(record: ActionRecord | None) -> bool:
    """In flight, or awaiting a retry: not settled yet."""
    return record is not None and record.outcome in (None, OutcomeKind.RETRY)


def done(record: ActionRecord | None) -> bool:
    return record is not None and record.outcome in DONE


def needed(inst: Instance, desired: Desired, cooling: bool) -> ActionKind | None:
    """The call that moves ``inst`` towards ``desired`` (None: nothing to do)."""
    if desired == Desired.RUNNING and not cooling:
        if inst.observed in STOPPED_STATUSES or inst.observed == UNKNOWN:
            return ActionKind.START
        if _unfinished(inst, ActionKind.START, ("PROVISIONING", "STAGING")):
            return ActionKind.START  # wait on it again: the attempt budget bounds it
        return None
    # Not wanted, or cooling before a restart: stop it if it runs.
    if _needs_stop(inst) or _unfinished(inst, ActionKind.STOP, ("STOPPING",)):
        return ActionKind.STOP
    return None


def _unfinished(inst: Instance, kind: ActionKind, statuses: tuple[str, ...]) -> bool:
    """The last action is ``kind``, its operation never reported DONE (the wait ran
    out: a retry), and the instance still sits in its transitional status."""
    la = inst.last_action
    return (
        inst.observed in statuses
        and la is not None
        and la.kind == kind
        and la.outcome == OutcomeKind.RETRY
    )


def _needs_stop(inst: Instance) -> bool:
    if inst.observed in RUNNING_STATUSES:
        return True
    la = inst.last_action
    return (
        inst.observed == UNKNOWN
        and la is not None
        and la.kind == ActionKind.START
        and la.outcome != OutcomeKind.CAPACITY  # refused: never started
    )


def next_step(
    inst: Instance, kind: ActionKind, policy: PoolPolicy, now: float, observed_at: float | None
) -> Step:
    """Whether to send ``kind`` to ``inst`` now (``observed_at``: when Compute was listed
    just before this decision, if it was)."""
    la = inst.last_action
    if la is not None and la.kind == kind and la.outcome is None:
        # Observed unchanged after it was issued: its call died with its process.
        lost = observed_at is not None and la.issued_at < observed_at
        if not lost and now - la.issued_at < policy.action_retry_s:
            return Step.WAIT  # in flight: its executor is on it
        return Step.RESEND
    if la is not None and la.kind == kind and la.outcome == OutcomeKind.RETRY:
        wait = policy.action_retry_s * 2 ** max(0, la.attempts - 1)
        return Step.WAIT if now - la.issued_at < wait else Step.RESEND
    if inst.error and kind == ActionKind.START:
        return Step.WAIT
    return Step.NEW


def issue(inst: Instance, action: Action, now: float, attempts: int = 0) -> Instance:
    """``inst`` with ``action`` sent at ``now`` as its last action (in flight)."""
    reason = f"{action.rule.value}: {action.reason}"
    record = ActionRecord(
        action.kind, action.epoch, action.request_id, now, reason, attempts=attempts
    )
    return replace(inst, last_action=record)


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
