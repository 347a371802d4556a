"""The decision for one held request (gateway/hold.py), case by case: refuse, forward, wait."""

from __future__ import annotations

from dataclasses import replace

from unit.test_gateway_routing import POLICY, T0, beat, pool
from yoyo_control.domain.model import Holder, KillSwitch, Lease
from yoyo_control.gateway import hold
from yoyo_control.gateway.hold import Forward, Refuse, Request, Wait, admit, decide

OFF = KillSwitch()
HOLD_S = 600.0


def lease(until: float = T0 + 600) -> Lease:
    return Lease(Holder.WAKE, ("gateway",), 1, T0 - 10, until, T0 + 3600)


def test_a_ready_vm_is_forwarded_to() -> None:
    decision = decide(OFF, pool(beat("vm-0")), POLICY, T0, Request(T0), HOLD_S)
    assert isinstance(decision, Forward) and decision.target.instance == "vm-0"


def test_the_kill_switch_refuses_first_even_with_a_ready_vm() -> None:
    kill = KillSwitch(engaged=True, reason="budget", by="ops")
    decision = decide(kill, pool(beat("vm-0")), POLICY, T0, Request(T0), HOLD_S)
    assert isinstance(decision, Refuse) and decision.status == 503
    assert decision.code == "kill_switch_engaged" and "ops" in decision.message
    assert decision.headers["x-should-retry"] == "false"


def test_a_paused_pool_is_refused() -> None:
    state = pool(beat("vm-0"), paused="daily cap reached")
    decision = decide(OFF, state, POLICY, T0, Request(T0), HOLD_S)
    assert isinstance(decision, Refuse) and decision.code == "spend_cap_reached"


def test_a_request_lost_twice_is_a_502_and_never_sent_again() -> None:
    once = decide(OFF, pool(beat("vm-0")), POLICY, T0, Request(T0, lost=1), HOLD_S)
    assert isinstance(once, Forward)  # once: sent again
    twice = decide(OFF, pool(beat("vm-0")), POLICY, T0, Request(T0, lost=hold.MAX_LOST), HOLD_S)
    assert isinstance(twice, Refuse) and (twice.status, twice.code) == (502, "upstream_lost")


def test_a_cold_pool_waits_with_one_wake_id_then_times_out() -> None:
    cold = pool()
    first = decide(OFF, cold, POLICY, T0, Request(T0), HOLD_S)
    again = decide(OFF, cold, POLICY, T0 + 1, Request(T0), HOLD_S)
    assert isinstance(first, Wait) and isinstance(again, Wait)
    assert first.wake is not None and first.wake == again.wake
    late = decide(OFF, cold, POLICY, T0 + HOLD_S, Request(T0), HOLD_S)
    assert isinstance(late, Refuse) and late.code == "cold_start_timeout"
    assert int(late.headers["Retry-After"]) > 0


def test_a_young_lease_waits_without_a_wake() -> None:
    decision = decide(OFF, pool(lease=lease()), POLICY, T0, Request(T0), HOLD_S)
    assert isinstance(decision, Wait) and decision.wake is None


def test_a_vm_unreachable_for_this_gateway_or_skipped_by_this_request_is_not_chosen() -> None:
    state = pool(beat("vm-0"), beat("vm-1", running=2))
    lost = {("vm-0", "boot-vm-0"): T0}
    by_all = decide(OFF, state, POLICY, T0, Request(T0), HOLD_S, unreachable=lost)
    by_one = decide(OFF, state, POLICY, T0, Request(T0, skip=lost), HOLD_S)
    for decision in (by_all, by_one):
        assert isinstance(decision, Forward) and decision.target.instance == "vm-1"
    heard_again = replace(state, heartbeats={"vm-0": beat("vm-0", received_at=T0 + 1)})
    back = decide(OFF, heard_again, POLICY, T0 + 1, Request(T0, skip=lost), HOLD_S)
    assert isinstance(back, Forward) and back.target.instance == "vm-0"


def test_this_gateways_in_flight_requests_count_toward_a_vms_load() -> None:
    state = pool(beat("vm-0"), beat("vm-1", running=1))
    decision = decide(OFF, state, POLICY, T0, Request(T0), HOLD_S, in_flight={"vm-0": 2})
    assert isinstance(decision, Forward) and decision.target.instance == "vm-1"


def test_holding_is_admitted_below_the_limit_only() -> None:
    assert admit(9, 10) is None
    refused = admit(10, 10)
    assert refused is not None and (refused.status, refused.code) == (429, "too_many_held_requests")


def test_the_held_limit_is_derived_from_the_instances_concurrency() -> None:
    """The 429 fires before Cloud Run queues: held < concurrency (gateway.concurrency,
    Cloud Run's max_instance_request_concurrency, at most 1000)."""
    import pytest

    from yoyo_control.config import parse_config
    from yoyo_control.errors import ConfigError

    pools = {"gpu": {"instances": ["vm-0"]}}
    assert parse_config({"pools": pools}).gateway.held_limit == 800
    small = parse_config({"pools": pools, "gateway": {"concurrency": 80}})
    assert small.gateway.held_limit == 64
    explicit = parse_config({"pools": pools, "gateway": {"concurrency": 80, "max_held": 10}})
    assert explicit.gateway.held_limit == 10
    for bad in ({"concurrency": 80, "max_held": 81}, {"concurrency": 1001}):
        with pytest.raises(ConfigError, match="gateway"):
            parse_config({"pools": pools, "gateway": bad})
