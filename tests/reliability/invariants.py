"""The lifecycle invariants of DESIGN.md §3–4, checked against ground truth after every step.

Ground truth is the simulated Compute (what really runs, what was really spent); the
control plane's view is the store. ``Checker.check()`` runs after every delivery and
every slice of simulated time. A check that fails raises ``AssertionError`` naming the
invariant, the instance and the times.

Excuses (each one bounded, each one the control plane's own documented behaviour or
something outside its control):
- time: a stop Compute failed is retried on the control plane's backoff
  (``action_retry_s × 2^(attempts-1)``; after giving up, at the next decision); a stop
  decided but lost with its process is re-issued once ``action_retry_s`` has passed; a
  tick that could not observe or decide (crash, list error) restarts the one-tick window;
- money (spend caps): what was billed while a tick failed, or after Compute refused a stop
  made during the VM's current run until that stop's retry was due plus a tick, what
  was billed STOPPING after the cap was crossed (Compute's pace), and one tick per VM
  someone started by hand. Allowed on top: one tick of one instance (DESIGN.md §4).
Nothing else delays a stop or excuses a cent.

Every check is counted per invariant (``checks``: evaluations; ``relevant``: evaluations
where the assertion could actually fail — where a control plane that had done nothing about
it would have failed it: an instance running unowned past its one-tick window, past
max_session plus a tick, spend past a cap plus one instance-tick, a start made while the
kill switch was or had just been engaged). An evaluation that cannot fail whatever the
control plane does is counted in ``checks`` only. ``TALLY`` accumulates over the session and
conftest.py writes it to build/invariants.json.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from reliability.faulty_compute import day_month
from yoyo_control.domain.actions import pending
from yoyo_control.domain.model import (
    RUNNING_STATUSES,
    ActionKind,
    Holder,
    KillSwitch,
    Lease,
    OutcomeKind,
)

INVARIANTS = {
    "no-start-while-killed": "no start is issued while the kill switch is engaged",
    "owner-or-stop": "a running instance has a valid lease, or a stop was issued within a tick",
    "lease-deadline": "no instance runs past its lease deadline (or the kill) plus one tick",
    "max-session": "no instance runs past max_session plus one tick of the control plane's view",
    "budget-kill": "a budget notification over the kill fraction engages the kill switch",
    "spend-cap": "spend never exceeds a cap by more than one tick of one instance",
    "fact-logged-once": "every accepted fact is in the event log exactly once",
    "kill-wins": "an operator's kill engages the switch unless a lift published after it took "
    "effect; a lift never undoes a kill published after it",
    "heartbeat-classified": "a heartbeat is handled as mattering, routine or stale as the "
    "stored report says",
    "no-spend-without-progress": "VM starts for batch work since a shard last moved are at "
    "most instances x (1 + restart_budget)",
    "operator-stop-holds": "after an operator's stop with batch work pending, no lease is held "
    "for batch work until an operator's start or the work is gone",
}


@dataclass
class Tally:
    checks: int = 0
    relevant: int = 0

    def add(self, relevant: bool = False) -> None:
        self.checks += 1
        self.relevant += int(relevant)


# suite → invariant → tally (per session); conftest.py writes it out
TALLY: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
STATS: dict[str, dict[str, Any]] = defaultdict(dict)  # suite → free-form numbers


def ends_at(lease: Lease) -> float:
    """When a lease stops being valid — computed here, not by the domain under test."""
    return min(lease.expires_at, lease.max_until)


@dataclass
class Checker:
    world: Any  # harness.World
    suite: str
    tick_s: float = 60.0
    lease_lost_at: dict[str, float | None] = field(default_factory=dict)
    last_lease: dict[str, Lease | None] = field(default_factory=dict)
    excuse_until: dict[str, float] = field(default_factory=dict)  # instance → stop retry due
    tick_excuse_until: float = float("-inf")  # the last tick that could not observe/decide
    last_check: float | None = None
    kill_at_last_check: KillSwitch = field(default_factory=KillSwitch)
    # When a check first saw the switch engaged (true time: its ``at`` field is someone's
    # clock, never trusted); None while it is off.
    kill_seen_at: float | None = None
    run_since: dict[str, float] = field(default_factory=dict)  # instance → its run's start
    max_overrun: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Money the control plane could not have saved, per (pool, day or month): billed while
    # Compute refused a stop or a tick failed, spent STOPPING after the cap was crossed
    # (Compute's pace), and one tick per VM someone started behind its back.
    excused_usd: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    stopping_seen: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    over_cap: set[tuple[str, str]] = field(default_factory=set)

    def tally(self, invariant: str, relevant: bool = False) -> None:
        TALLY[self.suite][invariant].add(relevant)

    def _count(self, stat: str) -> None:
        """Context for the tallies, e.g. evaluations past a nominal limit but within its
        allowance (where the assertion cannot fail yet)."""
        seen = STATS[self.suite]
        seen[stat] = seen.get(stat, 0) + 1

    # --- hooks --------------------------------------------------------------------------

    def on_start(self, instance: str, request_id: str) -> None:
        """Called by the simulated Compute before every start call."""
        kill = self.world.store.get_kill()
        # It can fail only if the switch is engaged now, was at the last check, or was
        # written since: a start decided with the switch off and untouched cannot fail here.
        last = self.kill_at_last_check
        relevant = kill.engaged or last.engaged or kill != last
        self.tally("no-start-while-killed", relevant=relevant)
        assert not kill.engaged, (
            f"no-start-while-killed: start {instance} ({request_id[:8]}) issued while the kill "
            f"switch is engaged ({kill.reason!r} by {kill.by!r} at {kill.at})"
        )

    def tick_failed(self) -> None:
        """A tick could not observe or decide: the one-tick window restarts at the next one."""
        self.tick_excuse_until = max(self.tick_excuse_until, self.world.clock.now())

    def external_start(self, pool: str) -> None:
        """Someone started a VM behind the control plane's back: it may bill one tick."""
        policy = self.world.config.pools.get(pool)
        if policy is not None:
            self._excuse_usd(pool, policy.hourly_price_usd / 3600.0 * self.tick_s)

    def _excuse_usd(self, pool: str, usd: float) -> None:
        day, month = day_month(self.world.clock.now())
        self.excused_usd[(pool, day)] += usd
        self.excused_usd[(pool, month)] += usd

    def _excuse(self, name: str, until: float) -> None:
        self.excuse_until[name] = max(self.excuse_until.get(name, float("-inf")), until)

    def _excuse_billing(self, pool: str, price: float, now: float, elapsed: float) -> None:
        """Money billed since the last check that the control plane could not have saved:
        every instance that ran in that interval (running now, or at the last check), for
        the part of it that a failed tick or a stop Compute refused excuses."""
        sim = self.world.sim
        for name, inst in sim.instances.items():
            if inst.pool != pool:
                continue
            was = self.run_since.pop(name, None)
            end = now
            if sim.running(name):
                self.run_since[name] = inst.running_since or now
            elif inst.stopped_at is not None:
                end = min(now, inst.stopped_at)
            run = self.run_since.get(name, was)
            if not elapsed or run is None:
                continue
            start = max(now - elapsed, run)
            if now <= self.tick_excuse_until + self.tick_s:
                excused_s = end - start
            else:
                excused_s = self._refused_stop_s(name, run, start, end)
            self._excuse_usd(pool, price / 3600.0 * max(0.0, excused_s))

    def _refused_stop_s(self, name: str, run: float, start: float, now: float) -> float:
        """Seconds of [start, now] excused by a stop Compute refused in this run.

        Only a stop call made during the instance's run (from ``run``) counts, and only
        until its retry is due (the control plane's backoff, see ``_note_backoffs``) plus
        one tick, or until a stop succeeded: then the control plane should have stopped it.
        """
        stops = self.world.sim.calls_for(name, "stop", since=run)
        refused = [c.at for c in stops if c.result != "ok"]
        if not refused:
            return 0.0
        # The refusals since the last stop that went through, from the first one on; the
        # last one's retry bounds the excuse.
        ok = [c.at for c in stops if c.result == "ok" and c.at < refused[-1]]
        first = min(t for t in refused if not ok or t > ok[-1])
        last = refused[-1]
        until = max(last, self.excuse_until.get(name, last)) + self.tick_s
        done = [c.at for c in stops if c.result == "ok" and c.at >= last]
        if done:
            until = min(until, done[0])
        return max(0.0, min(now, until) - max(start, first))

    # --- the check ----------------------------------------------------------------------

    def check(self) -> None:
        w = self.world
        now = w.clock.now()
        w.sim.accrue()
        elapsed = 0.0 if self.last_check is None else now - self.last_check
        self.last_check = now
        kill = w.store.get_kill()
        self.kill_at_last_check = kill
        if not kill.engaged:
            self.kill_seen_at = None
        elif self.kill_seen_at is None:
            self.kill_seen_at = now
        seen = STATS[self.suite]
        seen["checks_with_kill_engaged"] = seen.get("checks_with_kill_engaged", 0) + kill.engaged
        for pool, policy in w.config.pools.items():
            state = w.pool(pool)
            if state.lease is not None and now < ends_at(state.lease):
                seen["checks_with_valid_lease"] = seen.get("checks_with_valid_lease", 0) + 1
            running = sum(1 for n in policy.instances if w.sim.running(n))
            seen["checks_with_vm_running"] = seen.get("checks_with_vm_running", 0) + bool(running)
            lost = self._lease_lost_at(pool, state.lease, now)
            if self.kill_seen_at is not None:
                lost = self.kill_seen_at if lost is None else min(lost, self.kill_seen_at)
            self._note_backoffs(state, policy)
            self._excuse_billing(pool, policy.hourly_price_usd, now, elapsed)
            for name, inst in w.sim.instances.items():
                if inst.pool != pool or not w.sim.running(name):
                    continue
                truth_since = inst.running_since
                assert truth_since is not None
                configured = name in policy.instances
                unowned = (not configured) or lost is not None
                since = truth_since if not configured else max(truth_since, lost or truth_since)
                if unowned:
                    self._check_unowned(name, pool, since, now, state)
                else:
                    self.tally("owner-or-stop")
                    self.tally("lease-deadline")
                if configured:
                    self._check_session(name, pool, state, policy, truth_since, now)
            self._check_spend(pool, policy, now)

    def _lease_lost_at(self, pool: str, lease: Lease | None, now: float) -> float | None:
        """When the pool's lease stopped being valid (None: it is valid now)."""
        previous = self.last_lease.get(pool)
        self.last_lease[pool] = lease
        if lease is not None and now < ends_at(lease):
            self.lease_lost_at[pool] = None
            return None
        if pool not in self.lease_lost_at:
            self.lease_lost_at[pool] = float("-inf")  # never held one: unowned from the start
        lost = self.lease_lost_at[pool]
        if lost is None:
            # It was valid at the last check: it ended at its deadline or during this step,
            # whichever came first (the earliest possible moment: the strictest check).
            ends = [now]
            ends += [ends_at(x) for x in (lease, previous) if x is not None]
            lost = min(ends)
            self.lease_lost_at[pool] = lost
        return lost

    def _note_backoffs(self, state: Any, policy: Any) -> None:
        """Stops that failed or lost their outcome are retried on the control plane's backoff."""
        for name, inst in state.instances.items():
            la = inst.last_action
            if la is None or la.kind != ActionKind.STOP:
                continue
            if la.outcome is None:  # in flight: re-issued once action_retry_s has passed
                self._excuse(name, la.issued_at + policy.action_retry_s)
            elif la.outcome == OutcomeKind.RETRY:
                wait = policy.action_retry_s * 2 ** max(0, la.attempts - 1)
                self._excuse(name, la.issued_at + wait)
            elif la.outcome in (OutcomeKind.ERROR, OutcomeKind.NOT_FOUND):  # gave up: a new stop
                self._excuse(name, la.issued_at)

    def _check_unowned(self, name: str, pool: str, since: float, now: float, state: Any) -> None:
        window_start = max(since, self.tick_excuse_until)
        overdue = now > window_start + self.tick_s
        self.tally("owner-or-stop", relevant=overdue)
        if overdue:
            # Issued: called, or decided and committed (the process that was to call it
            # died: it is re-issued once action_retry_s has passed — excused below), or
            # issued before the lease lapsed (a restart's stop) and still being retried.
            inst = state.instances.get(name)
            la = inst.last_action if inst is not None else None
            decided = (
                la is not None
                and la.kind == ActionKind.STOP
                and (la.issued_at >= since or pending(la))
            )
            stops = self.world.sim.calls_for(name, "stop", since=since)
            assert stops or decided, (
                f"owner-or-stop: {name} ({pool}) has run without a valid lease since "
                f"{since - self.world.clock.now():+.0f}s and no stop was issued within a tick"
            )
        deadline = max(window_start, self.excuse_until.get(name, since)) + self.tick_s
        # Without a stop being retried (the excuse), the deadline is the one-tick window.
        self.tally("lease-deadline", relevant=overdue)
        self.max_overrun["lease"] = max(self.max_overrun["lease"], now - since)
        assert now <= deadline, (
            f"lease-deadline: {name} ({pool}) still running {now - since:.0f}s after its lease "
            f"ended / the kill (allowed {deadline - since:.0f}s incl. excuses)"
        )

    def _check_session(
        self, name: str, pool: str, state: Any, policy: Any, truth_since: float, now: float
    ) -> None:
        inst = state.instances.get(name)
        known = (
            inst is not None
            and inst.observed in RUNNING_STATUSES
            and inst.running_since is not None
        )
        ran = now - truth_since
        if not known:
            # The control plane must learn of a run within a tick (a tick lists instances).
            window_start = max(truth_since, self.tick_excuse_until)
            self.tally("max-session", relevant=now > window_start + self.tick_s)
            assert now <= window_start + self.tick_s, (
                f"max-session: {name} ({pool}) has run {ran:.0f}s and the control plane does "
                "not know it is running"
            )
            return
        assert inst is not None and inst.running_since is not None
        over_since = inst.running_since + policy.max_session_s
        # Past max_session plus the one-tick window (a failed tick restarts it): here a
        # control plane that had not stopped the instance fails the assertion below.
        window_end = max(over_since, self.tick_excuse_until) + self.tick_s
        self.tally("max-session", relevant=now > window_end)
        if now <= over_since:
            return
        self._count("checks_past_max_session")
        excuse = self.excuse_until.get(name, over_since)
        deadline = max(over_since, self.tick_excuse_until, excuse) + self.tick_s
        self.max_overrun["session"] = max(self.max_overrun["session"], ran - policy.max_session_s)
        assert now <= deadline, (
            f"max-session: {name} ({pool}) has run {ran:.0f}s (max_session "
            f"{policy.max_session_s:.0f}s; control plane counts from "
            f"{inst.running_since - truth_since:+.0f}s)"
        )

    def _check_spend(self, pool: str, policy: Any, now: float) -> None:
        sim = self.world.sim
        day, month = day_month(now)
        caps = [
            (policy.daily_cap_usd, sim.day_spend(pool), "daily", day),
            (policy.monthly_cap_usd, sim.month_spend(pool), "monthly", month),
        ]
        per_tick = policy.hourly_price_usd / 3600.0 * self.tick_s
        stopping = sim.stopping_spend.get(pool, 0.0)
        stopping_delta = stopping - self.stopping_seen[pool]
        self.stopping_seen[pool] = stopping
        for cap, spent, which, period in caps:
            if cap is None:
                continue
            key = (pool, period)
            if key in self.over_cap:
                self.excused_usd[key] += stopping_delta
            if spent >= cap:
                self.over_cap.add(key)
            excused = self.excused_usd[key]
            allowance = per_tick + excused
            # Within one instance-tick of the cap the assertion cannot fail.
            self.tally("spend-cap", relevant=spent > cap + per_tick + 1e-9)
            if spent > cap:
                self._count("checks_over_a_cap")
                name = f"{which}-cap-ticks-beyond-excuses"
                self.max_overrun[name] = max(
                    self.max_overrun[name], (spent - cap - excused) / per_tick
                )
            assert spent <= cap + allowance + 1e-9, (
                f"spend-cap: {pool} spent {spent:.4f} against a {which} cap of {cap:.4f} "
                f"(allowed overrun {allowance:.4f}: one tick of one instance "
                f"+ {excused:.4f} excused)"
            )


# --- batch work (issue 23) -----------------------------------------------------------


@dataclass
class BatchChecker:
    """The two promises of batch work, from a model the test keeps (never the control
    plane's own bookkeeping):

    - **no-spend-without-progress**: the VM starts made under a lease held for batch
      work, since a shard last moved (or an explicit action: a submit, a retry, an
      operator's start, the work gone), are at most instances × (1 + restart_budget);
    - **operator-stop-holds**: after an operator's stop (applied, not stale) while batch
      work was pending, no lease held for batch work exists until an operator's start
      or the work is gone (another source may still grant its own lease).
    """

    world: Any
    suite: str
    counted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    held: dict[str, bool] = field(default_factory=lambda: defaultdict(bool))
    seen_calls: int = 0

    def tally(self, invariant: str, relevant: bool = False) -> None:
        TALLY[self.suite][invariant].add(relevant)

    def reset(self, pool: str) -> None:
        """A shard moved, or an explicit action: the starts before it are paid for."""
        self.counted[pool] = set()

    def check(self) -> None:
        w = self.world
        calls = w.sim.calls[self.seen_calls :]
        self.seen_calls = len(w.sim.calls)
        for pool, policy in w.config.pools.items():
            state = w.pool(pool)
            batch_lease = state.lease is not None and state.lease.holder == Holder.BATCH
            mine = set(policy.instances)
            for call in calls:
                real = call.kind == "start" and call.acted and call.result == "ok"
                if real and call.instance in mine and batch_lease:
                    self.counted[pool].add(call.request_id)
            bound = len(policy.instances) * (1 + policy.restart_budget)
            starts = len(self.counted[pool])
            self.tally("no-spend-without-progress", relevant=starts > 0)
            assert starts <= bound, (
                f"no-spend-without-progress: {starts} VM starts for batch work on {pool} "
                f"since a shard last moved (bound {bound})"
            )
            self.tally("operator-stop-holds", relevant=self.held[pool])
            assert not (self.held[pool] and batch_lease), (
                f"operator-stop-holds: {pool} holds a lease for batch work after an "
                f"operator's stop: {state.lease}"
            )
