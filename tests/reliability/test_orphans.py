"""Orphan sweep: VMs the pool's state does not account for are found by the tick and stopped,
with the reason in the event log.

- labelled for the pool but not in its configuration (a stray VM someone created);
- configured but running while the pool is idle (started by hand, or a start whose answer
  was lost after the lease ended);
- either one while the pool holds a lease, or while the kill switch is engaged.
A stopped orphan is left alone (no stop calls every minute), and a VM labelled for another
pool is not touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reliability.harness import World, pool_config, quiet_world
from reliability.invariants import TALLY
from yoyo_control.domain.facts import KillRequested, RunRequested, Tick
from yoyo_control.domain.model import Rule

SUITE = "orphan-sweep"
CONFIG = pool_config(
    instances=("vm-0",),
    extra_pools={"cpu": {"zone": "z", "instances": ["cpu-0"], "hourly_price_usd": 0.36}},
)


@pytest.fixture
def world() -> Iterator[World]:
    with quiet_world(CONFIG) as w:
        yield w


def tick(w: World) -> None:
    w.clock.advance(60)
    w.service.handle(Tick(f"tick-{w.clock.now():.0f}", w.clock.now()))


def stop_reasons(w: World, instance: str) -> list[tuple[str, str]]:
    """(rule, reason) of every stop the event log shows for ``instance``."""
    found = []
    for event in w.all_events():
        if event.kind != "decision":
            continue
        for action in event.data.get("actions", ()):
            if action["instance"] == instance and action["kind"] == "stop":
                found.append((action["rule"], action["reason"]))
    return found


def sweep_once(w: World, instance: str) -> list[tuple[str, str]]:
    """One tick stops ``instance``; the stop it logged, as (rule, reason)."""
    assert w.sim.running(instance)
    before = len(stop_reasons(w, instance))
    tick(w)
    TALLY[SUITE]["stopped-by-the-next-tick"].add(relevant=True)
    assert not w.sim.running(instance), f"{instance} still runs after a tick"
    reasons = stop_reasons(w, instance)[before:]
    assert len(reasons) == 1, reasons
    return reasons


def test_a_vm_labelled_for_the_pool_but_not_configured_is_stopped(world: World) -> None:
    w = world
    w.sim.add("gpu", "stray-1", "z", status="RUNNING")
    [(rule, reason)] = sweep_once(w, "stray-1")
    assert rule == Rule.ORPHAN.value and "labelled for the pool but not configured" in reason
    found = [e for e in w.all_events() if "found stray-1 (RUNNING)" in e.reason]
    assert found, "the discovery itself is logged"
    assert w.store.get_pool("gpu").instances["stray-1"].orphan


def test_a_configured_vm_running_while_the_pool_is_idle_is_stopped(world: World) -> None:
    w = world
    assert w.sim.console_start("vm-0")
    [(rule, reason)] = sweep_once(w, "vm-0")
    assert rule == Rule.NO_LEASE.value and reason == "no valid lease"


def test_a_start_whose_answer_came_after_the_lease_ended_is_stopped(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "wake", "request", 60))
    w.service.handle(KillRequested("kill", w.clock.now(), "maintenance", "ops"))
    assert not w.sim.running("vm-0")
    w.sim.console_start("vm-0")  # e.g. a start operation that Compute finished late
    [(rule, reason)] = sweep_once(w, "vm-0")
    assert rule == Rule.KILL_SWITCH.value and "kill switch engaged" in reason


def test_an_orphan_is_stopped_while_the_pool_holds_a_lease(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 3600))
    assert w.sim.running("vm-0")
    w.sim.add("gpu", "stray-1", "z", status="RUNNING")
    [(rule, _)] = sweep_once(w, "stray-1")
    assert rule == Rule.ORPHAN.value
    assert w.sim.running("vm-0")  # the pool's own VM is untouched


def test_an_orphan_is_stopped_while_the_kill_switch_is_engaged(world: World) -> None:
    w = world
    w.service.handle(KillRequested("kill", w.clock.now(), "maintenance", "ops"))
    w.sim.add("gpu", "stray-1", "z", status="RUNNING")
    [(rule, _)] = sweep_once(w, "stray-1")
    assert rule in (Rule.ORPHAN.value, Rule.KILL_SWITCH.value)


def test_a_stopped_orphan_is_left_alone_and_another_pools_vm_is_not_touched(
    world: World,
) -> None:
    w = world
    w.sim.add("gpu", "stray-1", "z", status="TERMINATED")
    w.sim.add("other-pool", "theirs", "z", status="RUNNING")
    for _ in range(10):
        tick(w)
    TALLY[SUITE]["left-alone"].add(relevant=True)
    assert w.sim.calls_for("stray-1", "stop") == []
    assert w.sim.calls_for("theirs", "stop") == [] and w.sim.running("theirs")


def test_an_orphan_stopped_once_is_not_stopped_again_every_minute(world: World) -> None:
    w = world
    w.sim.add("gpu", "stray-1", "z", status="RUNNING")
    for _ in range(10):
        tick(w)
    TALLY[SUITE]["left-alone"].add(relevant=True)
    assert len(w.sim.calls_for("stray-1", "stop")) == 1
