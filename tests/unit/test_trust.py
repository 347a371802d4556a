"""Issue 12 (trust), the pure cases: each test is named after its case and failed before its fix."""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.domain.budget import BudgetRules, kill_reason
from yoyo_control.domain.decide import decide
from yoyo_control.domain.facts import BudgetNotified
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
