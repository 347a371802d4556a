"""Crash points: the process dies at every step boundary of handle(), for every fact type.

For each (starting situation, fact) the delivery is first run without a crash to number its
step boundaries — before/after each store commit, after the heartbeat write, before/after each
Compute call (harness.CrashingStore / CrashingCompute). Then, for every boundary k, a fresh
world replays the situation, the delivery dies at boundary k, Pub/Sub redelivers it, and two
ticks follow (one after ``action_retry_s``, so a call lost with its process is re-issued).
The result must be the crash-free run's:

- converges: the same VMs running, the same lease held or not, the same kill switch;
- no orphan: no VM runs without a valid lease (or with the kill switch engaged);
- no duplicate start: as many starts acted on as without the crash (a re-issued call carries
  the same request id, and the simulated Compute acts once per request id);
- the fact is in the event log exactly once (routine heartbeats: never, DESIGN.md §4b);
- no start is ever issued while the kill switch is engaged (checked on every start call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from reliability.harness import T0, Crash, World, pool_config, quiet_logs, scratch_dir
from reliability.invariants import TALLY, Checker
from yoyo_control.domain.facts import (
    BudgetNotified,
    ExtendRequested,
    Fact,
    HeartbeatReceived,
    KillRequested,
    KillSwitchWritten,
    QueueDepthObserved,
    RunRequested,
    StopRequested,
    Tick,
    UnkillRequested,
)
from yoyo_control.domain.model import Heartbeat, KillSwitch
from yoyo_control.service import fact_event_id

SUITE = "crash-points"
CONFIG = pool_config(instances=("vm-0",), lease_s=900, idle_timeout_s=600, action_retry_s=60)

# --- starting situations -------------------------------------------------------------------


def _run_with_agent(w: World) -> None:
    w.service.handle(RunRequested("setup-run", w.clock.now(), "gpu", "cycle", "nightly", 900))
    w.clock.advance(30)
    hb = Heartbeat("vm-0", w.sim.boot_id("vm-0"), w.clock.now(), 0.0, busy=True, running=1)
    w.service.handle(HeartbeatReceived("setup-hb", w.clock.now(), "gpu", hb))


def _expired(w: World) -> None:
    _run_with_agent(w)
    w.clock.advance(1000)  # past the lease deadline and idle: nothing has noticed yet
    # The agent kept reporting (routine heartbeats land in the instance document only).
    hb = Heartbeat("vm-0", w.sim.boot_id("vm-0"), w.clock.now(), w.clock.now())
    w.store.put_heartbeat("gpu", hb)


def _killed_unnoticed(w: World) -> None:
    _run_with_agent(w)
    kill = KillSwitch(True, "console flip", "console", w.clock.now())
    w.store.transact(lambda tx: tx.save_kill(kill))  # its trigger has not fired yet


SITUATIONS: dict[str, Callable[[World], None]] = {
    "idle": lambda w: None,
    "running": _run_with_agent,
    "expired": _expired,
    "killed-unnoticed": _killed_unnoticed,
}

# --- the facts -----------------------------------------------------------------------------


def _beat(w: World, busy: bool, boot: str | None = None) -> Fact:
    now = w.clock.now()
    hb = Heartbeat("vm-0", boot or w.sim.boot_id("vm-0"), now, 0.0, busy=busy, running=int(busy))
    return HeartbeatReceived("fact", now, "gpu", hb)


FACTS: dict[str, Callable[[World], Fact]] = {
    "run": lambda w: RunRequested("fact", w.clock.now(), "gpu", "wake", "request waiting", 600),
    "queue": lambda w: QueueDepthObserved("fact", w.clock.now(), "gpu", 5, "producer"),
    "heartbeat-new-boot": lambda w: _beat(w, busy=True, boot="vm-0-boot-new"),
    "heartbeat-turns-idle": lambda w: _beat(w, busy=False),
    "heartbeat-routine": lambda w: _beat(w, busy=True),
    "stop": lambda w: StopRequested("fact", w.clock.now(), "gpu", "alice", "done"),
    "extend": lambda w: ExtendRequested("fact", w.clock.now(), "gpu", "alice", 1800),
    "tick": lambda w: Tick("fact", w.clock.now()),
    "kill": lambda w: KillRequested("fact", w.clock.now(), "maintenance", "ops"),
    "unkill": lambda w: UnkillRequested("fact", w.clock.now(), "ops"),
    "kill-doc-written": lambda w: KillSwitchWritten("fact", w.clock.now(), w.store.get_kill()),
    "budget-over": lambda w: BudgetNotified(
        "fact", w.clock.now(), "b-1", "yoyo", 152.37, 150.0, "USD", 1.0
    ),
    "budget-under": lambda w: BudgetNotified(
        "fact", w.clock.now(), "b-1", "yoyo", 20.0, 150.0, "USD", 0.1
    ),
}


@dataclass(frozen=True)
class Outcome:
    running: tuple[str, ...]
    lease: bool
    kill: bool
    starts: int
    logged: int
    boundaries: tuple[str, ...]
    note: str  # what the first complete delivery said


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_logs():
        yield


def play(situation: str, fact_name: str, crash_at: int | None) -> Outcome:
    """One world: the situation, the delivery (dying at ``crash_at``), redelivery, two ticks."""
    with scratch_dir(prefix="yoyo-cp-") as directory:
        w = World.build(CONFIG, directory, start=T0)
        w.sim.on_start = Checker(w, SUITE).on_start
        try:
            SITUATIONS[situation](w)
            w.clock.advance(5)
            fact = FACTS[fact_name](w)
            w.boundaries.reset(crash_at)
            crashed, note = False, ""
            try:
                note = w.service.handle(fact).note
            except Crash:
                crashed = True
            boundaries = tuple(w.boundaries.passed)
            w.boundaries.reset()
            assert crashed == (crash_at is not None), f"no boundary {crash_at}: {boundaries}"
            if crashed:
                note = w.service.handle(fact).note  # Pub/Sub redelivers the message
            for i in range(2):
                w.clock.advance(61)
                w.service.handle(Tick(f"converge-{i}", w.clock.now()))
            logged = sum(
                1 for e in w.all_events() if e.kind == "fact" and e.id == fact_event_id(fact)
            )
            state = w.store.get_pool("gpu")
            return Outcome(
                running=tuple(sorted(n for n in w.sim.instances if w.sim.running(n))),
                lease=state.lease is not None and state.lease.valid(w.clock.now()),
                kill=w.store.get_kill().engaged,
                starts=len(w.sim.acted_starts()),
                logged=logged,
                boundaries=boundaries,
                note=note,
            )
        finally:
            w.close()


def cases() -> Iterator[tuple[str, str]]:
    for situation in SITUATIONS:
        for fact in FACTS:
            yield situation, fact


@pytest.mark.parametrize(("situation", "fact_name"), list(cases()))
def test_every_crash_point_converges(situation: str, fact_name: str) -> None:
    reference = play(situation, fact_name, None)
    routine = reference.note in ("heartbeat recorded", "stale heartbeat ignored")
    assert reference.logged == (0 if routine else 1), reference
    tally = TALLY[SUITE]
    for k, point in enumerate(reference.boundaries, start=1):
        crashed = play(situation, fact_name, k)
        where = f"{situation}/{fact_name}: crash at boundary {k} ({point})"
        tally["converges"].add(relevant=True)
        assert (crashed.running, crashed.lease, crashed.kill) == (
            reference.running,
            reference.lease,
            reference.kill,
        ), f"{where}: ended {crashed}, without the crash {reference}"
        tally["no-orphan"].add(relevant=bool(crashed.running))
        if crashed.running:
            assert crashed.lease and not crashed.kill, f"{where}: orphaned VM {crashed}"
        tally["no-duplicate-start"].add(relevant=crashed.starts > 0)
        assert crashed.starts == reference.starts, f"{where}: {crashed.starts} starts acted"
        tally["fact-logged-once"].add(relevant=True)
        if routine:  # a redelivered routine heartbeat is reconciled again, so it may be logged
            assert crashed.logged <= 1, f"{where}: logged {crashed.logged}x"
        else:
            assert crashed.logged == 1, f"{where}: logged {crashed.logged}x"


@pytest.mark.parametrize("point", ["after-heartbeat-write", "before-commit"])
def test_a_heartbeat_that_mattered_is_logged_after_a_crash_and_redelivery(point: str) -> None:
    def deliver_idle(w: World, crash_at: int | None) -> tuple[HeartbeatReceived, list[str]]:
        _run_with_agent(w)  # busy heartbeats from boot 1
        w.clock.advance(30)
        beat = Heartbeat("vm-0", w.sim.boot_id("vm-0"), w.clock.now(), 0.0)  # busy → idle
        idle = HeartbeatReceived("hb-idle", w.clock.now(), "gpu", beat)
        w.boundaries.reset(crash_at)
        with contextlib.suppress(Crash):
            w.service.handle(idle)
        passed = list(w.boundaries.passed)
        w.boundaries.reset()
        return idle, passed

    with scratch_dir(prefix="yoyo-b1-") as directory:  # a dry run numbers the boundaries
        w = World.build(CONFIG, directory)
        try:
            _, points = deliver_idle(w, None)
        finally:
            w.close()
    with scratch_dir(prefix="yoyo-b1-") as directory:
        w = World.build(CONFIG, directory)
        try:
            idle, passed = deliver_idle(w, points.index(point) + 1)  # the process dies there
            assert passed[-1] == point
            stored = w.store.get_pool("gpu").heartbeats["vm-0"]
            written = stored.sent_at == idle.heartbeat.sent_at
            w.clock.advance(30)  # the agent's next report (idle again) lands first …
            later = Heartbeat("vm-0", idle.heartbeat.boot_id, w.clock.now(), 0.0)
            w.service.handle(HeartbeatReceived("hb-later", w.clock.now(), "gpu", later))
            w.service.handle(idle)  # … then Pub/Sub redelivers the one that died
            logged = {e.message_id for e in w.all_events() if e.kind == "fact"}
            if written:  # the instance document took it: the change must be on record
                assert "hb-idle" in logged, (
                    f"crash at {point}: hb-idle (busy → idle) was written and acknowledged "
                    "but is not in the event log"
                )
            else:  # it never happened: the next report carried the change
                assert "hb-later" in logged, f"crash at {point}: busy → idle never logged"
        finally:
            w.close()


def test_a_restart_whose_stop_was_lost_is_counted_once() -> None:
    config = pool_config(
        boot_grace_s=300, heartbeat_gap_s=180, idle_timeout_s=7200, lease_s=7200,
        max_session_s=7200, restart_budget=1, restart_backoff_s=60, action_retry_s=60,
    )  # fmt: skip

    def world_after(crash_at: int | None) -> tuple[bool, int, bool]:
        with scratch_dir(prefix="yoyo-b9-") as directory:
            w = World.build(config, directory)
            try:
                w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "n", 7200))
                w.clock.advance(300)  # the agent never reported: the heartbeat gap
                w.boundaries.reset(crash_at)
                try:
                    w.service.handle(Tick("gap", w.clock.now()))
                except Crash as c:
                    assert str(c) == "before-stop"  # decided and committed; never called
                passed.append(list(w.boundaries.passed))
                w.boundaries.reset()
                for i in range(5):
                    w.clock.advance(60)
                    w.service.handle(Tick(f"t{i}", w.clock.now()))
                state = w.store.get_pool("gpu")
                return (
                    state.lease is not None,
                    state.instances["vm-0"].restarts,
                    w.sim.running("vm-0"),
                )
            finally:
                w.close()

    passed: list[list[str]] = []
    reference = world_after(None)
    assert reference == (True, 1, True)  # stopped at the gap, restarted after the backoff
    crashed = world_after(passed[0].index("before-stop") + 1)
    assert crashed == reference, f"(lease, restarts, running): {crashed}, not {reference}"
