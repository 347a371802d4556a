"""The service: handle(fact) → decide in one transaction → act → record the outcomes.

Shape (docs/architecture.md): ``handle`` validates a fact and reconciles every pool it
touches. Reconciling a pool is a short loop of passes (``reconcile``); each pass is ONE
store transaction (``_pass``) that records the outcomes of the previous pass's Compute
calls, folds in the fact (first pass only), decides and writes; then its actions are
executed (``execute``: Compute calls, and nothing written to the store). Whether to look
again is a value the pass and the outcomes carry (``Pass.again``, ``Executed.again``),
never a call back into the service; the loop is bounded (``MAX_PASSES``).

Invariants (DESIGN.md §3):
- A fact is recorded in the event log exactly once (keyed by its origin, the topic, and
  its message id: ``fact_event_id``) in the same transaction that folds it into the pool
  state; a redelivery only re-reconciles.
- Each pass reads the pool and the kill switch, (records outcomes,) decides and writes in
  ONE store transaction; Compute is called only after that commit, with the action's
  request id — but for the brake's stops (below), which need no decision to be safe.
- The brake: an event that engages the kill switch (a kill, the switch's document
  written, a budget over its limit) first issues every stop the engaged switch calls
  for, in every pool, at once (``fanout.stops`` in flight), from reads outside any
  transaction and decide()'s request ids; only then does each pool's reconcile decide
  in its transaction, and a pass that decides one of those stops records its outcome
  instead of calling it again. The brake never starts anything, so a stale read costs
  at most a stop the kill wanted anyway (or one Compute dedupes by its request id).
- Pools are independent documents: a tick, and the reconciles after a kill, work on
  ``fanout.pools`` pools at once; each pool is still reconciled by one thread, pass after
  pass, and every pool is tried even when others fail (the failures raise at the end).
- The kill switch is re-read immediately before every start. A kill always engages it;
  an unkill is ignored when published before the switch was engaged, by the switch's
  ``changed_at`` (the control plane's clock or the store's commit time), never by an
  ``at`` a client wrote. Operator start/stop/extend apply in publish order
  (domain/facts.py). A start that the kill switch overtook (engaged after the re-read)
  is looked at again at once, so the VM it started is stopped in the same event (while
  the event is within ``MAX_PASSES``; past it, by the next tick's reconcile).
- Every action's outcome is recorded (in the next pass's transaction); temporary failures
  raise TemporaryError after all actions were tried and recorded (so Pub/Sub
  redelivers), permanent ones are recorded and swallowed. A missing instance is told by
  its error type (InstanceNotFound), never by the text of a message.
- The lifecycle tick never reads a batch: pending batch work reaches a pool as the batch
  controller's fact (BatchDemandObserved → ``PoolState.batch``, batch/controller.py), in
  the pool's own document; nothing a VM writes into Storage can slow or break a tick.
- A capacity refusal (CapacityError) is recorded (its zone backs off) and the pass that
  records it decides again at once, so the next healthy zone is tried in the same event;
  each pass backs off one more zone, so the passes end (and MAX_PASSES bounds them).
- A heartbeat's instance document is written only after the pass that records a
  heartbeat that matters has committed: if the process dies in between, the document
  still holds the old report, so the redelivery (or the next report) still matters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import fanout, logs
from .config import Config
from .domain import scaling, spend
from .domain.budget import BudgetRules, is_ours, kill_reason
from .domain.codec import to_doc
from .domain.decide import Decision, decide
from .domain.facts import (
    BudgetNotified,
    ColdStartReported,
    Fact,
    HeartbeatReceived,
    KillRequested,
    KillSwitchWritten,
    StatusObserved,
    Tick,
    UnkillRequested,
    apply_fact,
    kind_of,
    pool_of,
)
from .domain.heartbeats import matters, merge
from .domain.model import (
    RUNNING_STATUSES,
    STOPPED_STATUSES,
    TRANSITIONAL_STATUSES,
    Action,
    ActionKind,
    Heartbeat,
    KillSource,
    KillSwitch,
    PoolPolicy,
    PoolState,
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
from .ports import Clock, Compute, Event, PoolDocuments, Store, Transaction


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


def cold_start_event(fact: ColdStartReported) -> Event:
    """The ``cold-start`` event of a gateway's report: one per pool and lease epoch (the
    first report wins; gateway/coldstarts.py reads it back), at its publish time."""
    return Event(
        id=f"cold-start:{fact.pool}:{fact.epoch}",
        kind="cold-start",
        at=fact.at,
        pool=fact.pool,
        reason=f"cold start: request held {fact.held_s:.1f}s, served by {fact.instance}",
        data={
            "instance": fact.instance,
            "held_s": fact.held_s,
            "epoch": fact.epoch,
            "phases": dict(fact.phases),
        },
    )


MAX_PASSES = 8  # passes that may decide in one reconcile (one more records the last outcomes)


@dataclass(frozen=True)
class Executed:
    """One action's Compute call and what came of it (recorded by the next pass)."""

    action: Action
    outcome: Outcome
    detail: str = ""
    seen: str | None = None  # the status Compute reported right after a DONE call

    @property
    def again(self) -> bool:
        """Decide again at once: the zone refused (try the next one), or a DONE was
        answered from a spent operation and the instance is not where the action left it."""
        if self.outcome == Outcome.CAPACITY:
            return True
        return self.seen is not None and self.seen not in _GOAL[self.action.kind]

    @property
    def started(self) -> bool:
        return self.outcome == Outcome.DONE and self.action.kind == ActionKind.START


@dataclass(frozen=True)
class Pass:
    """What one pass of a pool committed: its decision, and whether to look again."""

    decision: Decision
    duplicate: bool = False
    again: bool = False  # a start the kill switch overtook: decide once more


@dataclass(frozen=True)
class Reconciled:
    """A pool's reconcile: whether its fact was a duplicate, every action of its passes."""

    duplicate: bool
    actions: tuple[Action, ...]


class Service:
    def __init__(
        self,
        store: Store,
        compute: Compute,
        clock: Clock,
        config: Config,
    ) -> None:
        self.store = store
        self.compute = compute
        self.clock = clock
        self.config = config
        self.budget_rules = BudgetRules(
            config.budget.budget_ids,
            config.budget.kill_fraction,
            config.budget.kill_thresholds,
            config.budget.forecast_kill,
        )

    # --- entry -----------------------------------------------------------------------

    def handle(self, fact: Fact) -> Handled:
        pool = pool_of(fact)
        if pool is not None and pool not in self.config.pools:
            raise InvalidMessage(f"unknown pool {pool!r} (configured: {sorted(self.config.pools)})")
        if isinstance(fact, ColdStartReported):
            if fact.pool not in self.config.pools:
                raise InvalidMessage(f"unknown pool {fact.pool!r}")
            self.record(cold_start_event(fact))
            return Handled(kind_of(fact), pools=(fact.pool,))
        if isinstance(fact, HeartbeatReceived):
            return self._heartbeat(fact)
        if isinstance(fact, Tick):
            return self._tick(fact)
        if isinstance(fact, (KillRequested, UnkillRequested, KillSwitchWritten, BudgetNotified)):
            return self._global(fact)
        assert pool is not None, f"{kind_of(fact)} has no pool"
        done = self.reconcile(pool, fact)
        return Handled(kind_of(fact), done.duplicate, (pool,), done.actions)

    def reconcile(
        self,
        pool: str,
        fact: Fact | None = None,
        observation: StatusObserved | None = None,
        issued: Mapping[str, Executed] | None = None,
    ) -> Reconciled:
        """Passes until no outcome asks to look again: decide → act → record (→ decide).

        ``issued``: the pool's stops the brake already called (by request id); a pass
        that decides one of them records that call's outcome instead of calling Compute
        again. One that no pass decided (the brake read the pool before a change) is
        recorded as stale by a last pass: every call made is in the event log.
        """
        called = dict(issued or {})
        step = first = self._pass(pool, (), fact, observation)
        actions, temporary, passes = list(step.decision.actions), [], 1
        while step.decision.actions or step.again:
            executed = self._execute(step.decision.actions, called)
            temporary += [e for e in executed if e.outcome == Outcome.TEMPORARY]
            passes += 1
            step = self._pass(pool, executed, look_again=passes <= MAX_PASSES)
            actions += step.decision.actions
        if called:
            self._pass(pool, tuple(called.values()), look_again=False)
        if temporary:
            raise TemporaryError(
                "; ".join(f"{e.action.kind} {e.action.instance}: {e.detail}" for e in temporary)
            )
        return Reconciled(first.duplicate, tuple(actions))

    def _pass(
        self,
        pool: str,
        executed: tuple[Executed, ...],
        fact: Fact | None = None,
        observation: StatusObserved | None = None,
        look_again: bool = True,
    ) -> Pass:
        """ONE transaction: record ``executed``'s outcomes → fold the fact → decide → write.

        A pass that only records outcomes decides when one of them asks to look again;
        a start the kill switch overtook asks the next pass to (``Pass.again``).
        """
        policy = self.config.policy(pool)
        decides = not executed or (look_again and any(e.again for e in executed))
        others = self._others_spend(pool) if decides else NO_SPEND
        started = any(e.started for e in executed)

        def txn(tx: Transaction) -> Pass:
            now = self.clock.now()
            kill = tx.load_kill() if decides or started else None
            loaded = tx.load_pool(pool)
            state = loaded
            events: list[Event] = []
            for done in executed:
                state, event = self._outcome(state, done, policy, now)
                events.append(event)
            duplicate = fact is not None and _recorded(tx, fact)
            state, folded = self._fold(state, fact, duplicate, observation, policy, now)
            events += folded
            if decides and kill is not None:
                seen_at = observation.at if observation is not None else None
                decision = decide(state, kill, policy, now, others, seen_at)
            else:
                decision = Decision(state, (), ())
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
            overtaken = not decides and started and kill is not None and kill.engaged
            return Pass(decision, duplicate, look_again and overtaken)

        step = self.store.transact(txn)
        for done in executed:
            _log_outcome(done)
        for change in step.decision.changes:
            logs.info(
                change.reason,
                pool=pool,
                rule=change.rule.value,
                instance=change.instance,
                message_id=fact.message_id if fact else None,
            )
        return step

    def _fold(
        self,
        state: PoolState,
        fact: Fact | None,
        duplicate: bool,
        observation: StatusObserved | None,
        policy: PoolPolicy,
        now: float,
    ) -> tuple[PoolState, list[Event]]:
        """``state`` with the fact (unless a duplicate) and the observation folded in, and
        the events recording the fact and explaining each change."""
        events: list[Event] = []
        # A redelivered heartbeat is folded in again (idempotent): its instance document
        # is written only after this transaction, so this may be the only place it is.
        refold = duplicate and isinstance(fact, HeartbeatReceived)
        for item in (fact if not duplicate or refold else None, observation):
            if item is None:
                continue
            if item is fact and not duplicate:
                events.append(self._fact_event(item, now))
            state, changes = apply_fact(state, item, policy, now)
            if changes:
                events.append(self._decision_event(state.pool, now, changes, (), state.epoch))
        return state, events

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

    def reconcile_all(self, brake: bool = False) -> list[Action]:
        """Reconcile every pool; with ``brake``, the kill's stops are issued first, all
        at once (``_brake``), and each pool's reconcile records them."""
        issued: dict[str, dict[str, Executed]] = {}
        for done in self._brake() if brake else ():
            issued.setdefault(done.action.pool, {})[done.action.request_id] = done
        return self._each_pool(lambda pool: self.reconcile(pool, issued=issued.get(pool)).actions)

    def _brake(self) -> list[Executed]:
        """With the kill switch engaged: every stop it calls for, in every pool, issued
        at once (``fanout.stops`` in flight), before any pool's transaction.

        Every pool is read outside a transaction (in batched reads where the store can:
        ports.PoolDocuments; else ``fanout.pools`` at a time) and decide() (pure) names
        the stops the pool's next pass will decide, with their request ids (uuid5 of
        pool, instance, epoch, action). A read that is stale by then is harmless: the
        switch is engaged, so decide() asks only for stops (a start is never issued
        here), the pass decides afresh in its transaction, and a stop whose request id
        it does not decide is only a stop Compute dedupes or that the kill wanted
        anyway (recorded as stale). Nothing is written here; the passes record the
        outcomes. A pool that cannot be read is left to its reconcile, which stops it
        the usual way.
        """
        try:
            kill = self.store.get_kill()
        except TemporaryError as exc:
            logs.warning(f"brake: kill switch not read, the reconciles stop every VM: {exc}")
            return []
        if not kill.engaged:
            return []
        now = self.clock.now()

        pools = list(self.config.pools)
        read: dict[str, PoolState] | None = None
        if isinstance(self.store, PoolDocuments):  # every pool in a few batched reads
            try:
                read = self.store.get_pools(pools)
            except TemporaryError as exc:
                logs.warning(f"brake: pools not read at once, one by one: {exc}")

        def planned(pool: str) -> list[Action]:
            # A pool without a document has nothing to stop; heartbeats play no part
            # while the switch is engaged (every instance is desired stopped).
            state = read.get(pool) if read is not None else self.store.get_pool(pool)
            if state is None:
                return []
            decision = decide(state, kill, self.config.policy(pool), now, NO_SPEND)
            return [a for a in decision.actions if a.kind == ActionKind.STOP]

        limit = self.config.fanout.stops
        stops: list[Action] = []
        reads = fanout.each(pools, planned, 1 if read is not None else self.config.fanout.pools)
        for pool, plan in zip(pools, reads, strict=True):
            if isinstance(plan, Exception):
                logs.warning(f"brake: pool not read, its reconcile stops it: {plan}", pool=pool)
            else:
                stops += plan
        calls = fanout.each(stops, lambda a: self.execute((a,)), limit)
        done = [e for c in calls if not isinstance(c, Exception) for e in c]
        for error in (c for c in calls if isinstance(c, Exception)):  # never raised by execute
            logs.error(f"brake: stop not issued: {type(error).__name__}: {error}")
        logs.info(f"brake: {len(done)} stop(s) issued at once", stops=len(done))
        return done

    def _each_pool(self, fn: Callable[[str], Iterable[Action]]) -> list[Action]:
        """``fn`` for every pool, ``fanout.pools`` of them at once, even when one fails: a
        pool whose Compute calls fail must not starve the others (nor keep the kill
        switch from them); the failures raise together at the end, so the event is
        redelivered (a temporary one as TemporaryError; else the first other error)."""
        pools = list(self.config.pools)
        results = fanout.each(pools, lambda pool: list(fn(pool)), self.config.fanout.pools)
        actions: list[Action] = []
        failures: list[str] = []
        other: Exception | None = None
        for pool, result in zip(pools, results, strict=True):
            if isinstance(result, TemporaryError):
                failures.append(f"{pool}: {result}")
            elif isinstance(result, Exception):
                logs.error(f"{type(result).__name__}: {result}", pool=pool)
                other = other or result
            else:
                actions.extend(result)
        if failures:
            raise TemporaryError("; ".join(failures))
        if other is not None:
            raise other
        return actions

    # --- fact kinds ------------------------------------------------------------------

    def _heartbeat(self, fact: HeartbeatReceived) -> Handled:
        """Reconcile a heartbeat that matters, BEFORE its instance document changes (a
        report that does not matter is only stored: one read, one write)."""
        policy = self.config.policy(fact.pool)
        if fact.heartbeat.instance not in policy.instances:
            raise InvalidMessage(
                f"instance {fact.heartbeat.instance!r} is not in pool {fact.pool!r}"
            )
        hb = replace(fact.heartbeat, received_at=self.clock.now())
        known = self.store.get_heartbeat(fact.pool, hb.instance)
        report = merge(known, hb)
        store_after = report is not None and (
            matters(known, report) or scaling.load_matters(known, report, policy)
        )
        if not store_after:
            previous = self.store.put_heartbeat(fact.pool, hb)
            report, note = _after_storing(previous, hb)
            if report is None:
                return Handled(kind_of(fact), pools=(fact.pool,), note=note)
        assert report is not None
        done = self.reconcile(fact.pool, replace(fact, heartbeat=report))
        if store_after:
            self.store.put_heartbeat(fact.pool, hb)
        return Handled(kind_of(fact), done.duplicate, (fact.pool,), done.actions)

    def _tick(self, fact: Tick) -> Handled:
        duplicate = self._record_global(fact, None)

        def observe_and_reconcile(pool: str) -> Iterable[Action]:
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
            return self.reconcile(pool, observation=observation).actions

        actions = self._each_pool(observe_and_reconcile)
        return Handled(kind_of(fact), duplicate, tuple(self.config.pools), tuple(actions))

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
                if current.engaged and current.source == KillSource.BUDGET:
                    note = "budget kill already engaged"
                    return None
                note = f"kill switch engaged: {reason}"
                return KillSwitch(True, reason, "budget", now, changed_at=now)
            note = f"kill switch written: engaged={current.engaged}"
            return None

        duplicate = self._record_global(fact, new_kill)
        actions: list[Action] = []
        if not (isinstance(fact, BudgetNotified) and note.endswith(("ignored", "no action"))):
            # A kill (its command, its document's write, a budget that engaged it) brakes:
            # every stop at once, then each pool records its own.
            brake = isinstance(fact, (KillRequested, KillSwitchWritten)) or note.startswith(
                "kill switch engaged"
            )
            actions = self.reconcile_all(brake=brake)
        logs.info(note or kind_of(fact), message_id=fact.message_id, source=kind_of(fact))
        return Handled(kind_of(fact), duplicate, tuple(self.config.pools), tuple(actions), note)

    def _record_global(
        self, fact: Fact, new_kill: Callable[[KillSwitch, float], KillSwitch | None] | None
    ) -> bool:
        """Record a global fact once, and the kill switch ``new_kill`` makes of the current
        one (the switch is read only when there is a ``new_kill`` to ask)."""

        def txn(tx: Transaction) -> bool:
            now = self.clock.now()
            if _recorded(tx, fact):
                return True
            kill = new_kill(tx.load_kill(), now) if new_kill is not None else None
            tx.append(self._fact_event(fact, now))
            if kill is not None:
                tx.save_kill(kill)
            return False

        return self.store.transact(txn)

    # --- actions ---------------------------------------------------------------------

    def _execute(
        self, actions: Iterable[Action], called: dict[str, Executed]
    ) -> tuple[Executed, ...]:
        """execute(), but a stop in ``called`` (by request id: the brake issued it) is not
        called again: its outcome is taken (once) from there."""
        actions = tuple(actions)
        taken = {
            a.request_id: called.pop(a.request_id)
            for a in actions
            if a.kind == ActionKind.STOP and a.request_id in called
        }
        if not taken:
            return self.execute(actions)
        fresh = iter(self.execute([a for a in actions if a.request_id not in taken]))
        merged = [taken.get(a.request_id) or next(fresh, None) for a in actions]
        return tuple(e for e in merged if e is not None)

    def execute(self, actions: Iterable[Action]) -> tuple[Executed, ...]:
        """Call Compute for each action; write nothing (the next pass records them)."""
        executed: list[Executed] = []
        for action in actions:
            if action.kind == ActionKind.START:
                try:
                    engaged = self.store.get_kill().engaged
                except TemporaryError as exc:  # not started: retried, the event redelivered
                    executed.append(Executed(action, Outcome.TEMPORARY, str(exc)))
                    continue
                if engaged:
                    executed.append(Executed(action, Outcome.SKIPPED, "kill switch engaged"))
                    continue
            call = self.compute.start if action.kind == ActionKind.START else self.compute.stop
            try:
                call(action.zone, action.instance, action.request_id)
            except CapacityError as exc:
                executed.append(Executed(action, Outcome.CAPACITY, str(exc)))
            except TemporaryError as exc:
                executed.append(Executed(action, Outcome.TEMPORARY, str(exc)))
            except InstanceNotFound as exc:
                executed.append(Executed(action, Outcome.NOT_FOUND, str(exc)))
            except PermanentError as exc:
                executed.append(Executed(action, Outcome.PERMANENT, str(exc)))
            else:
                executed.append(Executed(action, Outcome.DONE, seen=self._status(action)))
        return tuple(executed)

    def _status(self, action: Action) -> str | None:
        """What Compute says of the instance right after a DONE call (None: unknown)."""
        try:
            return self.compute.get(action.zone, action.instance).status
        except (TemporaryError, PermanentError):
            return None

    @staticmethod
    def _outcome(
        state: PoolState, done: Executed, policy: PoolPolicy, now: float
    ) -> tuple[PoolState, Event]:
        """The state after ``done``'s outcome, and its entry in the event log."""
        action, outcome, detail = done.action, done.outcome, done.detail
        new, current = record_outcome(state, action, outcome, detail, policy, now, done.seen)
        if current:
            record = new.instances[action.instance].last_action
            said = record.said if record is not None and record.said else outcome
        else:
            said = f"{outcome.value}: {detail} (stale)" if detail else f"{outcome} (stale)"
        event = Event(
            id=f"action:{action.request_id}:{uuid.uuid4().hex[:8]}",
            kind="action",
            at=now,
            pool=action.pool,
            reason=f"{action.kind} {action.instance}: {said}",
            data={"action": to_doc(action), "outcome": outcome.value, "detail": detail},
        )
        return new, event

    # --- event log -------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Append an observation (the gateway's cold starts) to the event log, once per id."""
        self.store.transact(lambda tx: None if tx.has_event(event.id) else tx.append(event))

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
            pool=pool_of(fact) or "",
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


def _log_outcome(done: Executed) -> None:
    action, outcome, detail = done.action, done.outcome, done.detail
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


def _after_storing(previous: Heartbeat | None, hb: Heartbeat) -> tuple[Heartbeat | None, str]:
    """What to reconcile for a heartbeat stored over ``previous`` (None: nothing, and why).

    A redelivery of the stored report is reconciled again: its reconcile may have failed,
    and it is idempotent on the fact id. A report that came to matter only now (another
    report was stored between the read and the write) is reconciled too.
    """
    stored = merge(previous, hb)
    if stored is None:
        if previous is not None and _same_report(previous, hb):
            return previous, ""
        return None, "stale heartbeat ignored"
    if not matters(previous, stored):
        return None, "heartbeat recorded"
    return stored, ""


def _same_report(stored: Heartbeat, new: Heartbeat) -> bool:
    return stored.boot_id == new.boot_id and stored.sent_at == new.sent_at
