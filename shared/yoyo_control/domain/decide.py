"""decide(): the pure lifecycle reconciler (DESIGN.md §3; README "How the lifecycle works").

The rules are the functions below, in the README's order and with its names; decide()
reads as the order they apply in. How an action is sent, waited on and re-sent is
domain/actions.py; which instance serves new demand is domain/capacity.py.

Invariants:
- Pure: the same (state, kill, policy, now) always gives the same Decision.
- The kill switch (rule 1) and the spend caps (rule 2: the pool's own, and the caps
  across pools given as ``spend``) are checked before anything can grant a lease, and
  while either holds no START action is emitted.
- An instance is desired RUNNING only under a valid lease; every action carries
  ``request_id = uuid5(pool, instance, epoch, action)``; the epoch grows on every grant
  and on every decision that issues new actions. An action still in flight is not
  re-issued until ``action_retry_s`` has passed, and then with its original request id;
  but a decision that follows an observation of Compute (a tick, ``observed_at``) made
  after the action was issued, and still seeing the status the action was to change,
  re-issues it at once (its call died with its process; Compute dedupes the request id).
- Demand has sources, each in its own unit: a producer's queue depth (``demand``, per
  ``queue_threshold``) and pending batch shards (``batch``, one VM each); none erases
  another. Batch work holds a pool only while it moves (rule 9) and not against an
  operator's stop (``BatchDemand.held``).
- Scaling down keeps the instances with work in flight, then those already running:
  idle VMs stop first, never a busy one while an idle one runs.
- The decision names the rule behind every instance's desired state (``Decision.why``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

from . import actions, capacity, keepalive, scaling
from . import prewarm as prewarming
from .actions import Step, request_id
from .heartbeats import is_busy
from .history import History
from .killswitch import describe
from .ledger import accrue, pool_cap_reached
from .model import (
    RUNNING_STATUSES,
    STOPPED_STATUSES,
    Action,
    ActionKind,
    BatchDemand,
    Change,
    Desired,
    Heartbeat,
    Holder,
    Instance,
    KillSwitch,
    Lease,
    LeaseRequest,
    Ledger,
    Load,
    PoolPolicy,
    PoolState,
    Rule,
    ZoneHealth,
)
from .spend import NO_SPEND, Spend, overall_cap_reached
from .timetext import utc

__all__ = ["Decision", "decide", "idle_timeout", "request_id"]


class Decision(NamedTuple):
    state: PoolState
    actions: tuple[Action, ...]
    changes: tuple[Change, ...]
    # The rule behind each instance's desired state, by instance name.
    why: Mapping[str, Change] = MappingProxyType({})


def decide(
    state: PoolState,
    kill: KillSwitch,
    policy: PoolPolicy,
    now: float,
    spend: Spend = NO_SPEND,
    observed_at: float | None = None,
) -> Decision:
    """The new state and the actions that move the pool towards it.

    ``observed_at``: when Compute was listed just before this decision (ticks), if it was.
    """
    d = _Draft.of(state, policy, now, observed_at)
    ledger = accrue(state.ledger, d.instances.values(), policy.prices, now, policy.timezone)
    cap = pool_cap_reached(ledger, policy) or overall_cap_reached(ledger, spend)
    paused = cap.reason if cap is not None else None
    d.ledger, d.spend = ledger, spend
    # The pool's lease: rules 1 and 2 pre-empt everything; else 3, 4 and 6 settle it.
    if not (kill_switch(d, kill) or spend_cap(d, paused)):
        no_lease(d)
        prewarm(d)
        lease(d)
        idle(d)
    # Each instance under a lease still held: at most one of rules 7, 5, 8, in that order.
    if d.lease is not None and d.lease.valid(now):
        for inst in _may_run(d, d.lease):
            if not (runtime_cap(d, inst) or heartbeat_gap(d, inst) or no_progress(d, inst)):
                preempted(d, inst)
        _give_up_lease_if_none_can_run(d)
    # Rule 4 picks the instances to run; every other one is desired STOPPED.
    planned = _plan(d, spent_budget(d, running(d)))
    new = replace(
        state,
        epoch=d.epoch,
        lease=d.lease,
        requests=d.requests,
        instances=d.instances,
        ledger=ledger,
        paused=paused,
        idle_since=d.idle_since,
        zones=d.zones,
        load=d.load,
        batch=d.batch,
    )
    if d.history is not None:
        new = replace(new, history=d.history)
    if d.changes:
        new = replace(new, last_decision="; ".join(c.reason for c in d.changes))
    if new != state:
        new = replace(new, updated_at=now)
    return Decision(new, tuple(planned), tuple(d.changes), MappingProxyType(d.why))


@dataclass
class _Draft:
    """The working copy one decision mutates; never escapes decide()."""

    state: PoolState
    policy: PoolPolicy
    now: float
    observed_at: float | None  # when Compute was last listed (a tick), if just now
    epoch: int
    lease: Lease | None
    requests: tuple[LeaseRequest, ...]
    instances: dict[str, Instance]
    zones: dict[str, ZoneHealth]  # capacity (domain/capacity.py)
    idle_since: float | None  # when the current idle gap began (PoolState.idle_since)
    timeout: float  # rule 6's keep-alive in this decision (idle_timeout())
    batch: BatchDemand  # pending batch work (rule 9 may mark it lapsed)
    changes: list[Change] = field(default_factory=list)
    why: dict[str, Change] = field(default_factory=dict)  # the rule behind each instance
    blocked: Change | None = None  # rule 1 or 2 holds: why nothing may run
    released: Change | None = None  # rule 3 or 6 left the pool without its lease
    bumped: bool = False
    ledger: Ledger = field(default_factory=Ledger)  # accrued to now (scale-out budget)
    spend: Spend = NO_SPEND  # the other pools' spend and the overall caps
    load: Load = field(default_factory=Load)  # PoolState.load as this decision leaves it
    history: History | None = None  # the pool's history, when the pre-warm rule charged it

    @classmethod
    def of(
        cls, state: PoolState, policy: PoolPolicy, now: float, observed_at: float | None
    ) -> _Draft:
        instances = dict(state.instances)
        for name in policy.instances:
            instances.setdefault(name, Instance(name=name))
        return cls(
            state,
            policy,
            now,
            observed_at,
            state.epoch,
            state.lease,
            state.requests,
            instances,
            dict(state.zones),
            state.idle_since,
            idle_timeout(policy, state),
            state.batch,
            load=state.load,
        )

    def note(self, rule: Rule, reason: str, instance: str | None = None) -> Change:
        change = Change(rule, reason, instance)
        self.changes.append(change)
        return change

    def bump_epoch(self) -> int:
        if not self.bumped:
            self.epoch += 1
            self.bumped = True
        return self.epoch


# --- the rules, in the README's order ----------------------------------------------


def kill_switch(d: _Draft, kill: KillSwitch) -> bool:
    """Rule 1: the switch is engaged → lease revoked, every VM stopped, no start."""
    if kill.engaged:
        _block(d, Rule.KILL_SWITCH, describe(kill, with_time=False))
    return kill.engaged


def spend_cap(d: _Draft, paused: str | None) -> bool:
    """Rule 2: the ledger reached a cap → paused: no lease until the period rolls over."""
    if paused:
        _block(d, Rule.SPEND_CAP, paused)
    return bool(paused)


def no_lease(d: _Draft) -> None:
    """Rule 3: a lease past its deadline is dropped; with no lease every VM is desired
    STOPPED (``running`` wants none)."""
    if d.lease is not None and not d.lease.valid(d.now):
        d.released = d.note(Rule.NO_LEASE, f"lease epoch {d.lease.epoch} expired")
        d.lease = None


def lease(d: _Draft) -> None:
    """Rule 4, the lease: requests (and queued work) grant or extend it; standing
    activity (queued work, busy VMs) extends it in coarse steps, one write per half
    lease, not one per event."""
    policy, now = d.policy, d.now
    wanted = [r for r in d.requests if r.until > now]
    d.requests = ()
    queued = f"queue depth {d.state.demand.depth}"
    if _demand_active(d) and d.lease is None:
        wanted.append(LeaseRequest(Holder.QUEUE, queued, now + policy.lease_s))
    pending = f"batch: {d.batch.shards} shards pending"
    if _batch_active(d) and d.lease is None and not wanted:
        wanted.append(LeaseRequest(Holder.BATCH, pending, now + policy.lease_s))
    if wanted:
        _grant_or_extend(d, wanted)
    if d.lease is not None and _demand_active(d):
        _extend_to(d, now + policy.lease_s, queued, quiet=True)
    if d.lease is not None and _batch_active(d):
        _extend_to(d, now + policy.lease_s, pending, quiet=True)
    if d.lease is not None and _busy_heartbeats(d):
        # …past the keep-alive too: coarse steps leave only lease_s / 2 of a lease.
        _extend_to(d, now + policy.lease_s + d.timeout, "busy heartbeat", quiet=True)


def prewarm(d: _Draft) -> None:
    """Pre-warm (after rules 1–3, which it cannot pass): an idle pool whose history
    predicts a first request soon asks for a short lease (holder ``prewarm``), within its
    daily pre-warm budget, charged in this same decision (domain/prewarm.py); never on a
    local day an operator stopped the pool."""
    settings = prewarm_settings(d.policy)
    if settings.budget_min <= 0 or not d.policy.instances:
        return
    if prewarming.stopped_today(d.state.operator_stop_at, d.now, settings.timezone):
        return  # an operator's stop holds pre-warm off for the rest of the local day
    busy = d.lease is not None or bool(d.requests) or _demand_active(d)
    verdict = prewarming.decide(d.state.history, d.now, settings, has_lease=busy)
    if not verdict.fire:
        return
    d.requests = (
        *d.requests,
        LeaseRequest(Holder.PREWARM, verdict.reason, d.now + settings.lease_s),
    )
    d.history = prewarming.charge(d.state.history, d.now, settings)


def prewarm_settings(policy: PoolPolicy) -> prewarming.Settings:
    return prewarming.Settings(
        budget_min=policy.prewarm_budget_min,
        hold_s=policy.prewarm_hold_s,
        boot_s=policy.boot_s,
        wait_weight=policy.wait_weight,
        tick_s=policy.tick_s,
        timezone=policy.timezone,
    )


def _prewarm_holds(d: _Draft, lease: Lease) -> bool:
    """A pre-warm lease nobody has used yet is not idle: it ends at its own deadline."""
    return lease.holder == Holder.PREWARM and _last_request(d, lease) is None


def running(d: _Draft) -> set[str]:
    """Rule 4, the instances: under a valid lease, as many as demand needs (at least
    one), chosen by capacity.choose (busy, loading and running ones kept first).

    Demand is the most of: the producer's queue depth per ``queue_threshold``, pending
    batch shards (``batch_vms``), the VMs with work in flight, the VMs still loading, and
    online load (``scale_on_load``)."""
    if d.lease is None or not d.lease.valid(d.now):
        d.load = scaling.track(d.load, 0, d.now, d.policy.scale_window_s)
        return set()
    eligible = [n for n in d.policy.instances if _eligible(d, d.instances[n])]
    demand = d.state.demand.depth if _demand_active(d) else 0
    by_demand = demand // max(1, d.policy.queue_threshold)
    busy = [hb.instance for hb in _busy_heartbeats(d)]
    loading = [n for n in eligible if _booting(d, d.instances[n]) and n not in busy]
    idle = [
        hb.instance
        for hb in d.state.heartbeats.values()
        if _fresh(d, hb) and hb.ready and hb.instance not in busy
    ]
    # Never stopped by a scale-in: VMs with work, VMs loading, and (while some load)
    # one VM that already serves.
    up = [n for n in eligible if capacity.is_up(d.instances[n]) and n not in loading]
    serving = 1 if any(n in up for n in idle + busy) else 0
    keep = max(1, by_demand, batch_vms(d), len(busy) + len(loading), len(loading) + serving)
    by_load = scale_on_load(d, eligible, keep)
    wanted = max(1, min(len(eligible), max(keep, by_load)))
    first = busy + loading
    chosen = capacity.choose(d.policy, d.instances, d.zones, eligible, wanted, first, idle, d.now)
    # The VMs started beyond what rule 4 keeps anyway run for load: their starts say so.
    for name in chosen[keep:]:
        if name not in d.why and not capacity.is_up(d.instances[name]):
            d.why[name] = Change(Rule.LOAD, f"scale out: {wanted} VM(s) for the load", name)
    return set(chosen)


def scale_on_load(d: _Draft, eligible: list[str], keep: int) -> int:
    """Rule 4, online load (domain/scaling.py): ceil(load / target) VMs, added at once,
    held for the stable window; a scale-out the spend caps would not let run to the
    period's end is refused (rule 2-scale-cap), and the VMs up keep serving."""
    policy, load = d.policy, d.load
    now_load = scaling.concurrency(load, d.state.heartbeats, policy, d.now)
    tracked = scaling.track(load, scaling.wanted(now_load, policy), d.now, policy.scale_window_s)
    want = min(len(eligible), tracked.vms)
    up = [n for n in eligible if capacity.is_up(d.instances[n])]
    base = max(keep, len(up))
    refused = ""
    if want > base:
        order = capacity.choose(policy, d.instances, d.zones, eligible, want, [], [], d.now)
        # Rule 4 starts the VMs it keeps anyway first (their spend is not refused, but
        # it counts); the VMs for load come after them.
        not_up = [n for n in order if n not in up]
        kept, new = not_up[: base - len(up)], not_up[base - len(up) : want - len(up)]
        prices = policy.prices
        allowed, refused = scaling.affordable(
            d.ledger,
            d.spend,
            policy,
            [prices.get(n, policy.top_price) for n in up + kept],
            [prices.get(n, policy.top_price) for n in new],
            d.now,
        )
        want = base + allowed
    if refused and not load.refused:
        d.note(Rule.SCALE_CAP, refused)
    if want > base:
        d.note(Rule.LOAD, f"scale out to {want} VM(s): load {now_load} ({policy.target:g}/VM)")
    elif tracked.vms < load.vms and max(keep, want) < len(up):
        held = f"{policy.scale_window_s:.0f}s"
        d.note(Rule.LOAD, f"scale in to {max(keep, want)} VM(s): load {now_load} for {held}")
    d.load = replace(tracked, refused=refused)
    return want


def batch_vms(d: _Draft) -> int:
    """The VMs pending batch work wants: one per pending shard, while it holds the pool."""
    return d.batch.shards if _batch_active(d) else 0


def heartbeat_gap(d: _Draft, inst: Instance) -> bool:
    """Rule 5: RUNNING past the boot grace and silent for ``heartbeat_gap_s`` → stop,
    restart with backoff within the restart budget."""
    if _cooling(d, inst) or inst.observed != "RUNNING" or inst.running_since is None:
        return False
    if d.now - inst.running_since < d.policy.boot_grace_s:
        return False
    hb = d.state.heartbeats.get(inst.name)
    last = hb.received_at if hb is not None and hb.received_at >= inst.running_since else None
    silent = d.now - (last if last is not None else inst.running_since)
    if silent < d.policy.heartbeat_gap_s:
        return False
    _restart(d, inst, Rule.HEARTBEAT_GAP, "no heartbeat")
    return True


def idle(d: _Draft) -> None:
    """Rule 6: nothing to do (no busy heartbeat, no queued work, nothing booting) for the
    keep-alive → lease released."""
    if d.lease is None or _prewarm_holds(d, d.lease):
        return
    idle_for = _idle_for(d, d.lease)
    if idle_for < d.timeout:
        return
    why = f"keep-alive {d.timeout:.0f}s, {d.policy.keepalive}"
    d.released = d.note(Rule.IDLE, f"idle for {idle_for:.0f}s ({why}): lease released")
    if d.idle_since is None:
        # The idle report may never come (the VM stops first): the gap that the next
        # wake ends began with the lease's last served request.
        d.idle_since = _last_request(d, d.lease)
    d.lease = None


def idle_timeout(policy: PoolPolicy, state: PoolState) -> float:
    """The keep-alive rule 6 uses now (domain/keepalive.py)."""
    if policy.keepalive == "fixed":
        return policy.idle_timeout_s
    spec = keepalive.KeepAlive(
        kind=policy.keepalive,
        idle_timeout_s=max(policy.keepalive_max_s, policy.idle_timeout_s),
        boot_s=policy.boot_s,
        wait_weight=policy.wait_weight,
        reference_s=policy.idle_timeout_s,
        # A configured timeout below the adaptive floor is a deliberate choice: honour it.
        min_s=min(keepalive.KeepAlive.min_s, policy.idle_timeout_s),
    )
    return keepalive.idle_timeout(spec, policy.hourly_price_usd, state.idle_gaps)


def runtime_cap(d: _Draft, inst: Instance) -> bool:
    """Rule 7: running longer than ``max_session_s`` → stopped for the rest of the lease."""
    if inst.observed not in RUNNING_STATUSES or inst.running_since is None:
        return False
    if d.now - inst.running_since < d.policy.max_session_s:
        return False
    assert d.lease is not None
    d.instances[inst.name] = replace(inst, retired_epoch=d.lease.epoch)
    ran = f"{inst.name} ran {d.policy.max_session_s:.0f}s"
    d.why[inst.name] = d.note(
        Rule.MAX_SESSION, f"{ran}: stopped for the rest of this lease", inst.name
    )
    return True


def preempted(d: _Draft, inst: Instance) -> bool:
    """Rule 8: a done start, then observed stopped while desired RUNNING → restart with
    backoff within the restart budget, then give up."""
    la = inst.last_action
    if not (
        inst.desired == Desired.RUNNING
        and inst.observed in STOPPED_STATUSES
        and la is not None
        and la.kind == ActionKind.START
        and actions.done(la)
        and inst.observed_at is not None
        and inst.observed_at > la.issued_at
    ):
        return False
    _restart(d, inst, Rule.PREEMPTED, f"observed {inst.observed}")
    return True


def no_progress(d: _Draft, inst: Instance) -> bool:
    """Rule 9, no spend without progress: while batch work holds the pool (under any
    lease but an operator's start), a VM RUNNING
    past the boot grace (ready or not) through which no shard moved and nothing was busy
    for another boot grace → stop, restart within the restart budget (rule 5's); once no
    instance can run, the batch work lapses (``_give_up_lease_if_none_can_run``)."""
    lease = d.lease
    if lease is None or lease.holder == Holder.OPERATOR or not _batch_active(d):
        return False
    if _cooling(d, inst) or inst.observed != "RUNNING" or inst.running_since is None:
        return False
    since = inst.running_since
    hb = d.state.heartbeats.get(inst.name)
    marks = [since, d.batch.progress_at or since]
    if hb is not None and hb.received_at >= since:
        marks += [t for t in (hb.ready_since, hb.last_busy_at) if t is not None]
    if d.now - max(marks) < d.policy.boot_grace_s or d.now - since < d.policy.boot_grace_s:
        return False
    ready = hb is not None and hb.ready and hb.received_at >= since
    what = "ready, no shard moved" if ready else "never ready"
    _restart(d, inst, Rule.NO_PROGRESS, f"{what} in {d.policy.boot_grace_s:.0f}s of batch work")
    return True


# --- what the rules share -----------------------------------------------------------


def _block(d: _Draft, rule: Rule, why: str) -> None:
    """Rules 1 and 2: no lease, no pending request, everything stops."""
    d.blocked = Change(rule, why)
    if d.lease is not None:
        d.note(rule, f"lease revoked: {why}")
        d.lease = None
    if d.requests:
        holders = ", ".join(sorted({r.holder for r in d.requests}))
        d.note(rule, f"run request denied ({holders}): {why}")
        d.requests = ()


def _grant_or_extend(d: _Draft, wanted: list[LeaseRequest]) -> None:
    until = max(r.until for r in wanted)
    reasons = tuple(dict.fromkeys(r.reason for r in wanted))
    if d.lease is not None:
        d.lease = replace(d.lease, active_at=d.now)
        _extend_to(d, until, ", ".join(reasons))
        return
    epoch = d.bump_epoch()
    max_until = d.now + d.policy.max_lease_s
    holder = wanted[0].holder
    d.lease = Lease(holder, reasons, epoch, d.now, min(until, max_until), max_until)
    for name, inst in d.instances.items():
        d.instances[name] = replace(
            inst, restarts=0, next_start_at=None, retired_epoch=None, error=None
        )
    d.note(Rule.LEASE, f"lease epoch {epoch} granted to {holder}: " + ", ".join(reasons))


def _extend_to(d: _Draft, until: float, why: str, quiet: bool = False) -> None:
    lease = d.lease
    assert lease is not None
    target = min(until, lease.max_until)
    if quiet and target - lease.expires_at < d.policy.lease_s / 2:
        return
    if target > lease.expires_at:
        reasons = tuple(dict.fromkeys((*lease.reasons, why)))[-8:]
        d.lease = replace(lease, expires_at=target, reasons=reasons)
        d.note(Rule.LEASE, f"lease extended to {utc(target)}: {why}")


def _restart(d: _Draft, inst: Instance, rule: Rule, what: str) -> None:
    """Rules 5 and 8: stop now, start again after a doubling backoff; past the restart
    budget, stop for the rest of the lease."""
    assert d.lease is not None
    la = inst.last_action
    if la is not None and la.kind == ActionKind.STOP and actions.pending(la) and inst.restarts:
        # The restart's stop has not been carried out yet (its call died with its
        # process, or is being retried): the same restart, not another one. Keep the
        # instance cooling so that stop is re-issued; count nothing.
        next_start = d.now + _backoff(d.policy, inst.restarts)
        d.instances[inst.name] = replace(inst, next_start_at=next_start)
        return
    restarts, budget = inst.restarts + 1, d.policy.restart_budget
    if rule == Rule.PREEMPTED:
        where = capacity.key(d.policy.placement(inst.name))
        d.zones = capacity.preempted(d.zones, where, d.now)
    la = actions.supersede(la, rule.name.lower())
    if restarts > budget:
        retired = replace(inst, restarts=restarts, retired_epoch=d.lease.epoch, last_action=la)
        d.instances[inst.name] = retired
        why = f"{inst.name}: {what}; gave up after {budget} restarts"
        d.why[inst.name] = d.note(rule, why, inst.name)
        return
    delay = _backoff(d.policy, restarts)
    d.instances[inst.name] = replace(
        inst, restarts=restarts, next_start_at=d.now + delay, last_action=la
    )
    why = f"{inst.name}: {what}; restart {restarts}/{budget} in {delay:.0f}s"
    d.why[inst.name] = d.note(rule, why, inst.name)


def _backoff(policy: PoolPolicy, restarts: int) -> float:
    """How long the ``restarts``-th restart waits: doubling from restart_backoff_s."""
    return float(policy.restart_backoff_s * 2.0 ** (restarts - 1))


def _give_up_lease_if_none_can_run(d: _Draft) -> None:
    """Rules 5, 7 and 8 may leave no instance to run: the lease is released."""
    if d.policy.instances and not any(_eligible(d, d.instances[n]) for n in d.policy.instances):
        d.note(Rule.LEASE, "no instance can run under this lease: released")
        lease, d.lease = d.lease, None
        assert lease is not None
        _lapse_batch(d, lease)


def spent_budget(d: _Draft, wanted: set[str]) -> set[str]:
    """Rule 9's hard bound: batch work has caused instances × (1 + restart_budget) VM
    starts since a shard last moved, and one more is needed → the work lapses instead
    (and a lease held for it is released), however those starts came about."""
    if not _batch_holds(d) or d.lease is None:
        return wanted
    bound = len(d.policy.instances) * (1 + d.policy.restart_budget)
    fresh = [
        n
        for n in wanted
        if actions.needed(d.instances[n], Desired.RUNNING, _cooling(d, d.instances[n]))
        == ActionKind.START
        and actions.next_step(d.instances[n], ActionKind.START, d.policy, d.now, d.observed_at)
        == Step.NEW
    ]
    if d.batch.starts < bound or not fresh:
        return wanted
    lease = d.lease
    _lapse_batch(d, lease)
    if lease.holder != Holder.BATCH:
        return wanted  # another source holds the lease: its own rules keep it
    d.released = d.note(Rule.NO_PROGRESS, f"lease epoch {lease.epoch} released: batch work lapsed")
    d.lease = None
    return set()


def _lapse_batch(d: _Draft, lease: Lease) -> None:
    """Rule 9: a lease (not an operator's) held while batch work was pending ended with
    no instance able to run and no shard moved under it → the work lapses: no new lease
    from it (so no fresh restart budget) until an explicit action (an operator's start,
    ``yoyoctl batch retry``)."""
    batch = d.batch
    if lease.holder == Holder.OPERATOR or not _batch_active(d) or batch.starts == 0:
        return  # a shard moved after every start it caused: a new lease may follow
    budget = d.policy.restart_budget
    why = (
        f"no shard moved through {batch.starts} VM starts (at most 1 + restart_budget "
        f"{budget} per instance) under lease epoch {lease.epoch}: the pool stops"
    )
    d.batch = replace(batch, lapsed=why, lapsed_at=d.now)
    d.note(Rule.NO_PROGRESS, f"batch work lapsed: {why}; yoyoctl batch retry runs it again")


def _may_run(d: _Draft, lease: Lease) -> list[Instance]:
    """The configured instances not retired under ``lease`` nor parked on an error."""
    return [
        d.instances[n]
        for n in d.policy.instances
        if d.instances[n].retired_epoch != lease.epoch and not d.instances[n].error
    ]


def _eligible(d: _Draft, inst: Instance) -> bool:
    return d.lease is not None and inst.retired_epoch != d.lease.epoch and inst.error is None


def _cooling(d: _Draft, inst: Instance) -> bool:
    return inst.next_start_at is not None and d.now < inst.next_start_at


def _demand_active(d: _Draft) -> bool:
    demand, policy = d.state.demand, d.policy
    if demand.updated_at is None or demand.depth < max(1, policy.queue_threshold):
        return False
    # A demand nobody refreshes or clears stops counting after a lease's length.
    return d.now - demand.updated_at < max(policy.lease_s, d.timeout)


def _batch_active(d: _Draft) -> bool:
    """Pending batch work holds the pool: shards pending, counted lately, neither lapsed
    (rule 9) nor held by an operator's stop. Its own unit: no queue_threshold."""
    batch = d.batch
    if batch.shards <= 0 or batch.updated_at is None or batch.lapsed or batch.held:
        return False
    # A count nobody refreshes stops counting after a lease's length.
    return d.now - batch.updated_at < max(d.policy.lease_s, d.timeout)


def _batch_holds(d: _Draft) -> bool:
    """Batch work is what keeps the pool up now (its starts count towards rule 9)."""
    lease = d.lease
    return lease is not None and lease.holder != Holder.OPERATOR and _batch_active(d)


def _fresh(d: _Draft, hb: Heartbeat) -> bool:
    return d.now - hb.received_at <= d.policy.heartbeat_gap_s


def _busy_heartbeats(d: _Draft) -> list[Heartbeat]:
    return [hb for hb in d.state.heartbeats.values() if _fresh(d, hb) and is_busy(hb)]


def _booting(d: _Draft, inst: Instance) -> bool:
    """Started and not serving yet: no ready heartbeat since the start, and still
    inside the boot grace (a VM that never gets ready is idle after it)."""
    la = inst.last_action
    started = la.issued_at if la is not None and la.kind == ActionKind.START else None
    since = inst.running_since or started
    if inst.desired != Desired.RUNNING or since is None:
        return False
    if d.now - since >= d.policy.boot_grace_s:
        return False
    hb = d.state.heartbeats.get(inst.name)
    return hb is None or not hb.ready or hb.received_at < since


def _last_request(d: _Draft, lease: Lease) -> float | None:
    served = [hb.last_request_at for hb in d.state.heartbeats.values()]
    return max((t for t in served if t is not None and t >= lease.granted_at), default=None)


def _idle_for(d: _Draft, lease: Lease) -> float:
    """How long the pool has had nothing to do; booting counts as work (a woken VM
    must live to serve, whatever the keep-alive), the clock starts when it is ready."""
    if _demand_active(d) or _batch_active(d) or _busy_heartbeats(d):
        return 0.0
    if any(_booting(d, i) for i in d.instances.values()):
        return 0.0
    marks = [lease.granted_at, lease.active_at or lease.granted_at]
    marks += [i.running_since for i in d.instances.values() if i.running_since]
    for hb in d.state.heartbeats.values():
        marks += [t for t in (hb.last_busy_at, hb.last_request_at) if t is not None]
        marks += [hb.ready_since] if hb.ready_since is not None else []
    demand = d.state.demand
    if demand.updated_at is not None and demand.depth > 0:
        marks.append(demand.updated_at)
    return d.now - max(marks)


# --- from desired state to actions --------------------------------------------------


def _plan(d: _Draft, wanted: set[str]) -> list[Action]:
    """Each instance's desired state, the rule behind it, and the call it needs now."""
    planned: list[Action] = []
    for name in sorted(d.instances):
        inst = d.instances[name]
        desired = Desired.RUNNING if name in wanted else Desired.STOPPED
        why = d.why.get(name) or _why(d, inst, desired)
        d.why[name] = why
        kind = actions.needed(inst, desired, _cooling(d, inst))
        if desired != inst.desired:
            inst = replace(inst, desired=desired)
        if kind is not None:
            before = inst.last_action
            inst, action = _act(d, inst, kind, why)
            if action is not None:
                planned.append(action)
                fresh = before is None or before.request_id != action.request_id
                if kind == ActionKind.START and fresh and _batch_holds(d):
                    d.batch = replace(d.batch, starts=d.batch.starts + 1)
                if kind == ActionKind.START and fresh:
                    for skipped in capacity.skipped(d.policy, d.zones, name, d.now):
                        d.note(Rule.CAPACITY, f"start {name}: {skipped}", name)
        d.instances[name] = inst
    return planned


def _why(d: _Draft, inst: Instance, desired: Desired) -> Change:
    """The rule behind ``inst``'s desired state when no instance rule (5, 7, 8) named it."""
    name = inst.name
    if desired == Desired.RUNNING:
        assert d.lease is not None
        return Change(Rule.LEASE, f"lease epoch {d.lease.epoch} held by {d.lease.holder}", name)
    if d.blocked is not None:
        return replace(d.blocked, instance=name)
    if inst.orphan:
        return Change(Rule.ORPHAN, f"{name} is labelled for the pool but not configured", name)
    if d.released is not None:
        return replace(d.released, instance=name)
    if d.lease is None:
        return Change(Rule.NO_LEASE, "no valid lease", name)
    return Change(Rule.LEASE, f"not needed under lease epoch {d.lease.epoch}", name)


def _act(
    d: _Draft, inst: Instance, kind: ActionKind, why: Change
) -> tuple[Instance, Action | None]:
    """The action of ``kind`` on ``inst`` to send now, if any (domain/actions.py)."""
    step = actions.next_step(inst, kind, d.policy, d.now, d.observed_at)
    if step == Step.WAIT:
        return inst, None
    la = inst.last_action
    if step == Step.RESEND:
        assert la is not None
        epoch, rid, attempts = la.epoch, la.request_id, la.attempts
    else:
        epoch, attempts = d.bump_epoch(), 0
        rid = request_id(d.state.pool, inst.name, epoch, kind)
    zone = d.policy.placement(inst.name).zone
    action = Action(kind, d.state.pool, inst.name, zone, epoch, rid, why.rule, why.reason)
    return actions.issue(inst, action, d.now, attempts), action
