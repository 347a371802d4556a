"""The three stop paths of DESIGN.md §3, each one alone.

1. The reconciler alone: the agent is dead (no heartbeats); Service + SQLite + the simulated
   Compute over simulated minutes; the heartbeat gap stops the VM, restarts it within the
   restart budget, then gives up and releases the lease.
2. The agent alone: the control plane is gone (nothing writes the store, nothing ticks);
   the agent loop (agent/loop.py over agent/policy.py) powers the VM off — dead-man switch,
   kill switch (even busy), idle backstop with the store unreadable — and leaves a healthy,
   busy VM alone.
3. Compute Engine alone — checked as configuration, not as behaviour: a reading of the
   Terraform source shows every pool VM it creates declares ``max_run_duration`` with
   ``instance_termination_action = "STOP"``, set from the pool's ``max_session_s``. That
   Compute Engine then stops the VM is Google's documented behaviour; nothing here runs it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import World, pool_config, quiet_world
from reliability.invariants import TALLY
from yoyo_control.agent.loop import Agent
from yoyo_control.agent.policy import Metrics, Settings
from yoyo_control.domain.facts import HeartbeatReceived, RunRequested, Tick
from yoyo_control.domain.model import Heartbeat, KillSwitch, Rule

SUITE = "stop-paths"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world() -> Iterator[World]:
    config = pool_config(
        boot_grace_s=300,
        heartbeat_gap_s=180,
        idle_timeout_s=7200,
        lease_s=7200,
        max_session_s=7200,
        restart_budget=2,
        restart_backoff_s=60,
    )
    with quiet_world(config) as w:
        yield w


# --- 1. the reconciler alone -----------------------------------------------------------------


def test_the_reconciler_alone_stops_a_vm_whose_agent_never_reports(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 7200))
    runs: list[tuple[float, float]] = []  # (start, stop) of each run of the VM
    started = w.clock.now()
    for minute in range(60):
        w.clock.advance(60)
        w.service.handle(Tick(f"tick-{minute}", w.clock.now()))
        if started is None and w.sim.running("vm-0"):
            started = w.sim.instances["vm-0"].running_since
        if started is not None and not w.sim.running("vm-0"):
            runs.append((started, w.clock.now()))
            started = None
    TALLY[SUITE]["reconciler-alone"].add(relevant=True)
    assert not w.sim.running("vm-0") and w.store.get_pool("gpu").lease is None
    assert len(runs) == 3, runs  # the first run and restart_budget (2) restarts
    for start, stop in runs:  # each run ends at the heartbeat gap: boot grace + one tick
        assert 300 <= stop - start <= 300 + 60, runs
    gaps = [
        a
        for e in w.all_events()
        if e.kind == "decision"
        for a in e.data["actions"]
        if a["kind"] == "stop" and a["rule"] == Rule.HEARTBEAT_GAP.value
    ]
    assert len(gaps) == 3 and all("no heartbeat" in a["reason"] for a in gaps)  # one per run
    assert any("gave up after 2 restarts" in e.reason for e in w.all_events())


def test_the_reconciler_alone_stops_a_vm_whose_agent_dies(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 7200))
    boot = w.sim.boot_id("vm-0")
    last_beat = 0.0
    for second in range(30, 900, 30):  # the agent reports busy every 30 s for 15 minutes
        w.clock.advance(30)
        hb = Heartbeat("vm-0", boot, w.clock.now(), 0.0, busy=True, running=1)
        w.service.handle(HeartbeatReceived(f"hb-{second}", w.clock.now(), "gpu", hb))
        last_beat = w.clock.now()
        if second % 60 == 0:
            w.service.handle(Tick(f"tick-{second}", w.clock.now()))
    assert w.sim.running("vm-0")
    stopped_at = None
    for minute in range(10):  # then it dies: only ticks
        w.clock.advance(60)
        w.service.handle(Tick(f"after-{minute}", w.clock.now()))
        if stopped_at is None and not w.sim.running("vm-0"):
            stopped_at = w.clock.now()
    TALLY[SUITE]["reconciler-alone"].add(relevant=True)
    assert stopped_at is not None and stopped_at - last_beat <= 180 + 60


# --- 2. the agent alone ----------------------------------------------------------------------


@dataclass
class DeadBus:
    """The control plane is gone: heartbeats are published into the void."""

    published: list[bytes] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        self.published.append(data)
        return str(len(self.published))


class UnreadableStore:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise OSError("firestore unreachable")

        return fail


def make_agent(w: World, metrics: Metrics, store: Any = None, **settings: float) -> Agent:
    s = Settings(
        pool="gpu",
        instance="vm-0",
        boot_id=w.sim.boot_id("vm-0"),
        heartbeat_interval_s=settings.get("heartbeat_interval_s", 30),
        idle_shutdown_s=settings.get("idle_shutdown_s", 1800),
        deadman_grace_s=settings.get("deadman_grace_s", 900),
        poweroff_retry_s=30,
    )
    return Agent(
        settings=s,
        topic="yoyo-heartbeat",
        store=w.store if store is None else store,
        publisher=DeadBus(),
        read_metrics=lambda: metrics,
        poweroff=lambda: w.sim.preempt("vm-0"),  # the guest powers itself off
        clock=w.clock,
        preempted=threading.Event(),
        store_every_s=STORE_EVERY_S,  # as deployed: the store is read once per heartbeat
    )


def agent_alone(w: World, agent: Agent, seconds: int, step_s: int = 10) -> float | None:
    """Step the agent (nothing else runs) until the VM is off; when it went off."""
    for _ in range(seconds // step_s):
        w.clock.advance(step_s)
        agent.step()
        if not w.sim.running("vm-0"):
            return w.clock.now()
    return None


STORE_EVERY_S = 30.0
BUSY = Metrics(running=1, waiting=2, succeeded=10)
IDLE = Metrics(running=0, waiting=0, succeeded=10)


def test_the_agent_alone_powers_off_when_the_lease_ended_and_the_control_plane_is_silent(
    world: World,
) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 600))
    lease = w.store.get_pool("gpu").lease
    assert lease is not None and w.sim.running("vm-0")
    # From here on the control plane is dead: no tick, no event, nothing writes the store.
    off = agent_alone(w, make_agent(w, BUSY, deadman_grace_s=900), 3 * 3600)
    TALLY[SUITE]["agent-alone"].add(relevant=True)
    assert off is not None, "the busy VM ran for 3 hours with no lease and no control plane"
    assert lease.deadline() + 900 <= off <= lease.deadline() + 900 + STORE_EVERY_S + 10


def test_the_agent_alone_obeys_the_kill_switch_even_when_busy(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 7200))
    agent = make_agent(w, BUSY)
    assert agent_alone(w, agent, 300) is None  # healthy and busy: left alone
    # The functions are broken; someone flips the switch in the console.
    flipped = w.clock.now()
    w.store.transact(lambda tx: tx.save_kill(KillSwitch(True, "console", "ops", flipped)))
    off = agent_alone(w, agent, 300)
    TALLY[SUITE]["agent-alone"].add(relevant=True)
    assert off is not None and off - flipped <= STORE_EVERY_S + 10


def test_the_agent_alone_powers_off_an_idle_vm_when_the_store_is_unreadable(
    world: World,
) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 7200))
    started = w.clock.now()
    agent = make_agent(w, IDLE, store=UnreadableStore(), idle_shutdown_s=1800)
    off = agent_alone(w, agent, 3 * 3600)
    TALLY[SUITE]["agent-alone"].add(relevant=True)
    assert off is not None and 1800 <= off - started <= 1800 + 10


def test_the_agent_leaves_a_busy_vm_with_a_valid_lease_alone(world: World) -> None:
    w = world
    w.service.handle(RunRequested("run", w.clock.now(), "gpu", "cycle", "nightly", 7200))
    assert agent_alone(w, make_agent(w, BUSY, deadman_grace_s=300), 3600) is None


# --- 3. Compute Engine alone: the configuration (a reading of terraform/, not a run) ----------


def _blocks(text: str, header: str) -> list[str]:
    """The bodies of every block whose opening line matches ``header`` (a regex)."""
    bodies = []
    for match in re.finditer(header + r"\s*\{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        bodies.append(text[match.end() : i - 1])
    return bodies


def test_every_pool_vm_terraform_creates_declares_max_run_duration_with_action_stop() -> None:
    files = sorted((REPO / "terraform").rglob("*.tf"))
    assert files, "no terraform/ found"
    vms = [
        (path, body)
        for path in files
        for body in _blocks(path.read_text(), r'resource\s+"google_compute_instance"\s+"\w+"')
    ]
    assert vms, "no google_compute_instance in terraform/"
    TALLY[SUITE]["cloud-alone-configured"].add(relevant=True)
    for path, body in vms:
        [scheduling] = _blocks(body, r"\bscheduling")
        assert re.search(r'instance_termination_action\s*=\s*"STOP"', scheduling), path
        [duration] = _blocks(scheduling, r"\bmax_run_duration")
        assert re.search(r"seconds\s*=\s*var\.max_session_s\b", duration), (path, duration)
    # The root module gives every pool's VMs the pool's own max_session_s, the same value
    # the control plane is configured with.
    compute = (REPO / "terraform" / "compute.tf").read_text()
    [pool_module] = _blocks(compute, r'module\s+"pool"')
    assert re.search(r"for_each\s*=\s*var\.pools\b", pool_module)
    assert re.search(r"max_session_s\s*=\s*each\.value\.max_session_s\b", pool_module)
    # config.tf passes every pool attribute but the deployment's own to the control plane
    # (tests/infra/test_config_reference.py applies it: max_session_s reaches the config).
    config_tf = (REPO / "terraform" / "config.tf").read_text()
    [deployment_only] = re.findall(r"^\s*pools\s*=\s*\[(.*)\]$", config_tf, re.MULTILINE)
    assert '"max_session_s"' not in deployment_only
