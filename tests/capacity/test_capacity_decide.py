"""decide() across zones: a capacity refusal backs its zone off, the next zone is chosen,
the standard fallback opens only after spot was refused everywhere (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from yoyo_control.config import parse_config
from yoyo_control.domain.decide import Decision, decide
from yoyo_control.domain.facts import RunRequested, StatusObserved, apply_fact
from yoyo_control.domain.model import (
    ActionKind,
    Heartbeat,
    Instance,
    KillSwitch,
    PoolState,
    Rule,
    ZoneHealth,
)
from yoyo_control.domain.outcomes import Outcome, record_outcome

T0 = 1_800_000_000.0
NO_KILL = KillSwitch()


def policy(**extra: object):
    pool = {
        "zone": "z1",
        "hourly_price_usd": 0.7,
        "instances": [
            "a",
            {"name": "b", "zone": "z2", "hourly_price_usd": 0.8},
            {"name": "c", "zone": "z3", "hourly_price_usd": 0.9},
        ],
        "zone_backoff_s": 60,
        **extra,
    }
    return parse_config({"pools": {"gpu": pool}}).pools["gpu"]


def wake(state: PoolState, pol, now: float) -> PoolState:
    fact = RunRequested("m", now, "gpu", "wake", "request", 600)
    return apply_fact(state, fact, pol, now)[0]


def starts(decision: Decision) -> list[tuple[str, str]]:
    return [(a.instance, a.zone) for a in decision.actions if a.kind == ActionKind.START]


def refuse(decision: Decision, pol, now: float) -> PoolState:
    """Every start of ``decision`` comes back as a capacity refusal."""
    state = decision.state
    for action in decision.actions:
        if action.kind == ActionKind.START:
            state, current = record_outcome(
                state, action, Outcome.CAPACITY, "ZONE_RESOURCE_POOL_EXHAUSTED", pol, now
            )
            assert current
    return state


def succeed(decision: Decision, pol, now: float) -> PoolState:
    state = decision.state
    for action in decision.actions:
        state, _ = record_outcome(state, action, Outcome.DONE, "", pol, now)
    return state


def test_a_refused_zone_backs_off_and_the_next_zone_serves_at_the_same_time() -> None:
    pol = policy()
    first = decide(wake(PoolState("gpu"), pol, T0), NO_KILL, pol, T0)
    assert starts(first) == [("a", "z1")]  # cheapest, first

    refused = refuse(first, pol, T0)
    assert refused.zones["z1"].refusals == 1
    assert refused.zones["z1"].backoff_until == T0 + 60
    assert refused.instances["a"].error is None  # not permanent

    second = decide(refused, NO_KILL, pol, T0)  # the same tick
    assert starts(second) == [("b", "z2")]
    assert [a for a in second.actions if a.instance == "a"] == []  # not retried in z1
    running = [n for n, i in second.state.instances.items() if i.desired == "RUNNING"]
    assert running == ["b"]  # one instance of demand, one start
    why = [c.reason for c in second.changes if c.rule == Rule.CAPACITY]
    assert why == [
        "start b: zone z1 skipped: 1 capacity refusal(s) in a row, backing off for 60s more"
    ]


def test_a_start_in_flight_is_never_doubled_by_a_later_decision() -> None:
    pol = policy()
    first = decide(wake(PoolState("gpu"), pol, T0), NO_KILL, pol, T0)
    again = decide(first.state, NO_KILL, pol, T0 + 5)
    assert starts(again) == []
    assert [n for n, i in again.state.instances.items() if i.desired == "RUNNING"] == ["a"]


def test_refusals_in_a_row_double_the_backoff_up_to_the_cap_and_a_success_ends_them() -> None:
    pol = policy(zone_backoff_max_s=200)
    state = wake(PoolState("gpu"), pol, T0)
    now = T0
    for expected in (60, 120, 200, 200):
        decision = decide(state, NO_KILL, pol, now)
        assert ("a", "z1") in starts(decision)
        state = refuse(decision, pol, now)
        state = replace(state, zones={"z1": state.zones["z1"]})  # only z1 refuses here
        assert state.zones["z1"].backoff_until == now + expected
        now += expected
    assert state.zones["z1"].refusals == 4
    decision = decide(state, NO_KILL, pol, now)
    state = succeed(decision, pol, now)
    assert state.zones["z1"].refusals == 0 and state.zones["z1"].backoff_until is None
    assert len(state.zones["z1"].recent) == 4  # the history stays for yoyoctl status


def test_a_warm_instance_is_preferred_to_a_cheaper_cold_one() -> None:
    pol = policy()
    state = wake(PoolState("gpu"), pol, T0)
    warm = replace(state.instances.get("c") or _blank("c"), warm=True, observed="TERMINATED")
    state = replace(state, instances={**state.instances, "c": warm})
    assert starts(decide(state, NO_KILL, pol, T0)) == [("c", "z3")]


def test_every_zone_refusing_starts_nothing_until_a_backoff_ends() -> None:
    pol = policy()
    state = wake(PoolState("gpu"), pol, T0)
    tried = []
    for _ in range(4):
        decision = decide(state, NO_KILL, pol, T0)
        tried += starts(decision)
        state = refuse(decision, pol, T0)
    assert tried == [("a", "z1"), ("b", "z2"), ("c", "z3")]
    assert starts(decide(state, NO_KILL, pol, T0 + 59)) == []
    assert starts(decide(state, NO_KILL, pol, T0 + 60)) == [("a", "z1")]


def _blank(name: str) -> Instance:
    return Instance(name)


# --- the standard fallback -------------------------------------------------------------


def fallback_policy():
    pool = {
        "zone": "z1",
        "hourly_price_usd": 0.7,
        "instances": [
            "a",
            {"name": "b", "zone": "z2"},
            {"name": "std", "zone": "z1", "hourly_price_usd": 2.5, "provisioning": "standard"},
        ],
        "zone_backoff_s": 60,
        "fallback_after_s": 300,
        "lease_s": 3600,
    }
    return parse_config({"pools": {"gpu": pool}}).pools["gpu"]


def test_the_fallback_starts_only_after_spot_was_refused_everywhere_for_fallback_after() -> None:
    pol = fallback_policy()
    state = wake(PoolState("gpu"), pol, T0)
    decided_at, fallback_at = [], None
    now = T0
    while fallback_at is None:
        decision = decide(state, NO_KILL, pol, now)
        decided_at.append(now)
        if ("std", "z1") in starts(decision):
            fallback_at = now
        state = refuse(decision, pol, now)  # spot is refused in every zone, every time
        now += 10 if now == T0 else 20
    # a (z1) was first refused at T0 and b (z2) at T0 + 10: spot has been refused in every
    # zone since T0 + 10, so the fallback opens at T0 + 10 + 300, at the first decision then.
    assert state.zones["z1"].refused_since == T0 and state.zones["z2"].refused_since == T0 + 10
    assert fallback_at >= T0 + 310 > decided_at[-2]


@pytest.mark.parametrize("busy", [False, True])
def test_an_idle_fallback_gives_way_to_spot_when_spot_returns(busy: bool) -> None:
    pol = fallback_policy()
    state = wake(PoolState("gpu"), pol, T0)
    now = T0
    for _ in range(2):  # a and b refused at T0
        decision = decide(state, NO_KILL, pol, now)
        state = refuse(decision, pol, now)
    now = T0 + 300
    # the spot zones are still backing off (longer backoff), so only the fallback may start
    zones = {z: replace(h, backoff_until=now + 500) for z, h in state.zones.items()}
    decision = decide(replace(state, zones=zones), NO_KILL, pol, now)
    assert starts(decision) == [("std", "z1")]
    state = succeed(decision, pol, now)
    beat = Heartbeat("std", "boot-1", now + 60, now + 60, busy=busy, running=int(busy))
    state = replace(state, heartbeats={"std": beat})
    # z2's backoff ends: a spot start may be tried there, but spot has not returned yet
    zones = {**state.zones, "z2": replace(state.zones["z2"], backoff_until=now + 60)}
    later = decide(replace(state, zones=zones), NO_KILL, pol, now + 61)
    assert later.actions == ()  # no churn: the working fallback is not traded for a guess
    # spot returns in z2 (a spot start succeeded there: its refusal streak is over)
    zones = {**state.zones, "z2": ZoneHealth(recent=state.zones["z2"].recent)}
    later = decide(replace(state, zones=zones), NO_KILL, pol, now + 61)
    kinds = {(a.kind, a.instance) for a in later.actions}
    if busy:
        assert kinds == set()  # a busy fallback keeps serving
    else:
        assert kinds == {(ActionKind.STOP, "std"), (ActionKind.START, "b")}


def test_a_booting_fallback_is_kept_when_a_spot_zone_may_be_tried_again() -> None:
    """Found by bench/capacity.py: a fallback still booting for a waiting wake was stopped
    as soon as a spot zone's backoff ended, and the spot start was refused again."""
    pol = fallback_policy()
    state = wake(PoolState("gpu"), pol, T0)
    for _ in range(2):  # a and b refused at T0
        state = refuse(decide(state, NO_KILL, pol, T0), pol, T0)
    zones = {z: replace(h, backoff_until=T0 + 500) for z, h in state.zones.items()}
    decision = decide(replace(state, zones=zones), NO_KILL, pol, T0 + 300)
    assert starts(decision) == [("std", "z1")]
    state = succeed(decision, pol, T0 + 300)  # RUNNING, no heartbeat yet: booting
    zones = {**state.zones, "z2": replace(state.zones["z2"], backoff_until=T0 + 320)}
    later = decide(replace(state, zones=zones), NO_KILL, pol, T0 + 330)
    assert later.actions == ()
    assert later.state.instances["std"].desired == "RUNNING"


def test_a_preemption_is_recorded_on_its_zone_for_yoyoctl_status() -> None:
    pol = policy()
    first = decide(wake(PoolState("gpu"), pol, T0), NO_KILL, pol, T0)
    state = succeed(first, pol, T0)
    assert state.instances["a"].observed == "RUNNING" and state.instances["a"].warm
    seen = StatusObserved("t", T0 + 300, "gpu", {"a": "TERMINATED", "b": "TERMINATED"})
    state = apply_fact(state, seen, pol, T0 + 300)[0]
    later = decide(state, NO_KILL, pol, T0 + 300)
    assert any(c.rule == Rule.PREEMPTED for c in later.changes)
    assert later.state.zones["z1"].preempted == (T0 + 300,)


def test_scaling_down_keeps_the_busy_instance_even_if_another_ranks_better() -> None:
    pol = policy(queue_threshold=1)
    state = wake(PoolState("gpu"), pol, T0)
    running = {
        n: replace(_blank(n), observed="RUNNING", running_since=T0, desired="RUNNING")
        for n in ("a", "b")
    }
    beats = {
        "a": Heartbeat("a", "boot-a", T0 + 60, T0 + 60, busy=False),
        "b": Heartbeat("b", "boot-b", T0 + 60, T0 + 60, busy=True, running=1),
    }
    state = replace(state, instances=running, heartbeats=beats)
    decision = decide(state, NO_KILL, pol, T0 + 61)
    kinds = {(a.kind, a.instance) for a in decision.actions}
    assert kinds == {(ActionKind.STOP, "a")}  # a is cheaper, but idle: it stops, not busy b


def test_one_refusal_answered_to_two_executors_counts_once() -> None:
    """A start re-sent with its request id (its first sender looked lost) is answered from
    the same operation twice: the zone backs off once, not twice (review finding)."""
    pol = policy()
    first = decide(wake(PoolState("gpu"), pol, T0), NO_KILL, pol, T0)
    (action,) = [a for a in first.actions if a.kind == ActionKind.START]
    state, current = record_outcome(
        first.state, action, Outcome.CAPACITY, "ZONE_RESOURCE_POOL_EXHAUSTED", pol, T0
    )
    assert current
    again, current = record_outcome(
        state, action, Outcome.CAPACITY, "ZONE_RESOURCE_POOL_EXHAUSTED", pol, T0 + 1
    )
    assert not current  # stale: this action's outcome is already recorded
    assert again.zones["z1"].refusals == 1 and again.zones["z1"].backoff_until == T0 + 60
