"""Issue 12 (trust), the pure cases: each test is named after its case and failed before its fix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.budget import BudgetRules, kill_reason
from yoyo_control.domain.decide import decide
from yoyo_control.domain.facts import BudgetNotified, KillRequested, RunRequested, Tick
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    PoolPolicy,
    PoolState,
)
from yoyo_control.service import Service

T0 = 1_800_000_000.0
OFF = KillSwitch()
POLICY = PoolPolicy(
    pool="p",
    zone="z",
    instances=("vm-0", "vm-1", "vm-2"),
    keepalive="fixed",
    idle_timeout_s=600,
    lease_s=1800,
    queue_threshold=10,
    action_retry_s=60,
)


def running(name: str, since: float = T0) -> Instance:
    start = ActionRecord(ActionKind.START, 1, f"rid-{name}", since, "test", outcome="done")
    return Instance(name, Desired.RUNNING, "RUNNING", since, since, last_action=start)


def beat(name: str, at: float, running: int = 0) -> Heartbeat:
    return Heartbeat(name, "b1", at, at, busy=running > 0, running=running)


def stopped(decision: object) -> list[str]:
    return [a.instance for a in decision.actions if a.kind == ActionKind.STOP]  # type: ignore[attr-defined]


# --- case 3: scale-down stops idle VMs first --------------------------------------------


def test_case3_scale_down_stops_the_idle_vm_and_keeps_the_busy_one() -> None:
    policy = replace(POLICY, instances=("vm-0", "vm-1"))
    now = T0 + 600
    lease = Lease("cycle", ("x",), 1, T0, now + 1800, T0 + 8 * 3600)
    s = PoolState(
        pool="p",
        epoch=1,
        lease=lease,
        instances={"vm-0": running("vm-0"), "vm-1": running("vm-1")},
        heartbeats={"vm-0": beat("vm-0", now - 10), "vm-1": beat("vm-1", now - 10, running=3)},
    )
    d = decide(s, OFF, policy, now)
    assert stopped(d) == ["vm-0"]
    assert d.state.instances["vm-1"].desired == "RUNNING"


def test_case3_no_vm_with_work_in_flight_stops_while_an_idle_one_runs() -> None:
    """The class: whatever the configuration order, the busy VMs are kept and a running
    idle VM is kept before a stopped one is started."""
    now = T0 + 600
    lease = Lease("cycle", ("x",), 1, T0, now + 1800, T0 + 8 * 3600)
    for busy in POLICY.instances:
        for idle in POLICY.instances:
            if idle == busy:
                continue
            (off,) = set(POLICY.instances) - {busy, idle}
            s = PoolState(
                pool="p",
                epoch=1,
                lease=lease,
                instances={
                    busy: running(busy),
                    idle: running(idle),
                    off: Instance(off, observed="TERMINATED", observed_at=T0),
                },
                heartbeats={busy: beat(busy, now - 5, running=2), idle: beat(idle, now - 5)},
            )
            d = decide(s, OFF, POLICY, now)
            assert stopped(d) == [idle], (busy, idle)  # one wanted: the busy one, kept
            assert d.state.instances[busy].desired == "RUNNING"
            assert d.state.instances[idle].desired == "STOPPED"


# --- case 9: a zero budget kills ----------------------------------------------------------


def budget(cost: float, amount: float) -> BudgetNotified:
    return BudgetNotified("m", T0, "b-1", "b", cost=cost, amount=amount, currency="USD")


def test_case9_a_zero_budget_kills() -> None:
    rules = BudgetRules(("b-1",), kill_fraction=1.0, kill_thresholds=(1.0,))
    assert kill_reason(budget(0.01, 0.0), rules) == "budget: 0.01 of 0.00 USD"


def test_case9_the_rule_is_cost_at_or_over_amount_times_fraction_for_every_amount() -> None:
    rules = BudgetRules(("b-1",), kill_fraction=0.5, kill_thresholds=())
    for amount in (0.0, 0.01, 1.0, 150.0):
        assert kill_reason(budget(amount * 0.5, amount), rules) is not None
        if amount:
            assert kill_reason(budget(amount * 0.49, amount), rules) is None


# --- case 7: a pending action whose process died is re-issued at the next tick -------------

CONFIG = parse_config(
    {"pools": {"gpu": {"zone": "z", "instances": ["vm-0"], "action_retry_s": 60}}}
)


@pytest.fixture
def service(tmp_path: Path) -> Service:
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    return Service(SqliteStore(tmp_path / "s.db"), compute, ManualClock(T0), CONFIG)


def _dies_before_the_compute_call(service: Service, fact: object) -> None:
    """Handle ``fact`` in a process that dies after the commit, before calling Compute."""
    original = service.execute
    service.execute = lambda actions: ()  # type: ignore[method-assign]
    try:
        service.handle(fact)  # type: ignore[arg-type]
    finally:
        service.execute = original  # type: ignore[method-assign]


def test_case7_a_stop_whose_process_died_is_reissued_at_the_next_tick(service: Service) -> None:
    compute, clock = service.compute, service.clock
    service.handle(RunRequested("r1", clock.now(), "gpu", "cycle", "nightly", 1800))
    assert compute.status["vm-0"] == "RUNNING"  # type: ignore[attr-defined]
    clock.advance(5)  # type: ignore[attr-defined]
    _dies_before_the_compute_call(service, KillRequested("k1", clock.now(), "incident", "ops"))
    pending = service.store.get_pool("gpu").instances["vm-0"].last_action
    assert pending is not None and pending.kind == ActionKind.STOP and pending.outcome is None
    clock.advance(service.config.pools["gpu"].tick_s / 2)  # type: ignore[attr-defined]
    service.handle(Tick("t1", clock.now()))
    stops = compute.acted("stop")  # type: ignore[attr-defined]
    assert [c.request_id for c in stops] == [pending.request_id]  # the same id: deduplicated
    assert compute.status["vm-0"] in ("STOPPING", "TERMINATED")  # type: ignore[attr-defined]


def test_case7_a_start_whose_process_died_is_reissued_at_the_next_tick(service: Service) -> None:
    compute, clock = service.compute, service.clock
    _dies_before_the_compute_call(
        service, RunRequested("r1", clock.now(), "gpu", "cycle", "nightly", 1800)
    )
    pending = service.store.get_pool("gpu").instances["vm-0"].last_action
    assert pending is not None and pending.kind == ActionKind.START and pending.outcome is None
    clock.advance(30)  # type: ignore[attr-defined]
    service.handle(Tick("t1", clock.now()))
    starts = compute.acted("start")  # type: ignore[attr-defined]
    assert [c.request_id for c in starts] == [pending.request_id]
    assert compute.status["vm-0"] == "RUNNING"  # type: ignore[attr-defined]


def test_case7_an_action_in_flight_is_not_reissued_by_other_events(service: Service) -> None:
    """Only a tick's fresh observation re-issues: other events leave an in-flight call
    to its executor until action_retry_s."""
    compute, clock = service.compute, service.clock
    _dies_before_the_compute_call(
        service, RunRequested("r1", clock.now(), "gpu", "cycle", "nightly", 1800)
    )
    clock.advance(30)  # type: ignore[attr-defined]
    service.handle(RunRequested("r2", clock.now(), "gpu", "operator", "again", 1800))
    assert compute.acted("start") == []  # type: ignore[attr-defined]
