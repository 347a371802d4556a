"""Pre-warm (domain/prewarm.py and decide's ``prewarm`` rule): the history predicts a first
request; the kill switch and the spend cap win; the daily budget holds; every pre-warm is
an event with its reason, through the lease (it never starts a VM itself)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain import prewarm as P
from yoyo_control.domain.decide import decide, prewarm_settings
from yoyo_control.domain.facts import Tick
from yoyo_control.domain.history import History
from yoyo_control.domain.model import (
    ActionKind,
    Holder,
    KillSwitch,
    Ledger,
    PoolPolicy,
    PoolState,
    Rule,
)
from yoyo_control.service import Service

NOW = 1_803_859_200.0 + 7 * 86400 + 8 * 3600  # Monday 2027-03-08 08:00 UTC
POLICY = PoolPolicy(pool="p", zone="z", instances=("vm-0",), hourly_price_usd=3.6)
SETTINGS = prewarm_settings(POLICY)
OFF = KillSwitch()


def predicting(at: float, days: int = 7, **kw: object) -> History:
    """A history whose first request came at ``at``'s time of day on each of ``days`` days."""
    firsts = tuple(int((at - j * 86400) // 60) for j in range(days, 0, -1))
    return History(since=int((at - (days + 1) * 86400) // 60), firsts=firsts, **kw)  # type: ignore[arg-type]


def ready_for_now() -> PoolState:
    # Ready just when it comes: the request is expected one boot from now.
    return PoolState(pool="p", history=predicting(NOW + POLICY.boot_s))


def test_a_predicted_first_request_grants_a_prewarm_lease_with_its_reason() -> None:
    d = decide(ready_for_now(), OFF, POLICY, NOW)
    assert d.state.lease is not None and d.state.lease.holder == Holder.PREWARM
    assert d.state.lease.expires_at == NOW + SETTINGS.lease_s
    assert [a.kind for a in d.actions] == [ActionKind.START]  # through the lease, rule 4
    granted = [c.reason for c in d.changes if c.rule == Rule.LEASE]
    assert granted and "granted to prewarm: pre-warm: a first request expected" in granted[0]
    assert d.state.history.prewarm_s == SETTINGS.lease_s and d.state.history.prewarm_at == NOW


def test_it_waits_while_a_later_start_is_worth_more() -> None:
    state = PoolState(pool="p", history=predicting(NOW + 1200))
    d = decide(state, OFF, POLICY, NOW)
    assert d.state.lease is None and not d.actions and d.state.history == state.history


def test_the_kill_switch_wins_and_charges_nothing() -> None:
    state = ready_for_now()
    d = decide(state, KillSwitch(True, "stop", "ops"), POLICY, NOW)
    assert d.state.lease is None and not d.actions
    assert d.state.history == state.history


def test_the_spend_cap_wins_and_charges_nothing() -> None:
    capped = replace(POLICY, daily_cap_usd=1.0)
    state = replace(
        ready_for_now(),
        ledger=Ledger(
            day="2027-03-08", month="2027-03", day_usd=2.0, month_usd=2.0, accrued_until=NOW
        ),
    )
    d = decide(state, OFF, capped, NOW)
    assert d.state.lease is None and not d.actions
    assert d.state.history == state.history


def test_an_operators_stop_holds_prewarm_off_for_the_rest_of_the_day() -> None:
    stopped = replace(ready_for_now(), operator_stop_at=NOW - 7 * 3600)  # 01:00 today
    d = decide(stopped, OFF, POLICY, NOW)
    assert d.state.lease is None and not d.actions
    yesterday = replace(ready_for_now(), operator_stop_at=NOW - 9 * 3600)  # 23:00 before
    assert decide(yesterday, OFF, POLICY, NOW).state.lease is not None


def test_a_budget_of_zero_turns_it_off() -> None:
    d = decide(ready_for_now(), OFF, replace(POLICY, prewarm_budget_min=0), NOW)
    assert d.state.lease is None and not d.actions


def test_the_days_budget_is_respected_and_rolls_over_at_local_midnight() -> None:
    spent = POLICY.prewarm_budget_min * 60 - SETTINGS.lease_s + 1
    history = replace(predicting(NOW + POLICY.boot_s), prewarm_day="2027-03-08", prewarm_s=spent)
    verdict = P.decide(history, NOW, SETTINGS, has_lease=False)
    assert not verdict.fire and verdict.reason.startswith("budget:")
    yesterday = replace(history, prewarm_day="2027-03-07")
    assert P.decide(yesterday, NOW, SETTINGS, has_lease=False).fire


def test_over_a_day_of_ticks_the_charge_never_exceeds_the_budget() -> None:
    # First requests every hour of Monday and Tuesday: on Wednesday it would pre-warm
    # every hour, but the budget holds two pre-warm leases a day.
    wednesday = NOW + 2 * 86400 - 8 * 3600
    firsts = tuple(int((wednesday - 2 * 86400 + h * 3600) // 60) for h in range(48))
    since = int((wednesday - 2 * 86400 - 60) // 60)
    state = PoolState(pool="p", history=History(since=since, firsts=firsts))
    granted = 0
    for minute in range(24 * 60):
        now = wednesday + minute * 60
        d = decide(state, OFF, POLICY, now)
        if (
            d.state.lease is not None
            and d.state.lease.holder == Holder.PREWARM
            and state.lease is None
        ):
            granted += 1
        state = replace(d.state, lease=None)  # nobody came: the lease ends
    assert granted == int(POLICY.prewarm_budget_min * 60 // SETTINGS.lease_s) == 2


def test_an_unused_prewarm_lease_is_not_idle_until_its_deadline() -> None:
    d = decide(ready_for_now(), OFF, POLICY, NOW)
    lease = d.state.lease
    assert lease is not None
    later = decide(d.state, OFF, POLICY, NOW + SETTINGS.lease_s - 60)
    assert later.state.lease == lease  # the keep-alive does not release it early
    after = decide(later.state, OFF, POLICY, NOW + SETTINGS.lease_s + 1)
    assert after.state.lease is None  # rule 3: it ends at its own deadline
    assert not any(a.kind == ActionKind.START for a in after.actions)


def test_next_planned_names_the_coming_prewarm() -> None:
    history = predicting(NOW + 3 * 3600)
    planned = P.next_planned(history, NOW, SETTINGS)
    assert planned is not None
    at, _ = planned
    assert NOW + 3 * 3600 - SETTINGS.lease_s <= at <= NOW + 3 * 3600
    assert P.next_planned(history, NOW, replace(SETTINGS, budget_min=0)) is None


def test_the_service_logs_the_prewarm_and_starts_through_compute(tmp_path: Path) -> None:
    config = parse_config({"pools": {"gpu": {"zone": "z", "instances": ["vm-0"]}}})
    clock = ManualClock(NOW)
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    store = SqliteStore(tmp_path / "s.db")
    store.transact(lambda tx: tx.save_pool(replace(ready_for_now(), pool="gpu")))
    Service(store, compute, clock, config).handle(Tick("t1", NOW))
    assert [c.kind for c in compute.acted("start")] == ["start"]
    logged = " ".join(str(e.data) for e in store.events(pool="gpu", limit=50))
    assert "granted to prewarm: pre-warm: a first request expected" in logged
    assert store.get_pool("gpu").history.prewarm_at == NOW
