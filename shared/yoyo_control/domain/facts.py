"""Facts: what an event tells the control plane, already decoded and validated.

Invariants: a fact never starts or stops anything; it is recorded once (keyed by its
origin and message id) and then folded into the pool state by ``apply_fact`` before
``decide`` runs. ``apply_fact`` is pure and returns the changes it made with their
reasons. Operator start/extend/stop take effect in publish order: one published before
the newest applied command of the opposite kind changes nothing (a recorded Change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from . import history
from .actions import settle_observed, unanswered_start
from .heartbeats import is_busy
from .keepalive import record_gap
from .ledger import accrue
from .model import (
    BILLED_STATUSES,
    MISSING,
    UNKNOWN,
    BatchDemand,
    Change,
    Demand,
    Heartbeat,
    Holder,
    Instance,
    KillSwitch,
    LeaseRequest,
    PoolPolicy,
    PoolState,
    Rule,
)
from .model import RUNNING_STATUSES as _RUNNING
from .timetext import utc


@dataclass(frozen=True)
class Fact:
    message_id: str  # unique within its origin only (Pub/Sub ids are unique per topic)
    at: float  # when it happened (publish time), seconds since the epoch
    # Where it came from: the topic suffix (names.EVENT_TOPICS) or "kill_switch"; "" for
    # facts made in-process (gateway wake, simulator), identified by their kind instead.
    origin: str = field(default="", kw_only=True)


# --- facts about one pool ------------------------------------------------------------

OPERATOR = Holder.OPERATOR  # the holder of an operator's start (the control topic)


@dataclass(frozen=True)
class RunRequested(Fact):
    """Cycle window, wake-on-request, operator start: ask for (or extend) the lease."""

    pool: str
    holder: Holder
    reason: str
    duration_s: float


@dataclass(frozen=True)
class QueueDepthObserved(Fact):
    """Work has piled up (or drained): a monitoring incident or a producer's depth."""

    pool: str
    depth: int
    source: str


@dataclass(frozen=True)
class LoadReported(Fact):
    """The gateway's online load on a pool (domain/scaling.py): requests it has sent to
    the pool's VMs and not seen finish, and requests it holds for a VM."""

    pool: str
    in_flight: int
    held: int


@dataclass(frozen=True)
class BatchDemandObserved(Fact):
    """The batch controller's count of the pool's pending batch work (PoolState.batch).

    ``shards``: VMs' worth of work; ``progress_at``: when a shard last moved;
    ``retry_at``: the newest explicit ask to run it (a submit, ``yoyoctl batch retry``).
    """

    pool: str
    shards: int
    progress_at: float | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class ColdStartReported(Fact):
    """The gateway's measure of a cold start it held a request through (one per lease
    epoch): the control plane records it as a ``cold-start`` event (gateway/coldstarts.py
    reads it back). It changes no pool state."""

    pool: str
    epoch: int
    instance: str
    held_s: float
    phases: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class HeartbeatReceived(Fact):
    pool: str
    heartbeat: Heartbeat


@dataclass(frozen=True)
class StopRequested(Fact):
    pool: str
    by: str
    reason: str


@dataclass(frozen=True)
class ExtendRequested(Fact):
    pool: str
    by: str
    duration_s: float


@dataclass(frozen=True)
class StatusObserved(Fact):
    """Instance statuses read from Compute Engine at ``at`` (by the tick)."""

    pool: str
    statuses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# --- facts about the whole control plane ---------------------------------------------


@dataclass(frozen=True)
class Tick(Fact):
    """The every-minute pulse: refresh observations and re-decide every pool."""


@dataclass(frozen=True)
class KillRequested(Fact):
    reason: str
    by: str


@dataclass(frozen=True)
class UnkillRequested(Fact):
    by: str


@dataclass(frozen=True)
class KillSwitchWritten(Fact):
    """The kill switch document was written (console flip or our own write)."""

    kill: KillSwitch


@dataclass(frozen=True)
class BudgetNotified(Fact):
    budget_id: str
    display_name: str
    cost: float
    amount: float
    currency: str
    alert_threshold: float | None = None
    forecast_threshold: float | None = None
    interval_start: str = ""


PoolFact = (
    RunRequested
    | QueueDepthObserved
    | LoadReported
    | BatchDemandObserved
    | HeartbeatReceived
    | StopRequested
    | ExtendRequested
    | StatusObserved
)
GlobalFact = Tick | KillRequested | UnkillRequested | KillSwitchWritten | BudgetNotified


def kind_of(fact: Fact) -> str:
    return type(fact).__name__


def pool_of(fact: Fact) -> str | None:
    """The pool a fact is about; None for a fact about the whole control plane."""
    return fact.pool if isinstance(fact, PoolFact) else None


def apply_fact(
    state: PoolState, fact: Fact, policy: PoolPolicy, now: float
) -> tuple[PoolState, tuple[Change, ...]]:
    """Fold a pool fact into the state. Global facts leave the pool state unchanged."""
    stale = _stale_command(state, fact)
    if stale is not None:
        return state, (stale,)
    if isinstance(fact, RunRequested):
        changes: tuple[Change, ...] = ()
        if fact.holder == OPERATOR:
            state = replace(state, operator_run_at=max(fact.at, state.operator_run_at or 0.0))
            state, changes = _resume_batch(state, f"an operator's start ({fact.reason})")
        request = LeaseRequest(fact.holder, fact.reason, now + fact.duration_s)
        state = replace(state, requests=(*state.requests, request))
        if fact.holder == Holder.WAKE:
            state = activity_resumed(state, fact.at, policy.timezone)
        return state, changes
    if isinstance(fact, BatchDemandObserved):
        return _batch_demand(state, fact, now)
    if isinstance(fact, QueueDepthObserved):
        known = state.demand.observed_at
        if known is not None and fact.at < known:
            return state, ()  # reordered delivery: a newer observation already landed
        demand = Demand(max(0, fact.depth), fact.source, updated_at=now, observed_at=fact.at)
        return replace(state, demand=demand), ()
    if isinstance(fact, LoadReported):
        known = state.load.observed_at
        if known is not None and fact.at < known:
            return state, ()  # reordered delivery: a newer report already landed
        load = replace(
            state.load,
            in_flight=max(0, fact.in_flight),
            held=max(0, fact.held),
            observed_at=fact.at,
            updated_at=now,
        )
        return replace(state, load=load), ()
    if isinstance(fact, HeartbeatReceived):
        beats = dict(state.heartbeats)
        beats[fact.heartbeat.instance] = fact.heartbeat
        state = replace(state, heartbeats=beats)
        return track_activity(state, fact.heartbeat, policy.timezone), ()
    if isinstance(fact, StopRequested):
        state = replace(state, operator_stop_at=max(fact.at, state.operator_stop_at or 0.0))
        held: tuple[Change, ...] = ()
        if state.batch.shards > 0 and not state.batch.held:
            # An operator's stop holds while batch work is pending (until a start).
            why = f"stopped by {fact.by}: {fact.reason}"
            state = replace(state, batch=replace(state.batch, held=why))
            held = (Change(Rule.OPERATOR, _waits(state.batch, why)),)
        if state.lease is None and not state.requests:
            return state, (Change(Rule.OPERATOR, f"stop by {fact.by}: no lease to release"), *held)
        change = Change(Rule.OPERATOR, f"lease released by {fact.by}: {fact.reason}")
        return replace(state, lease=None, requests=(), demand=Demand()), (change, *held)
    if isinstance(fact, ExtendRequested):
        state = replace(state, operator_run_at=max(fact.at, state.operator_run_at or 0.0))
        return _extend(state, fact, now)
    if isinstance(fact, StatusObserved):
        # Charge the time up to this observation at the statuses we knew before it.
        ledger = accrue(
            state.ledger,
            state.instances.values(),
            policy.prices,
            max(fact.at, state.ledger.accrued_until or fact.at),
            policy.timezone,
        )
        return _observe(replace(state, ledger=ledger), fact, policy)
    return state, ()


def _stale_command(state: PoolState, fact: Fact) -> Change | None:
    """Why an operator command is ignored: published before the newest opposite command
    applied (Pub/Sub does not keep order; the publish time, set by Google, does)."""
    if isinstance(fact, StopRequested):
        newer, what, opposite = state.operator_run_at, f"stop by {fact.by}", "start or extend"
    elif isinstance(fact, ExtendRequested):
        newer, what, opposite = state.operator_stop_at, f"extend by {fact.by}", "stop"
    elif isinstance(fact, RunRequested) and fact.holder == OPERATOR:
        newer, what, opposite = state.operator_stop_at, "operator start", "stop"
    else:
        return None
    if newer is None or fact.at >= newer:
        return None
    return Change(Rule.OPERATOR, f"{what} published before the last {opposite}: ignored")


def _waits(batch: BatchDemand, why: str) -> str:
    return (
        f"batch work ({batch.shards} shards) waits: {why}; "
        "it runs again on an operator's start (yoyoctl start) or yoyoctl batch retry"
    )


def _resume_batch(state: PoolState, why: str) -> tuple[PoolState, tuple[Change, ...]]:
    """An explicit action lifts a hold or a lapse of the pool's batch work."""
    batch = state.batch
    if not (batch.held or batch.lapsed):
        return state, ()
    resumed = replace(batch, held="", lapsed="", lapsed_at=None, starts=0)
    change = Change(Rule.OPERATOR, f"batch work resumes: {why}")
    return replace(state, batch=resumed), (change,)


def _latest(*times: float | None) -> float | None:
    return max((t for t in times if t is not None), default=None)


def _batch_demand(
    state: PoolState, fact: BatchDemandObserved, now: float
) -> tuple[PoolState, tuple[Change, ...]]:
    """Fold the batch controller's count in; it never touches the producer's ``demand``.

    A lapse stays until an explicit action (a ``retry_at`` newer than the lapse, an
    operator's start); a hold until an operator's start; both end when the work is gone.
    """
    known = state.batch
    if known.observed_at is not None and fact.at < known.observed_at:
        return state, ()  # reordered delivery: a newer count already landed
    progress = _latest(known.progress_at, fact.progress_at)
    retry = _latest(known.retry_at, fact.retry_at)
    batch = replace(
        known,
        shards=max(0, fact.shards),
        progress_at=progress,
        retry_at=retry,
        updated_at=now,
        observed_at=fact.at,
    )
    if progress != known.progress_at:
        batch = replace(batch, starts=0)  # a shard moved: the starts before it paid off
    state = replace(state, batch=batch)
    if batch.shards == 0:
        gone = replace(batch, held="", lapsed="", lapsed_at=None, starts=0)
        return replace(state, batch=gone), ()
    asked = fact.retry_at or 0.0
    if batch.lapsed and (known.retry_at or 0.0) < asked and asked > (batch.lapsed_at or 0.0):
        # A retry lifts the lapse, never an operator's hold (only a start does).
        resumed = replace(batch, lapsed="", lapsed_at=None, starts=0)
        why = "batch work resumes: retried (a new batch, or yoyoctl batch retry)"
        return replace(state, batch=resumed), (Change(Rule.OPERATOR, why),)
    return state, ()  # a hold ends only with an operator's start (or the work gone)


def activity_resumed(state: PoolState, at: float, timezone: str = "UTC") -> PoolState:
    """Work arrived at an idle pool: the idle gap that ends here joins the histogram and
    the pool's history (domain/history.py; in the same write that clears idle_since)."""
    if state.idle_since is None:
        return state
    gaps = record_gap(state.idle_gaps, max(0.0, at - state.idle_since))
    kept = history.record(state.history, state.idle_since, max(at, state.idle_since), timezone)
    return replace(state, idle_gaps=gaps, idle_since=None, history=kept)


def track_activity(state: PoolState, hb: Heartbeat, timezone: str = "UTC") -> PoolState:
    """A busy heartbeat ends an idle gap; the pool turns idle when an instance that has
    served something reports idle and none is busy (a fresh boot's first report, with no
    request yet, starts no gap: that time was the cold start)."""
    if is_busy(hb):
        return activity_resumed(state, hb.last_request_at or hb.received_at, timezone)
    if state.idle_since is not None or hb.last_request_at is None:
        return state
    if any(is_busy(other) for other in state.heartbeats.values()):
        return state
    return replace(state, idle_since=hb.last_request_at)


def _extend(
    state: PoolState, fact: ExtendRequested, now: float
) -> tuple[PoolState, tuple[Change, ...]]:
    lease = state.lease
    if lease is None or not lease.valid(now):
        return state, (Change(Rule.OPERATOR, f"extend by {fact.by}: no valid lease"),)
    expires = min(max(lease.expires_at, now + fact.duration_s), lease.max_until)
    reasons = (*lease.reasons, f"extended by {fact.by}")[-8:]
    change = Change(Rule.OPERATOR, f"lease extended by {fact.by} to {utc(expires)}")
    extended = replace(lease, expires_at=expires, reasons=reasons, active_at=now)
    return replace(state, lease=extended), (change,)


def _observe(
    state: PoolState, fact: StatusObserved, policy: PoolPolicy
) -> tuple[PoolState, tuple[Change, ...]]:
    """Record observed statuses, ignoring observations older than what we know.

    An instance listed for the pool that its configuration does not name is an orphan.
    """
    instances = dict(state.instances)
    changes: list[Change] = []
    for name, status in fact.statuses.items():
        current = instances.get(name)
        if current is None:
            orphan = name not in policy.instances
            current = Instance(name=name, orphan=orphan)
            if orphan:
                changes.append(
                    Change(Rule.ORPHAN, f"found {name} ({status}) labelled for the pool", name)
                )
        if current.observed_at is not None and current.observed_at > fact.at:
            continue  # a newer observation (an action's outcome) already landed
        instances[name] = observed(current, status, fact.at)
    # Configured instances the listing did not return do not exist.
    for name, current in state.instances.items():
        unlisted = name not in fact.statuses and not current.orphan
        newer = current.observed_at is None or current.observed_at <= fact.at
        if unlisted and newer and current.observed != MISSING:
            instances[name] = observed(current, MISSING, fact.at)
    return replace(state, instances=instances), tuple(changes)


def observed(instance: Instance, status: str, at: float) -> Instance:
    """The instance after observing ``status`` at ``at`` (tracks when it began running:
    from the observation, or from an unanswered start's sending, whichever is earlier).

    ``observed_at`` is when the status was last seen to change: an unchanged status does
    not touch the pool document, so an idle pool's tick writes nothing.
    """
    if status == instance.observed and instance.observed_at is not None:
        return instance
    running_since = instance.running_since
    if status in _RUNNING:
        if running_since is None:
            running_since = min(at, unanswered_start(instance.last_action, at))
    elif status not in BILLED_STATUSES and status != UNKNOWN:
        running_since = None  # STOPPING is still billed: it keeps its running_since
    return replace(
        instance,
        observed=status,
        observed_at=at,
        running_since=running_since,
        warm=instance.warm or status == "RUNNING",
        last_action=settle_observed(instance.last_action, status, at),
    )
