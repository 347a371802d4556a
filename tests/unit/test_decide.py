"""decide(): one or more tests per rule of DESIGN.md §3, named after the rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from yoyo_control.domain.decide import decide, request_id
from yoyo_control.domain.facts import StatusObserved, apply_fact
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Demand,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    LeaseRequest,
    Ledger,
    PoolPolicy,
    PoolState,
    Rule,
)

T0 = 1_800_000_000.0
POLICY = PoolPolicy(
    pool="p",
    zone="z",
    instances=("vm-0", "vm-1"),
    hourly_price_usd=3.6,  # 0.001 per second
    keepalive="fixed",
    idle_timeout_s=600,
    heartbeat_gap_s=180,
    boot_grace_s=300,
    max_session_s=4 * 3600,
    lease_s=1800,
    max_lease_s=8 * 3600,
    restart_budget=2,
    restart_backoff_s=60,
    queue_threshold=10,
    action_retry_s=60,
)
OFF = KillSwitch()


def lease(epoch: int = 1, granted: float = T0, expires: float = T0 + 1800) -> Lease:
    return Lease("cycle", ("nightly",), epoch, granted, expires, granted + 8 * 3600)


def running(name: str, since: float = T0, epoch: int = 1) -> Instance:
    start = ActionRecord(ActionKind.START, epoch, "rid", since, "test", outcome="done")
    return Instance(name, Desired.RUNNING, "RUNNING", since, since, last_action=start)


def hb(name: str, at: float, busy: bool = False, boot: str = "b1") -> Heartbeat:
    return Heartbeat(name, boot, at, at, busy=busy, last_busy_at=at if busy else None)


def state(**kw: object) -> PoolState:
    return PoolState(pool="p", epoch=kw.pop("epoch", 1), **kw)


def kinds(decision) -> list[tuple[str, str]]:
    return [(a.kind.value, a.instance) for a in decision.actions]


def rules(decision) -> set[Rule]:
    return {c.rule for c in decision.changes} | {a.rule for a in decision.actions}


# --- rule 1: kill switch ---------------------------------------------------------------


def test_rule1_kill_switch_revokes_lease_and_stops_every_running_instance() -> None:
    s = state(lease=lease(), instances={"vm-0": running("vm-0"), "vm-1": running("vm-1")})
    d = decide(s, KillSwitch(True, "maintenance", "ops", T0), POLICY, T0 + 60)
    assert d.state.lease is None
    assert kinds(d) == [("stop", "vm-0"), ("stop", "vm-1")]
    assert all(a.rule == Rule.KILL_SWITCH for a in d.actions)
    assert "maintenance" in d.changes[0].reason


def test_rule1_kill_switch_denies_requests_and_emits_no_start() -> None:
    s = state(
        requests=(LeaseRequest("cycle", "nightly", T0 + 1800),),
        demand=Demand(500, "monitoring", T0),
    )
    d = decide(s, KillSwitch(True, "budget: 152.37 of 150.00 USD", "budget", T0), POLICY, T0)
    assert d.state.lease is None and d.state.requests == ()
    assert not [a for a in d.actions if a.kind == ActionKind.START]
    assert Rule.KILL_SWITCH in rules(d)


def test_rule1_stops_after_the_lease_is_gone_still_name_the_kill_switch() -> None:
    s = state(instances={"vm-0": running("vm-0")})
    d = decide(s, KillSwitch(True, "maintenance", "ops", T0), POLICY, T0 + 60)
    assert [(a.rule, a.reason) for a in d.actions] == [
        (Rule.KILL_SWITCH, "kill switch engaged by ops: maintenance")
    ]


def test_rule1_kill_switch_wins_over_busy_heartbeats() -> None:
    s = state(
        lease=lease(),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 50, busy=True)},
    )
    d = decide(s, KillSwitch(True, "stop now"), POLICY, T0 + 60)
    assert kinds(d) == [("stop", "vm-0")]


# --- rule 2: spend cap -----------------------------------------------------------------


def test_rule2_spend_cap_pauses_pool_and_stops_running_instances() -> None:
    policy = replace(POLICY, daily_cap_usd=1.0)
    s = state(lease=lease(), instances={"vm-0": running("vm-0")})
    d = decide(s, OFF, policy, T0 + 1000)  # 1000 s × 0.001/s = 1.00 ≥ cap
    assert d.state.paused and "daily cap" in d.state.paused
    assert d.state.lease is None
    assert kinds(d) == [("stop", "vm-0")]
    assert {a.rule for a in d.actions} == {Rule.SPEND_CAP}


def test_rule2_spend_cap_looks_one_tick_ahead_for_every_instance_but_one() -> None:
    # Two instances spend 0.002/s together; until the next tick (60 s) they may add 0.12,
    # so the pool pauses while one instance-tick (0.06) short of the cap: the cap is then
    # overrun by at most one tick of one instance, however many run.
    policy = replace(POLICY, daily_cap_usd=1.0, tick_s=60)
    both = {"vm-0": running("vm-0"), "vm-1": running("vm-1")}
    s = state(lease=lease(), instances=both)
    assert decide(s, OFF, policy, T0 + 460).state.paused is None  # 0.92 + 0.06 < 1
    assert "daily cap" in (decide(s, OFF, policy, T0 + 470).state.paused or "")  # 0.94 + 0.06
    alone = replace(policy, instances=("vm-0",))  # one instance: nothing to look ahead for
    one = state(lease=lease(), instances={"vm-0": running("vm-0")})
    assert decide(one, OFF, alone, T0 + 940).state.paused is None  # 0.94 < 1
    assert decide(one, OFF, alone, T0 + 1000).state.paused is not None


def test_rule2_spend_cap_lifts_when_the_period_rolls_over() -> None:
    policy = replace(POLICY, daily_cap_usd=1.0, timezone="UTC")
    day = "2027-01-15"
    s = state(
        ledger=Ledger(day=day, month="2027-01", day_usd=5.0, month_usd=5.0),
        requests=(LeaseRequest("cycle", "nightly", T0 + 10**6),),
    )
    same_day = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert decide(s, OFF, policy, same_day).state.lease is None
    next_day = same_day + 24 * 3600
    d = decide(s, OFF, policy, next_day)
    assert d.state.paused is None and d.state.lease is not None
    assert ("start", "vm-0") in kinds(d)


# --- rule 3: no valid lease ------------------------------------------------------------


def test_rule3_no_lease_means_a_running_instance_is_stopped() -> None:
    s = state(instances={"vm-0": running("vm-0")})
    d = decide(s, OFF, POLICY, T0 + 10)
    assert kinds(d) == [("stop", "vm-0")]
    assert d.actions[0].rule == Rule.NO_LEASE


def test_rule3_expired_lease_is_released_and_instances_stop() -> None:
    s = state(
        lease=lease(expires=T0 + 100),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 90)},
    )
    d = decide(s, OFF, POLICY, T0 + 101)
    assert d.state.lease is None
    assert Rule.NO_LEASE in rules(d)
    assert kinds(d) == [("stop", "vm-0")]


def test_rule3_lease_never_outlives_max_until_even_when_busy() -> None:
    held = Lease("cycle", ("x",), 1, T0, T0 + 10**6, T0 + 3600)
    s = state(
        lease=held,
        instances={"vm-0": running("vm-0", since=T0 + 3000)},
        heartbeats={"vm-0": hb("vm-0", T0 + 3599, busy=True)},
    )
    d = decide(s, OFF, POLICY, T0 + 3600)
    assert d.state.lease is None and kinds(d) == [("stop", "vm-0")]


# --- rule 4: valid lease ---------------------------------------------------------------


def test_rule4_request_grants_one_lease_and_one_start_with_a_uuid5_request_id() -> None:
    s = state(
        epoch=4,
        requests=(
            LeaseRequest("cycle", "nightly", T0 + 1800),
            LeaseRequest("wake", "ask", T0 + 600),
        ),
    )
    d = decide(s, OFF, POLICY, T0)
    assert d.state.lease is not None and d.state.lease.epoch == 5 == d.state.epoch
    assert d.state.lease.expires_at == T0 + 1800
    assert d.state.lease.max_until == T0 + POLICY.max_lease_s
    assert kinds(d) == [("start", "vm-0")]
    assert d.actions[0].request_id == request_id("p", "vm-0", 5, ActionKind.START)
    assert d.state.instances["vm-0"].last_action.outcome is None  # in flight


def test_rule4_a_second_request_extends_the_lease_and_never_regrants() -> None:
    s = state(
        lease=lease(),
        instances={"vm-0": running("vm-0")},
        requests=(LeaseRequest("queue", "depth 12", T0 + 5000),),
    )
    d = decide(s, OFF, POLICY, T0 + 60)
    assert d.state.lease.epoch == 1 and d.state.lease.expires_at == T0 + 5000
    assert d.actions == ()


def test_rule4_extension_is_capped_at_max_until() -> None:
    s = state(lease=lease(), requests=(LeaseRequest("cycle", "x", T0 + 10**7),))
    d = decide(s, OFF, POLICY, T0 + 60)
    assert d.state.lease.expires_at == T0 + POLICY.max_lease_s


def test_rule4_queue_depth_scales_instances_up_to_the_pool_size() -> None:
    s = state(demand=Demand(depth=25, source="producer", updated_at=T0))
    d = decide(s, OFF, POLICY, T0)
    assert kinds(d) == [("start", "vm-0"), ("start", "vm-1")]
    assert len({a.epoch for a in d.actions}) == 1  # one decision, one epoch


def test_rule4_in_flight_start_is_not_reissued_then_reissued_with_the_same_request_id() -> None:
    first = decide(state(requests=(LeaseRequest("cycle", "x", T0 + 1800),)), OFF, POLICY, T0)
    (start,) = first.actions
    again = decide(first.state, OFF, POLICY, T0 + 30)
    assert again.actions == ()
    later = decide(first.state, OFF, POLICY, T0 + 61)
    assert [a.request_id for a in later.actions] == [start.request_id]


def test_rule4_a_pool_with_nothing_to_do_changes_nothing() -> None:
    s = state(instances={"vm-0": Instance("vm-0", observed="TERMINATED", observed_at=T0)})
    d = decide(s, OFF, POLICY, T0 + 60)
    first = d.state
    d2 = decide(first, OFF, POLICY, T0 + 120)
    assert d2.state == first and d2.actions == () and d2.changes == ()


# --- rule 5: heartbeat gap -------------------------------------------------------------


def test_rule5_no_heartbeat_past_boot_grace_stops_and_schedules_a_restart() -> None:
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 100, busy=True)},
    )
    d = decide(s, OFF, POLICY, T0 + 400)  # past grace (300), last beat 300 s ago (> 180)
    assert kinds(d) == [("stop", "vm-0")]
    assert d.actions[0].rule == Rule.HEARTBEAT_GAP
    inst = d.state.instances["vm-0"]
    assert inst.restarts == 1 and inst.next_start_at == T0 + 460
    assert d.state.lease is not None  # restart only while the lease is valid


def test_rule5_within_boot_grace_a_silent_instance_is_left_alone() -> None:
    s = state(lease=lease(), instances={"vm-0": running("vm-0")})
    d = decide(s, OFF, POLICY, T0 + 200)
    assert d.actions == () and Rule.HEARTBEAT_GAP not in rules(d)


def test_rule5_after_the_backoff_the_unhealthy_instance_starts_again() -> None:
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 100, busy=True)},
    )
    stopped = decide(s, OFF, POLICY, T0 + 400).state
    inst = replace(
        stopped.instances["vm-0"], observed="TERMINATED", observed_at=T0 + 420, running_since=None
    )
    stopped = replace(stopped, instances={"vm-0": inst})
    assert decide(stopped, OFF, POLICY, T0 + 430).actions == ()  # still backing off
    assert kinds(decide(stopped, OFF, POLICY, T0 + 461)) == [("start", "vm-0")]


def test_rule5_restart_budget_exhausted_gives_up_and_releases_the_lease() -> None:
    policy = replace(POLICY, instances=("vm-0",))
    inst = replace(running("vm-0"), restarts=2)
    s = state(lease=lease(expires=T0 + 5000), instances={"vm-0": inst})
    d = decide(s, OFF, policy, T0 + 400)
    assert "gave up" in " ".join(c.reason for c in d.changes)
    assert d.state.lease is None
    assert kinds(d) == [("stop", "vm-0")]


# --- rule 6: idle ----------------------------------------------------------------------


def test_rule6_idle_past_the_timeout_releases_the_lease_and_stops() -> None:
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": Heartbeat("vm-0", "b1", T0 + 590, T0 + 590, last_busy_at=T0 + 100)},
    )
    assert decide(s, OFF, POLICY, T0 + 650).actions == ()  # idle 550 s < 600 s
    d = decide(s, OFF, POLICY, T0 + 700)
    assert d.state.lease is None and Rule.IDLE in rules(d)
    assert kinds(d) == [("stop", "vm-0")]


def test_rule6_an_idle_release_starts_the_idle_gap_at_the_last_served_request() -> None:
    # The idle report may never have been reconciled (it changed nothing, or the VM
    # stopped first): the gap the next wake ends still begins at the last request.
    served = Heartbeat("vm-0", "b1", T0 + 590, T0 + 590, last_request_at=T0 + 80)
    s = state(lease=lease(expires=T0 + 5000), instances={"vm-0": running("vm-0")})
    d = decide(replace(s, heartbeats={"vm-0": served}), OFF, POLICY, T0 + 700)
    assert d.state.lease is None and d.state.idle_since == T0 + 80
    # A gap already open is kept; a report from before the lease starts none.
    already = replace(s, heartbeats={"vm-0": served}, idle_since=T0 + 70)
    assert decide(already, OFF, POLICY, T0 + 700).state.idle_since == T0 + 70
    old = replace(served, last_request_at=T0 - 50)
    assert (
        decide(replace(s, heartbeats={"vm-0": old}), OFF, POLICY, T0 + 700).state.idle_since is None
    )


def test_rule6_queued_work_keeps_the_lease() -> None:
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        demand=Demand(12, "monitoring", T0 + 650),
        heartbeats={"vm-0": hb("vm-0", T0 + 690)},
    )
    d = decide(s, OFF, POLICY, T0 + 700)
    assert d.state.lease is not None and Rule.IDLE not in rules(d)


def test_rule6_a_busy_heartbeat_keeps_and_extends_the_lease() -> None:
    s = state(
        lease=lease(expires=T0 + 1800),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 1500, busy=True)},
    )
    d = decide(s, OFF, POLICY, T0 + 1510)
    assert d.state.lease.expires_at == T0 + 1510 + POLICY.lease_s + POLICY.idle_timeout_s
    assert d.actions == ()


def test_rule6_a_vm_still_booting_keeps_the_lease_and_the_clock_starts_when_ready() -> None:
    quick = replace(POLICY, idle_timeout_s=60)  # shorter than the boot
    base = state(lease=lease(expires=T0 + 5000), instances={"vm-0": running("vm-0")})
    assert decide(base, OFF, quick, T0 + 100).state.lease is not None  # no report yet
    loading = Heartbeat("vm-0", "b1", T0 + 150, T0 + 150, ready=False)
    s = replace(base, heartbeats={"vm-0": loading})
    assert decide(s, OFF, quick, T0 + 200).state.lease is not None
    ready = Heartbeat("vm-0", "b1", T0 + 230, T0 + 230, ready_since=T0 + 230)
    s = replace(base, heartbeats={"vm-0": ready})
    assert decide(s, OFF, quick, T0 + 280).state.lease is not None  # ready for 50 s < 60 s
    d = decide(s, OFF, quick, T0 + 290)
    assert d.state.lease is None and Rule.IDLE in rules(d)


def test_rule6_a_vm_that_never_gets_ready_is_idle_after_the_boot_grace() -> None:
    quick = replace(POLICY, idle_timeout_s=60)
    loading = Heartbeat("vm-0", "b1", T0 + 290, T0 + 290, ready=False)
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": loading},
    )
    assert decide(s, OFF, quick, T0 + 299).state.lease is not None
    d = decide(s, OFF, quick, T0 + POLICY.boot_grace_s)
    assert d.state.lease is None and kinds(d) == [("stop", "vm-0")]


def test_rule6_a_report_from_an_earlier_boot_does_not_make_a_new_boot_ready() -> None:
    quick = replace(POLICY, idle_timeout_s=60)
    earlier = Heartbeat("vm-0", "b0", T0 - 500, T0 - 500, ready_since=T0 - 900)
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": earlier},
    )
    assert decide(s, OFF, quick, T0 + 100).state.lease is not None


# --- rule 7: runtime cap ---------------------------------------------------------------


def test_rule7_running_longer_than_max_session_stops_regardless() -> None:
    policy = replace(POLICY, instances=("vm-0",))
    s = state(
        lease=lease(expires=T0 + 7 * 3600),
        instances={"vm-0": running("vm-0")},
        heartbeats={"vm-0": hb("vm-0", T0 + 4 * 3600, busy=True)},
    )
    d = decide(s, OFF, policy, T0 + 4 * 3600 + 1)
    assert kinds(d) == [("stop", "vm-0")]
    assert d.actions[0].rule == Rule.MAX_SESSION
    assert d.state.lease is None  # no instance may run under this lease any more


# --- rule 8: preempted -----------------------------------------------------------------


def _preempted_state(restarts: int = 0) -> PoolState:
    s = state(
        lease=lease(expires=T0 + 5000),
        instances={"vm-0": replace(running("vm-0"), restarts=restarts)},
    )
    obs = StatusObserved("tick", T0 + 500, "p", {"vm-0": "TERMINATED", "vm-1": "TERMINATED"})
    observed_state, _ = apply_fact(s, obs, POLICY, T0 + 500)
    return observed_state


def test_rule8_preempted_instance_starts_again_after_a_backoff() -> None:
    s = _preempted_state()
    d = decide(s, OFF, POLICY, T0 + 500)
    assert Rule.PREEMPTED in rules(d) and d.actions == ()
    inst = d.state.instances["vm-0"]
    assert inst.restarts == 1 and inst.next_start_at == T0 + 560
    again = decide(d.state, OFF, POLICY, T0 + 560)
    assert kinds(again) == [("start", "vm-0")]
    assert again.actions[0].epoch == d.state.epoch + 1


def test_rule8_gives_up_the_lease_after_the_restart_budget() -> None:
    policy = replace(POLICY, instances=("vm-0",))
    d = decide(_preempted_state(restarts=2), OFF, policy, T0 + 500)
    assert d.state.lease is None
    assert any("gave up after 2 restarts" in c.reason for c in d.changes)


# --- properties of decide() itself ----------------------------------------------------


def test_decide_is_deterministic() -> None:
    s = state(demand=Demand(25, "producer", T0), instances={"vm-0": running("vm-0")})
    assert decide(s, OFF, POLICY, T0 + 5) == decide(s, OFF, POLICY, T0 + 5)


def test_orphan_instance_labelled_for_the_pool_is_stopped() -> None:
    obs = StatusObserved("tick", T0, "p", {"vm-0": "TERMINATED", "stray": "RUNNING"})
    s, changes = apply_fact(state(), obs, POLICY, T0)
    assert any(c.rule == Rule.ORPHAN for c in changes)
    d = decide(s, OFF, POLICY, T0)
    assert kinds(d) == [("stop", "stray")] and d.actions[0].rule == Rule.ORPHAN


def test_a_configured_instance_seen_first_by_a_tick_is_not_an_orphan() -> None:
    obs = StatusObserved("tick", T0, "p", {"vm-0": "RUNNING", "vm-1": "TERMINATED"})
    s, changes = apply_fact(state(), obs, POLICY, T0)
    assert changes == ()
    assert not s.instances["vm-0"].orphan and s.instances["vm-0"].observed == "RUNNING"


@pytest.mark.parametrize("status", ["STAGING", "PROVISIONING", "RUNNING", "REPAIRING"])
def test_every_running_status_is_stopped_without_a_lease(status: str) -> None:
    s = state(
        instances={"vm-0": Instance("vm-0", observed=status, observed_at=T0, running_since=T0)}
    )
    assert kinds(decide(s, OFF, POLICY, T0 + 1)) == [("stop", "vm-0")]


def test_rule6_an_explicit_extension_counts_as_activity() -> None:
    s = state(lease=lease(expires=T0 + 5000), instances={"vm-0": running("vm-0")})
    extended = replace(s, lease=replace(s.lease, active_at=T0 + 900))
    assert Rule.IDLE in rules(decide(s, OFF, POLICY, T0 + 1000))
    assert Rule.IDLE not in rules(decide(extended, OFF, POLICY, T0 + 1000))


def test_a_reordered_older_queue_observation_is_ignored() -> None:
    from yoyo_control.domain.facts import QueueDepthObserved

    closed = QueueDepthObserved("c", T0 + 100, "p", 0, "monitoring")
    stale_open = QueueDepthObserved("o", T0 + 50, "p", 212, "monitoring")
    s, _ = apply_fact(state(), closed, POLICY, T0 + 101)
    s, _ = apply_fact(s, stale_open, POLICY, T0 + 102)
    assert s.demand.depth == 0 and s.demand.observed_at == T0 + 100


def test_rule4_standing_queue_demand_extends_in_coarse_steps_not_every_decision() -> None:
    s = state(lease=lease(expires=T0 + 1800), demand=Demand(12, "producer", T0 + 10))
    assert decide(s, OFF, POLICY, T0 + 20).state.lease.expires_at == T0 + 1800  # no write
    later = decide(s, OFF, POLICY, T0 + 901)  # half a lease gained: one extension
    assert later.state.lease.expires_at == T0 + 901 + POLICY.lease_s


def test_rule6_adaptive_keepalive_uses_the_configured_timeout_until_it_has_seen_a_gap() -> None:
    from yoyo_control.domain.decide import idle_timeout

    for configured in (4.0, 600.0):
        policy = replace(POLICY, keepalive="adaptive", idle_timeout_s=configured)
        assert idle_timeout(policy, state()) == configured
