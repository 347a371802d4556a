"""The invariant checker's own tests: it fires on a control plane that breaks a promise.

reliability/invariants.py excuses what the control plane cannot help (a stop Compute
refused, a tick that failed). An excuse must not outlive its cause, or the checker stays
silent while a VM bills for hours. Each test here drives the real Service into a situation,
then lets a control plane that does nothing more (no tick, no event) run up the bill, and
asserts the checker names the broken invariant, and when.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from reliability.harness import World, pool_config, quiet_world
from reliability.invariants import Checker
from yoyo_control.domain.facts import RunRequested, StopRequested, Tick
from yoyo_control.errors import TemporaryError

CAP = 0.5
PER_TICK = 3.6 / 3600 * 60  # one instance, one minute


@pytest.fixture
def world() -> Iterator[World]:
    config = pool_config(daily_cap_usd=CAP, idle_timeout_s=7200, max_session_s=7200)
    with quiet_world(config) as w:
        yield w


def minute(w: World, checker: Checker, tick: bool = True) -> None:
    w.clock.advance(60)
    w.sim.advance()
    if tick:
        with contextlib.suppress(TemporaryError):
            w.service.handle(Tick(f"tick-{w.clock.now():.0f}", w.clock.now()))
    checker.check()


def silent_until_the_check_fires(w: World, checker: Checker) -> float:
    """The control plane goes silent with the VM running: the spend when the check fires."""
    assert w.sim.running("vm-0")
    for _ in range(120):
        try:
            minute(w, checker, tick=False)
        except AssertionError as exc:
            assert str(exc).startswith("spend-cap:"), exc
            return w.sim.day_spend("gpu")
    pytest.fail(f"the check stayed silent at {w.sim.day_spend('gpu'):.2f} against {CAP:.2f}")


def run(w: World, tag: str) -> None:
    now = w.clock.now()
    w.service.handle(RunRequested(f"run-{tag}", now, "gpu", "cycle", "nightly", 7200))


def test_a_silent_control_plane_is_caught_one_tick_past_the_cap(world: World) -> None:
    w, checker = world, Checker(world, "checker")
    run(w, "a")
    checker.check()
    spent = silent_until_the_check_fires(w, checker)
    assert CAP + PER_TICK < spent <= CAP + 2 * PER_TICK, spent


def a_stop_refused(w: World, checker: Checker) -> None:
    """The VM runs; the operator stops the pool; Compute refuses the stop (503)."""
    run(w, "a")
    minute(w, checker)
    w.sim.fail_next("503", 1, ("stop",))
    with contextlib.suppress(TemporaryError):
        w.service.handle(StopRequested("stop", w.clock.now(), "gpu", "alice", "done"))
    assert w.sim.calls_for("vm-0", "stop")[-1].result == "temporary"


def then_a_new_run(w: World, checker: Checker) -> None:
    """The VM stops anyway (preempted) and a new run starts: the last stop call on record
    is the refused one, from the previous run."""
    w.sim.preempt("vm-0")
    minute(w, checker)
    run(w, "b")
    assert w.sim.calls_for("vm-0", "stop")[-1].result == "temporary"


def test_a_stop_refused_before_the_current_run_excuses_nothing(world: World) -> None:
    """Issue 19 point 1: a stop refused once excused every later second the VM billed."""
    w, checker = world, Checker(world, "checker")
    a_stop_refused(w, checker)
    then_a_new_run(w, checker)
    checker.check()
    spent = silent_until_the_check_fires(w, checker)
    assert CAP + PER_TICK < spent <= CAP + 2 * PER_TICK, spent


def test_a_stop_refused_during_the_run_excuses_only_its_retry_period(world: World) -> None:
    """A refused stop excuses the spend until its retry is due (plus a tick), not for good."""
    w, checker = world, Checker(world, "checker")
    a_stop_refused(w, checker)
    run(w, "b")  # the operator changes their mind: the VM keeps its lease and runs on
    assert w.sim.running("vm-0")
    checker.check()
    spent = silent_until_the_check_fires(w, checker)
    retry_s = w.config.pools["gpu"].action_retry_s
    excusable = 3.6 / 3600 * (retry_s + 60)  # the retry period and one tick
    assert CAP + PER_TICK < spent <= CAP + 2 * PER_TICK + excusable, spent


def _loophole(self: Checker, name: str, run: float, start: float, end: float) -> float:
    """Issue 19 point 1 as it was: the last stop call ever made for the instance decides,
    and a refused one excuses every later second."""
    for call in reversed(self.world.sim.calls):
        if call.instance == name and call.kind == "stop":
            return end - start if call.result != "ok" else 0.0
    return 0.0


def test_with_the_loophole_back_the_refused_stop_hides_the_overrun(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutation check: with the loophole re-introduced, the scenario above runs up
    $1.86 against a $0.50 cap unnoticed — so that test is the one that catches it."""
    monkeypatch.setattr(Checker, "_refused_stop_s", _loophole)
    w, checker = world, Checker(world, "checker")
    a_stop_refused(w, checker)
    then_a_new_run(w, checker)
    for _ in range(30):  # half an hour of a silent control plane: no check fires
        minute(w, checker, tick=False)
    assert w.sim.day_spend("gpu") > 3 * CAP
