"""decide(): the pure lifecycle reconciler (DESIGN.md §3).

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
- Scaling down keeps the instances with work in flight, then those already running:
  idle VMs stop first, never a busy one while an idle one runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from . import actions, capacity, keepalive
from .killswitch import describe
from .ledger import accrue, pool_cap_reached
from .model import (
    RUNNING_STATUSES,
    STOPPED_STATUSES,
    UNKNOWN,
    Action,
    ActionKind,
    ActionRecord,
    Change,
    Desired,
    Heartbeat,
    Holder,
    Instance,
    KillSwitch,
    Lease,
    LeaseRequest,
    OutcomeKind,
    PoolPolicy,
    PoolState,
    Rule,
    ZoneHealth,
)
from .spend import NO_SPEND, Spend, overall_cap_reached
from .timetext import utc

REQUEST_NAMESPACE = uuid.UUID("6f1d1c7e-3b1a-5d2e-9a47-7d0f3c9b2a10")


class Decision(NamedTuple):
    state: PoolState
    actions: tuple[Action, ...]
    changes: tuple[Change, ...]


def request_id(pool: str, instance: str, epoch: int, kind: ActionKind) -> str:
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{pool}/{instance}/{epoch}/{kind.value}"))


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


def decide(
    state: PoolState,
    kill: KillSwitch,
    policy: PoolPolicy,
    now: float,
    spend: Spend = NO_SPEND,
    observed_at: float | None = None,
) -> Decision:
    """``observed_at``: when Compute was listed just before this decision (ticks), if it was."""
    draft = _Draft.of(state, policy, now, observed_at)
    ledger = accrue(state.ledger, draft.instances.values(), policy.prices, now, policy.timezone)
    paused = pool_cap_reached(ledger, policy) or overall_cap_reached(ledger, spend)
    if kill.engaged:
        draft.block(Rule.KILL_SWITCH, describe(kill, with_time=False))
    elif paused:
        draft.block(Rule.SPEND_CAP, paused)
    else:
        draft.run_lease_rules()
    draft.run_instance_rules()
    actions = draft.plan_actions()
    new = replace(
        state,
        epoch=draft.epoch,
        lease=draft.lease,
        requests=draft.requests,
        instances=draft.instances,
        ledger=ledger,
        paused=paused,
        idle_since=draft.idle_since,
        zones=draft.zones,
    )
    if draft.changes:
        new = replace(new, last_decision="; ".join(c.reason for c in draft.changes))
    if new != state:
        new = replace(new, updated_at=now)
    return Decision(new, tuple(actions), tuple(draft.changes))


@dataclass
class _Draft:
    """The working copy one decision mutates; never escapes decide()."""

    state: PoolState
    policy: PoolPolicy
    now: float
    epoch: int
    lease: Lease | None
    requests: tuple[LeaseRequest, ...]
    instances: dict[str, Instance]
    timeout: float  # rule 6's keep-alive in this decision (idle_timeout())
    idle_since: float | None  # when the current idle gap began (PoolState.idle_since)
    observed_at: float | None = None  # when Compute was last listed (a tick), if just now
    zones: dict[str, ZoneHealth] = field(default_factory=dict)  # capacity (domain/capacity.py)
    changes: list[Change] = field(default_factory=list)
    bumped: bool = False
    blocked: Change | None = None  # rule 1 or 2 holds: why nothing may run

    @classmethod
    def of(
        cls, state: PoolState, policy: PoolPolicy, now: float, observed_at: float | None = None
    ) -> _Draft:
        instances = dict(state.instances)
        for name in policy.instances:
            instances.setdefault(name, Instance(name=name))
        timeout = idle_timeout(policy, state)
        return cls(
            state,
            policy,
            now,
            state.epoch,
            state.lease,
            state.requests,
            instances,
            timeout,
            state.idle_since,
            observed_at,
            dict(state.zones),
        )

    def note(self, rule: Rule, reason: str, instance: str | None = None) -> None:
        self.changes.append(Change(rule, reason, instance))

    def bump_epoch(self) -> int:
        if not self.bumped:
            self.epoch += 1
            self.bumped = True
        return self.epoch

    # --- lease rules (1, 2, 3, 4, 6) ------------------------------------------------

    def block(self, rule: Rule, why: str) -> None:
        """Rules 1 and 2: no lease, no pending request, everything stops."""
        self.blocked = Change(rule, why)
        if self.lease is not None:
            self.note(rule, f"lease revoked: {why}")
            self.lease = None
        if self.requests:
            holders = ", ".join(sorted({r.holder for r in self.requests}))
            self.note(rule, f"run request denied ({holders}): {why}")
            self.requests = ()

    def run_lease_rules(self) -> None:
        policy, now = self.policy, self.now
        if self.lease is not None and not self.lease.valid(now):
            self.note(Rule.NO_LEASE, f"lease epoch {self.lease.epoch} expired")
            self.lease = None
        wanted = [r for r in self.requests if r.until > now]
        self.requests = ()
        queued = f"queue depth {self.state.demand.depth}"
        if self._demand_active() and self.lease is None:
            wanted.append(LeaseRequest(Holder.QUEUE, queued, now + policy.lease_s))
        if wanted:
            self._grant_or_extend(wanted)
        # Standing activity (queued work, busy VMs) extends in coarse steps: one write per
        # half lease, not one per event.
        if self.lease is not None and self._demand_active():
            self._extend_to(now + policy.lease_s, queued, quiet=True)
        if self.lease is not None and self._busy_heartbeats():
            # …past the keep-alive too: coarse steps leave only lease_s / 2 of a lease.
            self._extend_to(now + policy.lease_s + self.timeout, "busy heartbeat", quiet=True)
        if self.lease is not None and self._idle_for() >= self.timeout:
            why = f"keep-alive {self.timeout:.0f}s, {policy.keepalive}"
            self.note(Rule.IDLE, f"idle for {self._idle_for():.0f}s ({why}): lease released")
            if self.idle_since is None:
                # The idle report may never come (the VM stops first): the gap that the
                # next wake ends began with the lease's last served request.
                self.idle_since = self._last_request(self.lease)
            self.lease = None

    def _grant_or_extend(self, wanted: list[LeaseRequest]) -> None:
        until = max(r.until for r in wanted)
        reasons = tuple(dict.fromkeys(r.reason for r in wanted))
        if self.lease is None:
            epoch = self.bump_epoch()
            self.lease = Lease(
                holder=wanted[0].holder,
                reasons=reasons,
                epoch=epoch,
                granted_at=self.now,
                expires_at=until,
                max_until=self.now + self.policy.max_lease_s,
            )
            self.lease = replace(self.lease, expires_at=min(until, self.lease.max_until))
            for name, inst in self.instances.items():
                self.instances[name] = replace(
                    inst, restarts=0, next_start_at=None, retired_epoch=None, error=None
                )
            self.note(
                Rule.LEASE,
                f"lease epoch {epoch} granted to {wanted[0].holder}: " + ", ".join(reasons),
            )
        else:
            self.lease = replace(self.lease, active_at=self.now)
            self._extend_to(until, ", ".join(reasons))

    def _extend_to(self, until: float, why: str, quiet: bool = False) -> None:
        lease = self.lease
        assert lease is not None
        target = min(until, lease.max_until)
        if quiet and target - lease.expires_at < self.policy.lease_s / 2:
            return
        if target > lease.expires_at:
            reasons = tuple(dict.fromkeys((*lease.reasons, why)))[-8:]
            self.lease = replace(lease, expires_at=target, reasons=reasons)
            self.note(Rule.LEASE, f"lease extended to {utc(target)}: {why}")

    def _demand_active(self) -> bool:
        demand, policy = self.state.demand, self.policy
        if demand.updated_at is None or demand.depth < max(1, policy.queue_threshold):
            return False
        # A demand nobody refreshes or clears stops counting after a lease's length.
        return self.now - demand.updated_at < max(policy.lease_s, self.timeout)

    def _fresh(self, hb: Heartbeat) -> bool:
        return self.now - hb.received_at <= self.policy.heartbeat_gap_s

    def _busy_heartbeats(self) -> list[Heartbeat]:
        return [
            hb
            for hb in self.state.heartbeats.values()
            if self._fresh(hb) and (hb.busy or hb.running > 0 or hb.waiting > 0)
        ]

    def _booting(self, inst: Instance) -> bool:
        """Started and not serving yet: no ready heartbeat since the start, and still
        inside the boot grace (a VM that never gets ready is idle after it)."""
        la = inst.last_action
        started = la.issued_at if la is not None and la.kind == ActionKind.START else None
        since = inst.running_since or started
        if inst.desired != Desired.RUNNING or since is None:
            return False
        if self.now - since >= self.policy.boot_grace_s:
            return False
        hb = self.state.heartbeats.get(inst.name)
        return hb is None or not hb.ready or hb.received_at < since

    def _last_request(self, lease: Lease) -> float | None:
        served = [hb.last_request_at for hb in self.state.heartbeats.values()]
        return max((t for t in served if t is not None and t >= lease.granted_at), default=None)

    def _idle_for(self) -> float:
        """How long the pool has had nothing to do; booting counts as work (a woken VM
        must live to serve, whatever the keep-alive), the clock starts when it is ready."""
        lease = self.lease
        assert lease is not None
        if self._demand_active() or self._busy_heartbeats():
            return 0.0
        if any(self._booting(i) for i in self.instances.values()):
            return 0.0
        marks = [lease.granted_at, lease.active_at or lease.granted_at]
        marks += [i.running_since for i in self.instances.values() if i.running_since]
        for hb in self.state.heartbeats.values():
            marks += [t for t in (hb.last_busy_at, hb.last_request_at) if t is not None]
            marks += [hb.ready_since] if hb.ready_since is not None else []
        if self.state.demand.updated_at is not None and self.state.demand.depth > 0:
            marks.append(self.state.demand.updated_at)
        return self.now - max(marks)

    # --- instance rules (5, 7, 8) ---------------------------------------------------

    def run_instance_rules(self) -> None:
        lease = self.lease
        if lease is None or not lease.valid(self.now):
            return
        for name in self.policy.instances:
            inst = self.instances[name]
            if inst.retired_epoch == lease.epoch or inst.error:
                continue
            cooling = inst.next_start_at is not None and self.now < inst.next_start_at
            if self._over_max_session(inst):
                self.instances[name] = replace(inst, retired_epoch=lease.epoch)
                self.note(
                    Rule.MAX_SESSION,
                    f"{name} ran {self.policy.max_session_s:.0f}s: "
                    "stopped for the rest of this lease",
                    name,
                )
            elif not cooling and self._heartbeat_gap(inst):
                self._restart(inst, Rule.HEARTBEAT_GAP, "no heartbeat")
            elif self._preempted(inst):
                self._restart(inst, Rule.PREEMPTED, f"observed {inst.observed}")
        eligible = [n for n in self.policy.instances if self._eligible(self.instances[n])]
        if not eligible and self.policy.instances:
            self.note(Rule.LEASE, "no instance can run under this lease: released")
            self.lease = None

    def _eligible(self, inst: Instance) -> bool:
        lease = self.lease
        return lease is not None and inst.retired_epoch != lease.epoch and inst.error is None

    def _over_max_session(self, inst: Instance) -> bool:
        return (
            inst.observed in RUNNING_STATUSES
            and inst.running_since is not None
            and self.now - inst.running_since >= self.policy.max_session_s
        )

    def _heartbeat_gap(self, inst: Instance) -> bool:
        if inst.observed != "RUNNING" or inst.running_since is None:
            return False
        if self.now - inst.running_since < self.policy.boot_grace_s:
            return False
        hb = self.state.heartbeats.get(inst.name)
        last = hb.received_at if hb is not None and hb.received_at >= inst.running_since else None
        return self.now - (last if last is not None else inst.running_since) >= (
            self.policy.heartbeat_gap_s
        )

    def _preempted(self, inst: Instance) -> bool:
        la = inst.last_action
        return (
            inst.desired == Desired.RUNNING
            and inst.observed in STOPPED_STATUSES
            and la is not None
            and la.kind == ActionKind.START
            and actions.done(la)
            and inst.observed_at is not None
            and inst.observed_at > la.issued_at
        )

    def _restart(self, inst: Instance, rule: Rule, what: str) -> None:
        lease = self.lease
        assert lease is not None
        la = inst.last_action
        if (
            la is not None
            and la.kind == ActionKind.STOP
            and actions.pending(la)
            and inst.restarts > 0
        ):
            # The restart's stop has not been carried out yet (its call died with its
            # process, or is being retried): the same restart, not another one. Keep the
            # instance cooling so that stop is re-issued; count nothing.
            next_start = self.now + self._backoff(inst.restarts)
            self.instances[inst.name] = replace(inst, next_start_at=next_start)
            return
        restarts = inst.restarts + 1
        if rule == Rule.PREEMPTED:
            where = capacity.key(self.policy.placement(inst.name))
            self.zones = capacity.preempted(self.zones, where, self.now)
        la = actions.supersede(la, rule.name.lower())
        if restarts > self.policy.restart_budget:
            self.instances[inst.name] = replace(
                inst, restarts=restarts, retired_epoch=lease.epoch, last_action=la
            )
            self.note(
                rule,
                f"{inst.name}: {what}; gave up after {self.policy.restart_budget} restarts",
                inst.name,
            )
            return
        delay = self._backoff(restarts)
        self.instances[inst.name] = replace(
            inst, restarts=restarts, next_start_at=self.now + delay, last_action=la
        )
        self.note(
            rule,
            f"{inst.name}: {what}; restart {restarts}/{self.policy.restart_budget} in {delay:.0f}s",
            inst.name,
        )

    def _backoff(self, restarts: int) -> float:
        """How long the ``restarts``-th restart waits: doubling from restart_backoff_s."""
        return float(self.policy.restart_backoff_s * 2.0 ** (restarts - 1))

    # --- desired state and actions ------------------------------------------------

    def _wanted_running(self) -> set[str]:
        lease = self.lease
        if lease is None or not lease.valid(self.now):
            return set()
        eligible = [n for n in self.policy.instances if self._eligible(self.instances[n])]
        demand = self.state.demand.depth if self._demand_active() else 0
        by_demand = demand // max(1, self.policy.queue_threshold)
        busy = [hb.instance for hb in self._busy_heartbeats()]
        wanted = max(1, min(len(eligible), max(by_demand, len(busy))))
        # Which ones: by zone health, provisioning, weights on disk, price.
        idle = [
            hb.instance
            for hb in self.state.heartbeats.values()
            if self._fresh(hb) and hb.ready and hb.instance not in busy
        ]
        return set(
            capacity.choose(
                self.policy, self.instances, self.zones, eligible, wanted, busy, idle, self.now
            )
        )

    def plan_actions(self) -> list[Action]:
        wanted = self._wanted_running()
        actions: list[Action] = []
        for name in sorted(self.instances):
            inst = self.instances[name]
            desired = Desired.RUNNING if name in wanted else Desired.STOPPED
            cooling = inst.next_start_at is not None and self.now < inst.next_start_at
            kind: ActionKind | None = None
            rule, reason = self._why(inst, desired)
            if desired == Desired.RUNNING and not cooling:
                if inst.observed in STOPPED_STATUSES or inst.observed == UNKNOWN:
                    kind = ActionKind.START
                elif self._unfinished(inst, ActionKind.START, ("PROVISIONING", "STAGING")):
                    kind = ActionKind.START  # wait on it again: the attempt budget bounds it
            elif self._needs_stop(inst) or self._unfinished(inst, ActionKind.STOP, ("STOPPING",)):
                kind = ActionKind.STOP
            if desired != inst.desired:
                inst = replace(inst, desired=desired)
            if kind is not None:
                before = inst.last_action
                inst, action = self._action(inst, kind, rule, reason)
                if action is not None:
                    actions.append(action)
                    fresh = before is None or before.request_id != action.request_id
                    if kind == ActionKind.START and fresh:
                        for why in capacity.skipped(self.policy, self.zones, name, self.now):
                            self.note(Rule.CAPACITY, f"start {name}: {why}", name)
            self.instances[name] = inst
        return actions

    @staticmethod
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

    def _needs_stop(self, inst: Instance) -> bool:
        if inst.observed in RUNNING_STATUSES:
            return True
        la = inst.last_action
        return (
            inst.observed == UNKNOWN
            and la is not None
            and la.kind == ActionKind.START
            and la.outcome != OutcomeKind.CAPACITY  # refused: never started
        )

    def _why(self, inst: Instance, desired: Desired) -> tuple[Rule, str]:
        """The highest-priority rule that explains the desired status of ``inst``."""
        for change in reversed(self.changes):
            if change.instance == inst.name:
                return change.rule, change.reason
        if desired == Desired.RUNNING:
            lease = self.lease
            assert lease is not None
            return Rule.LEASE, f"lease epoch {lease.epoch} held by {lease.holder}"
        if self.blocked is not None:
            return self.blocked.rule, self.blocked.reason
        if inst.orphan:
            return Rule.ORPHAN, f"{inst.name} is labelled for the pool but not configured"
        for change in reversed(self.changes):
            if change.instance is None and change.rule != Rule.LEASE:
                return change.rule, change.reason
        if self.lease is None:
            return Rule.NO_LEASE, "no valid lease"
        return Rule.LEASE, f"not needed under lease epoch {self.lease.epoch}"

    def _action(
        self, inst: Instance, kind: ActionKind, rule: Rule, reason: str
    ) -> tuple[Instance, Action | None]:
        la = inst.last_action
        if la is not None and la.kind == kind and la.outcome is None:
            # Observed unchanged after it was issued: its call died with its process.
            lost = self.observed_at is not None and la.issued_at < self.observed_at
            if not lost and self.now - la.issued_at < self.policy.action_retry_s:
                return inst, None  # in flight: its executor is on it
            return self._issue(inst, la.epoch, la.request_id, kind, rule, reason, la.attempts)
        if la is not None and la.kind == kind and la.outcome == OutcomeKind.RETRY:
            wait = self.policy.action_retry_s * 2 ** max(0, la.attempts - 1)
            if self.now - la.issued_at < wait:
                return inst, None
            return self._issue(inst, la.epoch, la.request_id, kind, rule, reason, la.attempts)
        if inst.error and kind == ActionKind.START:
            return inst, None
        epoch = self.bump_epoch()
        rid = request_id(self.state.pool, inst.name, epoch, kind)
        return self._issue(inst, epoch, rid, kind, rule, reason, 0)

    def _issue(
        self,
        inst: Instance,
        epoch: int,
        rid: str,
        kind: ActionKind,
        rule: Rule,
        reason: str,
        attempts: int,
    ) -> tuple[Instance, Action]:
        record = ActionRecord(
            kind, epoch, rid, self.now, f"{rule.value}: {reason}", attempts=attempts
        )
        zone = self.policy.placement(inst.name).zone
        action = Action(kind, self.state.pool, inst.name, zone, epoch, rid, rule, reason)
        return replace(inst, last_action=record), action
