"""The service: handle(fact) and reconcile(pool) — the transaction boundary.

Invariants (DESIGN.md §3):
- A fact is recorded in the event log exactly once (keyed by its origin, the topic, and
  its message id: ``fact_event_id``) in the same transaction that folds it into the pool
  state; a redelivery only re-reconciles.
- Each reconcile reads the pool and the kill switch, decides and writes in ONE store
  transaction; Compute is called only after that commit, with the action's request id.
- The kill switch is re-read immediately before every start. A kill always engages it;
  an unkill is ignored when published before the switch was engaged, by the switch's
  ``changed_at`` (the control plane's clock or the store's commit time), never by an
  ``at`` a client wrote. Operator start/stop/extend apply in publish order
  (domain/facts.py).
- Every action's outcome is recorded; temporary failures raise TemporaryError after all
  actions were tried (so Pub/Sub redelivers), permanent ones are recorded and swallowed.
- Pending batch work is queue demand (source ``work``) for as long as it is pending: each
  tick records the pool's pending shards (``work_demand``), and zero once they are done
  (only over its own count: a producer's depth or an incident clears itself).
- A capacity refusal (CapacityError) is recorded (its zone backs off) and the pool is
  reconciled again at once, so the next healthy zone is tried in the same event; each
  round backs off one more zone, so the rounds end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from . import logs
from .config import Config
from .domain import spend
from .domain.budget import BudgetRules, is_ours, kill_reason
from .domain.codec import to_doc
from .domain.decide import Decision, decide
from .domain.facts import (
    BudgetNotified,
    Fact,
    HeartbeatReceived,
    KillRequested,
    KillSwitchWritten,
    QueueDepthObserved,
    StatusObserved,
    Tick,
    UnkillRequested,
    apply_fact,
    kind_of,
)
from .domain.heartbeats import matters, merge
from .domain.model import (
    RUNNING_STATUSES,
    STOPPED_STATUSES,
    TRANSITIONAL_STATUSES,
    Action,
    ActionKind,
    Heartbeat,
    KillSwitch,
)
from .domain.outcomes import Outcome, record_outcome
from .domain.spend import NO_SPEND, Spend
from .errors import (
    CapacityError,
    InstanceNotFound,
    InvalidMessage,
    PermanentError,
    TemporaryError,
)
from .ports import Clock, Compute, Event, Store, Transaction


@dataclass(frozen=True)
class Handled:
    """What handle() did, for the entry points, the CLI and the tests."""

    fact: str
    duplicate: bool = False
    pools: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    note: str = ""


def fact_event_id(fact: Fact) -> str:
    """``fact:<origin>:<message id>``: Pub/Sub message ids are unique only per topic."""
    return f"fact:{fact.origin or kind_of(fact)}:{fact.message_id}"


def _recorded(tx: Transaction, fact: Fact) -> bool:
    """The fact is in the event log: under its id, or under the id an earlier version
    gave it (``fact:<kind>:<message id>``, still in stores written before ids carried
    the origin: a message delivered before an upgrade and again after it is still a
    duplicate). It costs one more document read per new fact; once ``event_ttl_days``
    have passed since the upgrade no store holds an old id and the check can go."""
    legacy = f"fact:{kind_of(fact)}:{fact.message_id}"
    return tx.has_event(fact_event_id(fact)) or (
        legacy != fact_event_id(fact) and tx.has_event(legacy)
    )


WORK_DEMAND_SOURCE = "work"


class Service:
    def __init__(
        self,
        store: Store,
        compute: Compute,
        clock: Clock,
        config: Config,
        work_demand: Callable[[str], int] | None = None,
    ) -> None:
        self.store = store
        self.compute = compute
        self.clock = clock
        self.config = config
        self.work_demand = work_demand  # a pool's pending batch shards (batch/service.py)
        self.budget_rules = BudgetRules(
            config.budget.budget_ids,
            config.budget.kill_fraction,
            config.budget.kill_thresholds,
            config.budget.forecast_kill,
        )

    # --- entry -----------------------------------------------------------------------

    def handle(self, fact: Fact) -> Handled:
        pool = getattr(fact, "pool", None)
        if pool is not None and pool not in self.config.pools:
            raise InvalidMessage(f"unknown pool {pool!r} (configured: {sorted(self.config.pools)})")
        if isinstance(fact, HeartbeatReceived):
            return self._heartbeat(fact)
        if isinstance(fact, Tick):
            return self._tick(fact)
        if isinstance(fact, (KillRequested, UnkillRequested, KillSwitchWritten, BudgetNotified)):
            return self._global(fact)
        assert pool is not None, f"{kind_of(fact)} has no pool"
        decision, duplicate = self.reconcile(pool, fact)
        return Handled(kind_of(fact), duplicate, (pool,), decision.actions)

    def reconcile(
        self, pool: str, fact: Fact | None = None, observation: StatusObserved | None = None
    ) -> tuple[Decision, bool]:
        """One transaction: (record fact) → apply → decide → write; then execute."""
        policy = self.config.policy(pool)
        others = self._others_spend(pool)

        def txn(tx: Transaction) -> tuple[Decision, bool]:
            now = self.clock.now()
            kill = tx.load_kill()
            loaded = tx.load_pool(pool)
            state = loaded
            duplicate = fact is not None and _recorded(tx, fact)
            events: list[Event] = []
            # A redelivered heartbeat is folded in again (idempotent): its instance document
            # is written only after this transaction, so this may be the only place it is.
            again = duplicate and isinstance(fact, HeartbeatReceived)
            for item in (fact if not duplicate or again else None, observation):
                if item is None:
                    continue
                if item is fact and not duplicate:
                    events.append(self._fact_event(item, now))
                state, changes = apply_fact(state, item, policy, now)
                if changes:
                    events.append(self._decision_event(pool, now, changes, (), state.epoch))
            seen_at = observation.at if observation is not None else None
            decision = decide(state, kill, policy, now, others, seen_at)
            if decision.changes or decision.actions:
                events.append(
                    self._decision_event(
                        pool,
                        now,
                        decision.changes,
                        decision.actions,
                        decision.state.epoch,
                        fact.message_id if fact else "",
                    )
                )
            # Heartbeats live in their own documents: they alone never rewrite the pool.
            if replace(decision.state, heartbeats=loaded.heartbeats) != loaded:
                tx.save_pool(decision.state)
            for event in events:
                tx.append(event)
            return decision, duplicate

        decision, duplicate = self.store.transact(txn)
        for change in decision.changes:
            logs.info(
                change.reason,
                pool=pool,
                rule=change.rule.value,
                instance=change.instance,
                message_id=fact.message_id if fact else None,
            )
        self.execute(decision.actions)
        return decision, duplicate

    def _others_spend(self, pool: str) -> Spend:
        """The other pools' spend, for the caps across pools (config.caps).

        Read outside the transaction (pools never contend); a stale read is bounded by
        one tick of the other pools' price. Nothing is read when no overall cap is set.
        """
        caps = self.config.caps
        if caps.daily_usd is None and caps.monthly_usd is None:
            return NO_SPEND
        pools = [(self.store.get_pool(p), pol) for p, pol in self.config.pools.items() if p != pool]
        return spend.others(
            pools, self.clock.now(), self.config.timezone, caps.daily_usd, caps.monthly_usd
        )

    def reconcile_all(self) -> list[Action]:
        return self._each_pool(lambda pool: self.reconcile(pool)[0].actions)

    def _each_pool(self, fn: Callable[[str], Iterable[Action]]) -> list[Action]:
        """``fn`` for every pool, even when one fails: a pool whose Compute calls fail must
        not starve the others (nor keep the kill switch from them); the failures raise
        together at the end, so the event is redelivered."""
        actions: list[Action] = []
        failures: list[str] = []
        for pool in self.config.pools:
            try:
                actions.extend(fn(pool))
            except TemporaryError as exc:
                failures.append(f"{pool}: {exc}")
        if failures:
            raise TemporaryError("; ".join(failures))
        return actions

    # --- fact kinds ------------------------------------------------------------------

    def _heartbeat(self, fact: HeartbeatReceived) -> Handled:
        policy = self.config.policy(fact.pool)
        if fact.heartbeat.instance not in policy.instances:
            raise InvalidMessage(
                f"instance {fact.heartbeat.instance!r} is not in pool {fact.pool!r}"
            )
        hb = replace(fact.heartbeat, received_at=self.clock.now())
        known = self.store.get_heartbeat(fact.pool, hb.instance)
        first = merge(known, hb)
        if first is not None and matters(known, first):
            # Record and reconcile BEFORE the instance document changes: if this process
            # dies in between, the document still holds the old report, so the redelivery
            # (or the next report) still matters and is reconciled and logged.
            decision, duplicate = self.reconcile(fact.pool, replace(fact, heartbeat=first))
            self.store.put_heartbeat(fact.pool, hb)
            return Handled(kind_of(fact), duplicate, (fact.pool,), decision.actions)
        previous = self.store.put_heartbeat(fact.pool, hb)
        stored = merge(previous, hb)
        if stored is None and previous is not None and _same_report(previous, hb):
            # A redelivery: the beat was stored but its reconcile may have failed. The
            # reconcile is idempotent on the fact id, so run it again.
            decision, duplicate = self.reconcile(fact.pool, replace(fact, heartbeat=previous))
            return Handled(kind_of(fact), duplicate, (fact.pool,), decision.actions)
        if stored is None:
            return Handled(kind_of(fact), pools=(fact.pool,), note="stale heartbeat ignored")
        if not matters(previous, stored):
            return Handled(kind_of(fact), pools=(fact.pool,), note="heartbeat recorded")
        decision, duplicate = self.reconcile(fact.pool, replace(fact, heartbeat=stored))
        return Handled(kind_of(fact), duplicate, (fact.pool,), decision.actions)

    def _tick(self, fact: Tick) -> Handled:
        duplicate = self._record_global(fact, None)

        def observe_and_reconcile(pool: str) -> Iterable[Action]:
            self._observe_work(fact, pool)
            observed_at = self.clock.now()
            listed = [
                i
                for zone in self.config.pools[pool].zones
                for i in self.compute.list_instances(pool, zone)
            ]
            observation = StatusObserved(
                message_id=fact.message_id,
                at=observed_at,
                pool=pool,
                statuses={i.name: i.status for i in listed},
            )
            return self.reconcile(pool, observation=observation)[0].actions

        actions = self._each_pool(observe_and_reconcile)
        return Handled(kind_of(fact), duplicate, tuple(self.config.pools), tuple(actions))

    def _observe_work(self, tick: Tick, pool: str) -> None:
        """Record the pool's pending batch shards as queue demand (zero once they are done)."""
        if self.work_demand is None:
            return
        try:
            depth = self.work_demand(pool)
        except Exception as exc:  # the lifecycle tick goes on regardless:
            # whatever a batch's objects hold (written by VMs), every pool is still
            # listed and reconciled, so every stop path of the tick still runs.
            logs.warning(
                f"pending batch work unknown this tick: {type(exc).__name__}: {exc}", pool=pool
            )
            return
        if depth == 0:  # clear only what this count set: others' depths clear themselves
            demand = self.store.get_pool(pool).demand
            if demand.source != WORK_DEMAND_SOURCE or demand.depth == 0:
                return
        message_id = f"{tick.message_id}:work:{pool}"
        observed = QueueDepthObserved(message_id, self.clock.now(), pool, depth, WORK_DEMAND_SOURCE)
        self.reconcile(pool, observed)

    def _global(self, fact: Fact) -> Handled:
        note = ""

        def new_kill(current: KillSwitch, now: float) -> KillSwitch | None:
            nonlocal note
            if isinstance(fact, KillRequested):  # never dropped, whatever came before
                note = "kill switch engaged"
                return KillSwitch(True, fact.reason, fact.by, fact.at, changed_at=now)
            if isinstance(fact, UnkillRequested):
                engaged_at = current.changed_at if current.engaged else None
                if engaged_at is not None and fact.at < engaged_at:
                    note = "stale unkill ignored: published before the switch was engaged"
                    return None
                note = "kill switch lifted"
                return KillSwitch(False, f"lifted by {fact.by}", fact.by, fact.at, changed_at=now)
            if isinstance(fact, BudgetNotified):
                if not is_ours(fact, self.budget_rules):
                    note = f"budget {fact.budget_id!r} is not configured: ignored"
                    return None
                reason = kill_reason(fact, self.budget_rules)
                if reason is None:
                    note = f"budget update: {fact.cost:.2f} of {fact.amount:.2f}: no action"
                    return None
                if current.engaged and current.reason.startswith("budget:"):
                    note = "budget kill already engaged"
                    return None
                note = f"kill switch engaged: {reason}"
                return KillSwitch(True, reason, "budget", now, changed_at=now)
            note = f"kill switch written: engaged={current.engaged}"
            return None

        duplicate = self._record_global(fact, new_kill)
        actions: list[Action] = []
        if not (isinstance(fact, BudgetNotified) and note.endswith(("ignored", "no action"))):
            actions = self.reconcile_all()
        logs.info(note or kind_of(fact), message_id=fact.message_id, source=kind_of(fact))
        return Handled(kind_of(fact), duplicate, tuple(self.config.pools), tuple(actions), note)

    def _record_global(self, fact: Fact, new_kill: Any) -> bool:
        def txn(tx: Transaction) -> bool:
            now = self.clock.now()
            if _recorded(tx, fact):
                return True
            current = tx.load_kill()
            kill = new_kill(current, now) if new_kill is not None else None
            tx.append(self._fact_event(fact, now))
            if kill is not None:
                tx.save_kill(kill)
            return False

        return self.store.transact(txn)

    # --- actions ---------------------------------------------------------------------

    def execute(self, actions: Iterable[Action]) -> None:
        temporary: list[str] = []
        started: set[str] = set()
        again: set[str] = set()
        for action in actions:
            if action.kind == ActionKind.START:
                kill = self.store.get_kill()
                if kill.engaged:
                    self._outcome(action, Outcome.SKIPPED, "kill switch engaged")
                    continue
            try:
                call = self.compute.start if action.kind == ActionKind.START else self.compute.stop
                call(action.zone, action.instance, action.request_id)
            except CapacityError as exc:
                self._outcome(action, Outcome.CAPACITY, str(exc))
                again.add(action.pool)  # try the next healthy zone now
            except TemporaryError as exc:
                temporary.append(f"{action.kind} {action.instance}: {exc}")
                self._outcome(action, Outcome.TEMPORARY, str(exc))
            except InstanceNotFound as exc:
                self._outcome(action, Outcome.NOT_FOUND, str(exc))
            except PermanentError as exc:
                self._outcome(action, Outcome.PERMANENT, str(exc))
            else:
                seen = self._status(action)
                self._outcome(action, Outcome.DONE, "", seen)
                if action.kind == ActionKind.START:
                    started.add(action.pool)
                if seen is not None and seen not in _GOAL[action.kind]:
                    again.add(action.pool)  # answered from a spent operation: decide anew
        # A kill engaged between the re-read and the call saw no running VM to stop:
        # look once more, now that the start is on record.
        if started and self.store.get_kill().engaged:
            again |= started
        for pool in sorted(again):
            self.reconcile(pool)
        if temporary:
            raise TemporaryError("; ".join(temporary))

    def _status(self, action: Action) -> str | None:
        """What Compute says of the instance right after a DONE call (None: unknown)."""
        try:
            return self.compute.get(action.zone, action.instance).status
        except (TemporaryError, PermanentError):
            return None

    def _outcome(
        self, action: Action, outcome: Outcome, detail: str, seen: str | None = None
    ) -> None:
        policy = self.config.policy(action.pool)

        def txn(tx: Transaction) -> None:
            now = self.clock.now()
            state = tx.load_pool(action.pool)
            new, current = record_outcome(state, action, outcome, detail, policy, now, seen)
            if current:
                tx.save_pool(new)
                record = new.instances[action.instance].last_action
                said = record.outcome if record is not None and record.outcome else outcome
            else:
                said = f"{outcome.value}: {detail} (stale)" if detail else f"{outcome} (stale)"
            tx.append(
                Event(
                    id=f"action:{action.request_id}:{uuid.uuid4().hex[:8]}",
                    kind="action",
                    at=now,
                    pool=action.pool,
                    reason=f"{action.kind} {action.instance}: {said}",
                    data={"action": to_doc(action), "outcome": outcome.value, "detail": detail},
                )
            )

        self.store.transact(txn)
        severity = "INFO" if outcome in (Outcome.DONE, Outcome.SKIPPED) else "WARNING"
        if outcome == Outcome.CAPACITY:
            detail = f"zone {action.zone} has no capacity, backing off: {detail}"
        logs.log(
            severity,
            f"{action.kind} {action.instance}: {outcome.value} {detail}".strip(),
            pool=action.pool,
            instance=action.instance,
            rule=action.rule.value,
        )

    # --- event log -------------------------------------------------------------------

    def reject(self, message_id: str, source: str, reason: str) -> None:
        """Record a malformed or foreign message (it is acknowledged, not retried)."""
        now = self.clock.now()
        event = Event(
            id=f"rejected:{source}:{message_id or uuid.uuid4().hex}",
            kind="rejected",
            at=now,
            message_id=message_id,
            reason=reason,
            data={"source": source},
        )
        self.store.transact(lambda tx: None if tx.has_event(event.id) else tx.append(event))

    @staticmethod
    def _fact_event(fact: Fact, now: float) -> Event:
        return Event(
            id=fact_event_id(fact),
            kind="fact",
            at=now,
            pool=getattr(fact, "pool", ""),
            message_id=fact.message_id,
            reason=kind_of(fact),
            data={"fact": kind_of(fact), **to_doc(fact)},
        )

    @staticmethod
    def _decision_event(
        pool: str,
        now: float,
        changes: Iterable[Any],
        actions: Iterable[Action],
        epoch: int,
        message_id: str = "",
    ) -> Event:
        changes, actions = list(changes), list(actions)
        reason = "; ".join(c.reason for c in changes) or "; ".join(
            f"{a.kind} {a.instance}: {a.reason}" for a in actions
        )
        return Event(
            id=f"decision:{pool}:{uuid.uuid4().hex}",
            kind="decision",
            at=now,
            pool=pool,
            message_id=message_id,
            reason=reason,
            data={
                "epoch": epoch,
                "changes": [to_doc(c) for c in changes],
                "actions": [to_doc(a) for a in actions],
            },
        )


# The statuses a DONE action may leave its instance in.
_GOAL = {
    ActionKind.START: RUNNING_STATUSES,
    ActionKind.STOP: STOPPED_STATUSES | TRANSITIONAL_STATUSES,
}


def _same_report(stored: Heartbeat, new: Heartbeat) -> bool:
    return stored.boot_id == new.boot_id and stored.sent_at == new.sent_at
