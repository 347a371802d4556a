"""The gateway's pure router: which VM is ready, which is least loaded, when to wake."""

from __future__ import annotations

from dataclasses import replace

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
from yoyo_control.gateway.routing import refusal, routable, route, wake_id

T0 = 1_800_000_000.0
POLICY = PoolPolicy(pool="gpu", instances=("vm-0", "vm-1"), heartbeat_gap_s=60, lease_s=600)


def beat(name: str, running: int = 0, waiting: int = 0, **kw: object) -> Heartbeat:
    fields: dict[str, object] = {
        "instance": name,
        "boot_id": f"boot-{name}",
        "sent_at": T0 - 1,
        "received_at": T0 - 1,
        "running": running,
        "waiting": waiting,
        "ready": True,
        "address": f"10.0.0.{name[-1]}:8000",
        **kw,
    }
    return Heartbeat(**fields)  # type: ignore[arg-type]


def started(name: str, at: float = T0 - 100) -> Instance:
    action = ActionRecord(ActionKind.START, 1, f"r-{name}", at, "lease", "done")
    return Instance(name, Desired.RUNNING, "RUNNING", at, at, action)


def pool(*beats: Heartbeat, **kw: object) -> PoolState:
    instances = {b.instance: started(b.instance) for b in beats}
    fields: dict[str, object] = {
        "instances": instances,
        "heartbeats": {b.instance: b for b in beats},
    }
    return PoolState("gpu", **{**fields, **kw})  # type: ignore[arg-type]


def test_the_least_loaded_ready_vm_wins_and_ties_go_by_name() -> None:
    state = pool(beat("vm-0", running=3), beat("vm-1", running=1, waiting=1))
    target = route(state, POLICY, T0)
    assert target is not None and (target.instance, target.address) == ("vm-1", "10.0.0.1:8000")
    tied = pool(beat("vm-0", running=1), beat("vm-1", waiting=1))
    assert route(tied, POLICY, T0).instance == "vm-0"  # type: ignore[union-attr]


def test_the_gateways_own_requests_in_flight_count_and_lost_vms_are_excluded() -> None:
    state = pool(beat("vm-0"), beat("vm-1", running=1))
    assert route(state, POLICY, T0, in_flight={"vm-0": 2}).instance == "vm-1"  # type: ignore[union-attr]
    lost = {("vm-0", "boot-vm-0"): T0 - 0.5}  # this request failed to reach vm-0 just now
    assert route(state, POLICY, T0, lost=lost).instance == "vm-1"  # type: ignore[union-attr]
    # The same VM after a restart (a new boot), or heard from again, is routable again.
    restarted = pool(beat("vm-0", boot_id="boot-2"))
    assert route(restarted, POLICY, T0, lost=lost) is not None
    heard_again = pool(beat("vm-0", received_at=T0 - 0.1))
    assert route(heard_again, POLICY, T0, lost=lost) is not None


def test_a_vm_is_not_routable_unless_ready_fresh_addressed_running_and_heard_since_start() -> None:
    good = beat("vm-0")
    assert routable(pool(good), POLICY, T0)
    cases = {
        "loading": pool(replace(good, ready=False)),
        "no address (old agent)": pool(replace(good, address=None)),
        "stale heartbeat": pool(replace(good, received_at=T0 - 61)),
    }
    stopped = pool(good)
    cases["observed stopped"] = replace(
        stopped, instances={"vm-0": replace(started("vm-0"), observed="TERMINATED")}
    )
    cases["desired stopped"] = replace(
        stopped, instances={"vm-0": replace(started("vm-0"), desired=Desired.STOPPED)}
    )
    cases["heard before its last start"] = replace(stopped, instances={"vm-0": started("vm-0", T0)})
    stop = ActionRecord(ActionKind.STOP, 2, "r-stop", T0 - 5, "idle")
    cases["being stopped"] = replace(
        stopped, instances={"vm-0": replace(started("vm-0"), last_action=stop)}
    )
    cases["no instance record"] = replace(stopped, instances={})
    for why, state in cases.items():
        assert route(state, POLICY, T0) is None, why


def test_refusals_name_the_reason_and_who_engaged_the_switch() -> None:
    engaged = refusal(KillSwitch(True, "maintenance", "alice"), pool(), POLICY, T0)
    assert engaged is not None and engaged.code == "kill_switch_engaged"
    assert "alice" in engaged.message and "maintenance" in engaged.message
    capped = refusal(KillSwitch(), pool(paused="daily cap $5.00 reached"), POLICY, T0)
    assert capped is not None and capped.code == "spend_cap_reached" and "$5.00" in capped.message
    assert refusal(KillSwitch(), pool(), POLICY, T0) is None


def test_every_instance_failed_permanently_under_the_lease_is_a_refusal() -> None:
    lease = Lease("wake", ("request",), 5, T0 - 10, T0 + 600, T0 + 3600)
    quota = replace(started("vm-0"), error="QUOTA_EXCEEDED: GPUS_ALL_REGIONS")
    missing = replace(started("vm-1"), error="instance vm-1 not found")
    state = PoolState("gpu", lease=lease, instances={"vm-0": quota, "vm-1": missing})
    refused = refusal(KillSwitch(), state, POLICY, T0)
    assert refused is not None and refused.code == "pool_unavailable"
    assert "QUOTA_EXCEEDED" in refused.message and "not found" in refused.message
    one_left = replace(state, instances={"vm-0": quota, "vm-1": started("vm-1")})
    assert refusal(KillSwitch(), one_left, POLICY, T0) is None
    # Without a valid lease the errors are stale: the next lease clears them and retries.
    assert refusal(KillSwitch(), replace(state, lease=None), POLICY, T0) is None


def test_one_wake_id_per_state_none_while_the_lease_is_young() -> None:
    cold = pool(epoch=4)
    assert wake_id(cold, POLICY, T0) == wake_id(cold, POLICY, T0 + 1)
    assert wake_id(cold, POLICY, T0) != wake_id(replace(cold, epoch=5), POLICY, T0)
    lease = Lease("wake", ("request",), 5, T0, T0 + 600, T0 + 3600)
    young = pool(epoch=5, lease=lease)
    assert wake_id(young, POLICY, T0 + 10) is None
    ending = wake_id(young, POLICY, T0 + 400)  # within half a lease of its end: extend it
    assert ending is not None and ending == wake_id(young, POLICY, T0 + 450)
    capped = replace(young, lease=replace(lease, max_until=T0 + 600))
    assert wake_id(capped, POLICY, T0 + 400) is None  # cannot be extended past max_until
    assert wake_id(young, POLICY, T0 + 700) is not None  # expired: a new wake
