"""The real-time ledger (domain/ledger.py) and rule 2: arithmetic, periods, caps.

Times are built from local calendar dates so every period boundary is explicit. The
last tests pin defects found here and fixed (stop time charged, clocks that run
backwards).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoyo_control.domain.decide import decide
from yoyo_control.domain.facts import StatusObserved, apply_fact
from yoyo_control.domain.ledger import (
    Cap,
    CapPeriod,
    accrue,
    billed_seconds,
    cap_reached,
    next_period_start,
    period_keys,
)
from yoyo_control.domain.model import (
    Action,
    ActionKind,
    ActionRecord,
    Desired,
    Instance,
    KillSwitch,
    Lease,
    Ledger,
    PoolPolicy,
    PoolState,
    Rule,
)
from yoyo_control.domain.outcomes import Outcome, record_outcome

PRICE = 3.6  # per hour: 0.001 per second, so dollars read as seconds / 1000
OFF = KillSwitch()


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: str = "UTC") -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp()


def running(name: str, since: float, status: str = "RUNNING") -> Instance:
    return Instance(name, Desired.RUNNING, status, since, since)


def charged(ledger: Ledger, instances: list[Instance], now: float, tz: str = "UTC") -> Ledger:
    return accrue(ledger, instances, PRICE, now, tz)


# --- arithmetic ------------------------------------------------------------------------


def test_running_time_times_hourly_price() -> None:
    t0 = at(2027, 3, 10, 9)
    ledger = charged(Ledger(), [running("a", t0)], t0 + 3600)
    assert ledger.day_usd == pytest.approx(3.6)
    assert ledger.month_usd == pytest.approx(3.6)
    assert (ledger.day, ledger.month, ledger.accrued_until) == ("2027-03-10", "2027-03", t0 + 3600)


def test_first_accrual_charges_each_instance_from_its_own_running_since() -> None:
    t0 = at(2027, 3, 10, 9)
    ledger = charged(Ledger(), [running("a", t0), running("b", t0 + 600)], t0 + 1200)
    assert ledger.day_usd == pytest.approx((1200 + 600) / 1000)


def test_overlapping_instances_are_each_charged_for_their_own_time() -> None:
    t0 = at(2027, 3, 10, 9)
    a = running("a", t0)
    ledger = charged(Ledger(), [a], t0 + 300)
    b = running("b", t0 + 400)  # starts between two accruals
    ledger = charged(ledger, [a, b], t0 + 600)
    assert ledger.day_usd == pytest.approx((600 + 200) / 1000)


def test_instances_not_billed_are_not_charged() -> None:
    t0 = at(2027, 3, 10, 9)
    idle = [
        Instance("a", observed="TERMINATED", running_since=None),
        Instance("b", observed="STAGING", running_since=t0),  # billing starts at RUNNING
        Instance("c", observed="MISSING", running_since=None),
    ]
    assert billed_seconds(idle, t0, t0 + 600) == 0
    assert charged(Ledger(), idle, t0 + 600).day_usd == 0


def test_staging_time_is_charged_once_the_instance_is_observed_running() -> None:
    """Conservative: running_since is the first STAGING observation, so boot time counts."""
    t0 = at(2027, 3, 10, 9)
    ledger = charged(Ledger(), [running("a", t0, "STAGING")], t0 + 30)
    assert ledger.day_usd == 0 and ledger.accrued_until is None
    ledger = charged(ledger, [running("a", t0, "RUNNING")], t0 + 90)
    assert ledger.day_usd == pytest.approx(0.090)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 7200), min_size=1, max_size=12))
def test_splitting_an_interval_into_ticks_never_changes_the_total(cuts: list[float]) -> None:
    t0 = at(2027, 3, 10, 9)
    instances = [running("a", t0), running("b", t0 + 100)]
    stepped = Ledger()
    for cut in sorted(cuts):
        stepped = charged(stepped, instances, t0 + 100 + cut)
    whole = charged(Ledger(), instances, t0 + 100 + max(cuts))
    assert stepped.day_usd == pytest.approx(whole.day_usd, abs=1e-9)
    assert stepped.month_usd == pytest.approx(whole.month_usd, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    st.floats(1, 3600),
    st.floats(0, 86400 * 3),
)
def test_one_accrual_charges_at_most_running_instances_times_the_elapsed_time(
    n: int, tick: float, offset: float
) -> None:
    """The overrun past a cap is bounded by one tick of the pool's running price."""
    t0 = at(2027, 3, 10, 9) + offset
    instances = [running(f"i{k}", t0 - 86400 * 10) for k in range(n)]
    before = charged(Ledger(), instances, t0)
    after = charged(before, instances, t0 + tick)
    bound = n * PRICE * tick / 3600 + 1e-9
    same_day = before.day == after.day
    assert after.month_usd - (before.month_usd if before.month == after.month else 0) <= bound
    assert after.day_usd - (before.day_usd if same_day else 0) <= bound


# --- periods ---------------------------------------------------------------------------


def test_an_interval_crossing_midnight_charges_each_day_its_own_part() -> None:
    a = running("a", at(2027, 3, 10, 23))
    ledger = charged(Ledger(), [a], at(2027, 3, 10, 23, 30))
    assert ledger.day == "2027-03-10" and ledger.day_usd == pytest.approx(1.8)
    ledger = charged(ledger, [a], at(2027, 3, 11, 0, 30))
    assert ledger.day == "2027-03-11"
    assert ledger.day_usd == pytest.approx(1.8)  # only 00:00–00:30 belongs to the new day
    assert ledger.month_usd == pytest.approx(5.4)  # the whole 90 minutes are this month's


def test_an_interval_crossing_the_month_end_starts_the_month_from_zero() -> None:
    a = running("a", at(2027, 1, 31, 23))
    ledger = charged(Ledger(), [a], at(2027, 1, 31, 23, 30))
    ledger = charged(ledger, [a], at(2027, 2, 1, 0, 30))
    assert (ledger.day, ledger.month) == ("2027-02-01", "2027-02")
    assert ledger.day_usd == pytest.approx(1.8)
    assert ledger.month_usd == pytest.approx(1.8)


def test_the_year_end_rolls_both_periods() -> None:
    a = running("a", at(2027, 12, 31, 23, 45))
    ledger = charged(
        Ledger(day="2027-12-31", month="2027-12", month_usd=100.0), [a], at(2028, 1, 1, 0, 15)
    )
    assert (ledger.day, ledger.month) == ("2028-01-01", "2028-01")
    assert ledger.day_usd == pytest.approx(0.9) and ledger.month_usd == pytest.approx(0.9)


def test_periods_are_calendar_days_in_the_configured_time_zone() -> None:
    # 03:30 UTC on the 11th is still the 10th in New York and already the 11th in Tokyo.
    now = at(2027, 3, 11, 3, 30)
    assert period_keys(now, "UTC") == ("2027-03-11", "2027-03")
    assert period_keys(now, "America/New_York") == ("2027-03-10", "2027-03")
    assert period_keys(now, "Asia/Tokyo") == ("2027-03-11", "2027-03")
    a = running("a", at(2027, 3, 10, 22, 0, "America/New_York"))  # 03:00 UTC
    ledger = charged(Ledger(), [a], now, "America/New_York")
    assert ledger.day == "2027-03-10" and ledger.day_usd == pytest.approx(1.8)


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2027, 3, 14), 23), ((2027, 11, 7), 25), ((2027, 6, 1), 24)],
    ids=["spring-forward", "fall-back", "plain"],
)
def test_a_local_day_across_dst_is_charged_for_its_real_length(
    day: tuple[int, int, int], hours: int
) -> None:
    tz = "America/New_York"
    start = at(*day, 0, 0, tz)
    a = running("a", start)
    ledger = Ledger()
    now = start
    while True:  # tick every 10 minutes until the next local midnight
        nxt = now + 600
        if period_keys(nxt, tz)[0] != period_keys(start, tz)[0]:
            break
        now = nxt
        ledger = charged(ledger, [a], now, tz)
    end_of_day = next_period_start(start, tz)
    ledger = charged(ledger, [a], end_of_day - 1e-6, tz)
    assert end_of_day - start == hours * 3600
    assert ledger.day_usd == pytest.approx(hours * 3.6, abs=1e-6)


def test_next_period_start_is_the_next_local_midnight_across_dst() -> None:
    tz = "Europe/Berlin"
    # 2027-03-28 is 23 hours long in Berlin, 2027-10-31 is 25.
    assert next_period_start(at(2027, 3, 28, 12, 0, tz), tz) == at(2027, 3, 29, 0, 0, tz)
    assert next_period_start(at(2027, 10, 31, 12, 0, tz), tz) == at(2027, 11, 1, 0, 0, tz)
    assert next_period_start(at(2027, 12, 31, 23, 59, tz), tz) == at(2028, 1, 1, 0, 0, tz)


def test_a_roll_over_with_nothing_running_resets_the_period_and_nothing_else() -> None:
    old = Ledger(day="2027-03-10", month="2027-03", day_usd=7.0, month_usd=70.0)
    ledger = charged(old, [], at(2027, 3, 11, 8))
    assert ledger == Ledger(day="2027-03-11", month="2027-03", day_usd=0.0, month_usd=70.0)


# --- an idle pool writes nothing -------------------------------------------------------

POLICY = PoolPolicy(pool="p", zone="z", instances=("vm-0",), hourly_price_usd=PRICE)


def test_an_idle_pool_decides_no_state_change_within_a_day() -> None:
    now = at(2027, 3, 10, 9)
    today = Ledger(day="2027-03-10", month="2027-03", day_usd=1.0, month_usd=9.0)
    idle = PoolState(
        pool="p", ledger=today, instances={"vm-0": Instance("vm-0", observed="TERMINATED")}
    )
    first = decide(idle, OFF, POLICY, now).state
    for minute in range(1, 30):
        d = decide(first, OFF, POLICY, now + 60 * minute)
        assert d.state == first and not d.actions and not d.changes


def test_an_idle_pool_changes_once_per_period_roll_over() -> None:
    now = at(2027, 3, 10, 23, 58)
    idle = PoolState(pool="p", ledger=Ledger(day="2027-03-10", month="2027-03", day_usd=1.0))
    idle = decide(idle, OFF, POLICY, now).state
    after = decide(idle, OFF, POLICY, now + 240).state
    assert after != idle and after.ledger.day == "2027-03-11" and after.ledger.day_usd == 0
    assert decide(after, OFF, POLICY, now + 300).state == after


# --- caps (rule 2) ---------------------------------------------------------------------


def test_cap_reached_names_the_cap_and_the_spend() -> None:
    ledger = Ledger(day="2027-03-10", month="2027-03", day_usd=5.0, month_usd=50.0)
    assert cap_reached(ledger, None, None) is None
    assert cap_reached(ledger, 5.01, 100) is None
    assert cap_reached(ledger, 5.0, None) == Cap(
        CapPeriod.DAY, "daily cap 5.00 reached (5.00 on 2027-03-10)"
    )
    assert cap_reached(ledger, None, 50.0) == Cap(
        CapPeriod.MONTH, "monthly cap 50.00 reached (50.00 in 2027-03)"
    )
    assert getattr(cap_reached(ledger, 1.0, 1.0), "period", None) == CapPeriod.DAY


def _lease(now: float) -> Lease:
    return Lease("cycle", ("test",), 1, now, now + 10**6, now + 10**6)


def _run_ticks(policy: PoolPolicy, start: float, minutes: int) -> list[PoolState]:
    start_action = ActionRecord(ActionKind.START, 1, "rid", start, "test", outcome="done")
    inst = replace(running("vm-0", start), last_action=start_action)
    s = PoolState(pool="p", epoch=1, lease=_lease(start), instances={"vm-0": inst})
    states = []
    for minute in range(1, minutes + 1):
        d = decide(s, OFF, policy, start + 60 * minute)
        s = d.state
        if any(a.kind == ActionKind.STOP for a in d.actions):
            # the stop took effect: the instance no longer runs
            inst = replace(s.instances["vm-0"], observed="TERMINATED", running_since=None)
            s = replace(s, instances={"vm-0": inst})
        states.append(s)
    return states


def test_a_daily_cap_pauses_within_one_tick_and_lifts_at_local_midnight() -> None:
    tz = "Europe/Berlin"
    # 1000 s at 0.001/s; no idle release and no heartbeat rule: only the cap can stop it.
    policy = replace(
        POLICY, daily_cap_usd=1.0, timezone=tz, idle_timeout_s=86400, heartbeat_gap_s=86400
    )
    start = at(2027, 3, 10, 23, 30, tz)
    states = _run_ticks(policy, start, 40)
    paused = [s for s in states if s.paused]
    first = paused[0]
    assert "daily cap" in (first.paused or "") and first.lease is None
    # Overrun past the cap is at most one tick (60 s) of one instance's price.
    assert 1.0 <= first.ledger.day_usd <= 1.0 + PRICE * 60 / 3600 + 1e-9
    # At local midnight the day rolls over and the pause lifts; nothing ran meanwhile.
    after_midnight = [s for s in states if s.ledger.day == "2027-03-11"]
    assert after_midnight and all(s.paused is None for s in after_midnight)
    assert all(s.ledger.day_usd == 0 for s in after_midnight)


def test_a_monthly_cap_holds_across_days_until_the_month_rolls_over() -> None:
    policy = replace(POLICY, monthly_cap_usd=10.0)
    ledger = Ledger(day="2027-03-30", month="2027-03", day_usd=0.0, month_usd=10.0)
    s = PoolState(pool="p", ledger=ledger)
    for when, paused in [
        (at(2027, 3, 31, 12), True),
        (at(2027, 3, 31, 23, 59), True),
        (at(2027, 4, 1, 0, 1), False),
    ]:
        s = decide(s, OFF, policy, when).state
        assert bool(s.paused) is paused, when


def test_a_paused_pool_denies_new_leases_and_names_rule_2() -> None:
    policy = replace(POLICY, daily_cap_usd=1.0)
    now = at(2027, 3, 10, 9)
    s = PoolState(
        pool="p",
        ledger=Ledger(day="2027-03-10", month="2027-03", day_usd=1.0, month_usd=1.0),
        requests=(),
    )
    from yoyo_control.domain.model import LeaseRequest

    s = replace(s, requests=(LeaseRequest("wake", "request waiting", now + 600),))
    d = decide(s, OFF, policy, now)
    assert d.state.lease is None and not d.actions
    assert [c.rule for c in d.changes] == [Rule.SPEND_CAP]


def test_a_preemption_observed_by_the_tick_is_charged_up_to_the_observation() -> None:
    t0 = at(2027, 3, 10, 9)
    s = PoolState(pool="p", instances={"vm-0": running("vm-0", t0)})
    s = decide(s, OFF, POLICY, t0 + 60).state
    seen = StatusObserved("m", t0 + 100, "p", {"vm-0": "TERMINATED"})
    s, _ = apply_fact(s, seen, POLICY, t0 + 101)
    assert s.ledger.day_usd == pytest.approx(0.100)
    s = decide(s, OFF, POLICY, t0 + 160).state
    assert s.ledger.day_usd == pytest.approx(0.100)


# --- defects found by review, since fixed (regression tests) ---------------------------


def test_time_between_the_stop_decision_and_its_outcome_is_charged() -> None:
    """A stop's outcome arrives when the operation finished (the adapter waits for it):
    the instance ran until then, but the outcome marks it TERMINATED without accruing,
    so the next accrual sees nothing running and the interval is never charged."""
    t0 = at(2027, 3, 10, 9)
    record = ActionRecord(ActionKind.STOP, 2, "stop-rid", t0 + 60, "test")
    inst = replace(running("vm-0", t0), last_action=record, desired=Desired.STOPPED)
    s = PoolState(pool="p", epoch=2, instances={"vm-0": inst})
    s = replace(s, ledger=charged(Ledger(), [inst], t0 + 60))  # the decision's accrual
    action = Action(ActionKind.STOP, "p", "vm-0", "z", 2, "stop-rid", Rule.IDLE, "idle")
    s, current = record_outcome(s, action, Outcome.DONE, "", POLICY, t0 + 105)
    assert current
    s = decide(s, OFF, POLICY, t0 + 120).state
    assert s.ledger.day_usd == pytest.approx(0.105)  # ran t0 … t0+105


def test_an_accrual_at_an_earlier_time_never_charges_an_interval_twice() -> None:
    """Service.reconcile reads ``now`` before its transaction's reads, so a reconcile can
    commit with a ``now`` earlier than the ledger's ``accrued_until``."""
    t0 = at(2027, 3, 10, 9)
    a = [running("a", t0)]
    ledger = charged(Ledger(), a, t0 + 60)
    ledger = charged(ledger, a, t0 + 30)  # a late transaction with an older clock
    ledger = charged(ledger, a, t0 + 90)
    assert ledger.day_usd == pytest.approx(0.090)


def test_a_clock_just_before_midnight_does_not_erase_the_new_days_spend() -> None:
    a = [running("a", at(2027, 3, 11, 0, 0))]
    ledger = Ledger(day="2027-03-11", month="2027-03", day_usd=2.0, month_usd=20.0)
    ledger = replace(ledger, accrued_until=at(2027, 3, 11, 0, 30))
    ledger = charged(ledger, a, at(2027, 3, 10, 23, 59) + 59)  # a clock a second behind
    assert ledger.day == "2027-03-11" and ledger.day_usd >= 2.0
