"""decide() names the rule behind every instance's desired state (``Decision.why``), and
every action carries the same rule and reason."""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.domain import model as m
from yoyo_control.domain.decide import Decision, decide
from yoyo_control.domain.model import ActionKind, Rule

T0 = 1_800_000_000.0
POLICY = m.PoolPolicy("p", "z", ("vm-0", "vm-1"), keepalive="fixed", restart_budget=2)
OFF = m.KillSwitch()


def _lease(expires: float = T0 + 1800) -> m.Lease:
    return m.Lease(m.Holder.CYCLE, ("nightly",), 1, T0, expires, T0 + 8 * 3600)


def _running(name: str, since: float = T0) -> m.Instance:
    start = m.ActionRecord(ActionKind.START, 1, "rid", since, "test", m.OutcomeKind.DONE)
    return m.Instance(name, m.Desired.RUNNING, "RUNNING", since, since, last_action=start)


def _why(d: Decision) -> dict[str, tuple[Rule, str]]:
    return {name: (c.rule, c.reason) for name, c in d.why.items()}


def _actions_carry_their_why(d: Decision) -> None:
    for action in d.actions:
        assert (action.rule, action.reason) == _why(d)[action.instance]


def test_every_instance_is_explained_by_the_kill_switch_while_it_is_engaged() -> None:
    s = m.PoolState("p", 1, lease=_lease(), instances={"vm-0": _running("vm-0")})
    d = decide(s, m.KillSwitch(True, "maintenance", "ops", T0), POLICY, T0 + 60)
    assert {n: r for n, (r, _) in _why(d).items()} == {
        "vm-0": Rule.KILL_SWITCH,
        "vm-1": Rule.KILL_SWITCH,
    }
    assert "maintenance" in _why(d)["vm-0"][1]
    _actions_carry_their_why(d)


def test_a_paused_pool_names_the_spend_cap() -> None:
    policy = replace(POLICY, daily_cap_usd=1.0)
    ledger = m.Ledger(day="2027-01-15", month="2027-01", day_usd=5.0, month_usd=5.0)
    s = m.PoolState("p", 1, lease=_lease(), instances={"vm-0": _running("vm-0")}, ledger=ledger)
    d = decide(s, OFF, policy, T0 + 60)
    assert _why(d)["vm-0"][0] == Rule.SPEND_CAP
    _actions_carry_their_why(d)


def test_the_lease_explains_a_running_instance_and_a_spare_one() -> None:
    s = m.PoolState(
        "p",
        1,
        lease=_lease(),
        instances={"vm-0": _running("vm-0")},
        heartbeats={"vm-0": m.Heartbeat("vm-0", "b1", T0 + 50, T0 + 50, busy=True)},
    )
    d = decide(s, OFF, POLICY, T0 + 60)
    assert _why(d) == {
        "vm-0": (Rule.LEASE, "lease epoch 1 held by cycle"),
        "vm-1": (Rule.LEASE, "not needed under lease epoch 1"),
    }


def test_an_expired_lease_names_rule_3_and_the_restarted_instance_its_own_rule() -> None:
    expired = m.PoolState("p", 1, lease=_lease(T0 + 100), instances={"vm-0": _running("vm-0")})
    d = decide(expired, OFF, POLICY, T0 + 200)
    assert _why(d)["vm-0"] == (Rule.NO_LEASE, "lease epoch 1 expired")
    _actions_carry_their_why(d)

    silent = m.PoolState("p", 1, lease=_lease(), instances={"vm-0": _running("vm-0")})
    d = decide(silent, OFF, POLICY, T0 + 400)  # past the boot grace, never heard from
    rule, reason = _why(d)["vm-0"]
    assert rule == Rule.HEARTBEAT_GAP and reason.startswith("vm-0: no heartbeat; restart 1/2")
    _actions_carry_their_why(d)


def test_an_orphan_is_explained_as_one() -> None:
    orphan = m.Instance("stray", observed="RUNNING", observed_at=T0, running_since=T0, orphan=True)
    d = decide(m.PoolState("p", 1, instances={"stray": orphan}), OFF, POLICY, T0 + 60)
    assert _why(d)["stray"][0] == Rule.ORPHAN
    assert [a.kind for a in d.actions] == [ActionKind.STOP]
    _actions_carry_their_why(d)
