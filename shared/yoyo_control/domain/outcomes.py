"""What an executed action's outcome does to the pool state (pure).

Invariants: an outcome applies only to the action that is still the instance's
``last_action`` (same request id), so a late or stale outcome never overwrites a newer
decision, and a refusal or temporary failure counts once however many senders of the same
request id it answers; a temporary failure counts an attempt and becomes permanent after
``max_action_attempts``; a permanent failure of a start parks the instance until the
next lease; a capacity refusal is not an error of the instance: it backs off the
action's zone (domain/capacity.py) and leaves the instance free to start later; an
outcome that changes an instance's status first charges the ledger up to
``now`` at the statuses known before it (a stop's outcome arrives when the operation
finished: the instance ran until then).
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from . import capacity
from .actions import pending
from .facts import observed
from .ledger import accrue
from .model import MISSING, Action, ActionKind, OutcomeKind, PoolPolicy, PoolState


class Outcome(StrEnum):
    """What the executor reports of a call (the record keeps an ``OutcomeKind``)."""

    DONE = "done"
    SKIPPED = "skipped"
    TEMPORARY = "retry"
    PERMANENT = "error"
    NOT_FOUND = "not-found"
    CAPACITY = "capacity"


def record_outcome(
    state: PoolState,
    action: Action,
    outcome: Outcome,
    detail: str,
    policy: PoolPolicy,
    now: float,
    seen: str | None = None,
) -> tuple[PoolState, bool]:
    """The state after ``action`` finished with ``outcome``; False if it was stale.

    ``seen``: the status Compute reported right after a DONE call (None: not read). A
    re-sent request id is answered from its original operation, so DONE alone does not
    prove the instance is in the action's goal status now.
    """
    inst = state.instances.get(action.instance)
    if inst is None or inst.last_action is None:
        return state, False
    la = inst.last_action
    if la.request_id != action.request_id:
        return state, False
    if outcome in (Outcome.CAPACITY, Outcome.TEMPORARY) and not pending(la):
        return state, False  # the same operation answered a re-sent request: counted once
    if outcome in (Outcome.DONE, Outcome.NOT_FOUND):
        ledger = accrue(state.ledger, state.instances.values(), policy.prices, now, policy.timezone)
        state = replace(state, ledger=ledger)
    if outcome == Outcome.DONE:
        status = seen or ("RUNNING" if action.kind == ActionKind.START else "TERMINATED")
        inst = observed(inst, status, now)
        la = replace(la, outcome=OutcomeKind.DONE, detail="")
        if action.kind == ActionKind.START:
            where = capacity.key(policy.placement(action.instance))
            state = replace(state, zones=capacity.started(state.zones, where))
    elif outcome == Outcome.SKIPPED:
        la = replace(la, outcome=OutcomeKind.SKIPPED, detail=detail)
    elif outcome == Outcome.TEMPORARY:
        attempts = la.attempts + 1
        if attempts >= policy.max_action_attempts:
            message = f"gave up after {attempts} attempts: {detail}"
            la = replace(la, outcome=OutcomeKind.ERROR, detail=message, attempts=attempts)
            inst = replace(inst, error=message)
        else:
            retry = OutcomeKind.RETRY
            la = replace(la, outcome=retry, detail=detail, attempts=attempts, issued_at=now)
    elif outcome == Outcome.CAPACITY:
        la = replace(la, outcome=OutcomeKind.CAPACITY, detail=detail)
        where = capacity.key(policy.placement(action.instance))
        zones = capacity.refused(state.zones, where, detail, policy, now)
        state = replace(state, zones=zones)
    elif outcome == Outcome.NOT_FOUND:
        inst = replace(observed(inst, MISSING, now), error=f"not found: {detail}")
        la = replace(la, outcome=OutcomeKind.NOT_FOUND, detail=detail)
    else:
        la = replace(la, outcome=OutcomeKind.ERROR, detail=detail)
        if action.kind == ActionKind.START:
            inst = replace(inst, error=detail)
    instances = dict(state.instances)
    instances[action.instance] = replace(inst, last_action=la)
    return replace(state, instances=instances, updated_at=now), True
