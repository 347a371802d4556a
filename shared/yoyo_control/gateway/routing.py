"""Routing, pure: pool state + heartbeats → the ready VM with the fewest requests in flight.

Invariants: no I/O, no clock (``now`` is an argument). A VM is routable only when its
instance is desired RUNNING and not observed stopped or missing, its latest heartbeat
was heard after the instance's last start, is fresh (within ``heartbeat_gap_s``), says
ready and announces an address. A refusal (kill switch, spend cap, every instance
failed permanently under the current lease) comes before any route and never wakes.
A wake is needed when no lease is valid or the valid one ends within half a lease; its
message id is the same for every request (and every gateway instance) that reads the
same pool state, so the store records one wake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..domain.model import (
    MISSING,
    STOPPED_STATUSES,
    ActionKind,
    Desired,
    Heartbeat,
    KillSwitch,
    PoolPolicy,
    PoolState,
)


@dataclass(frozen=True)
class Target:
    """A ready VM: where to send the request, and how loaded it looked."""

    instance: str
    address: str
    boot_id: str
    load: int
    ready_since: float | None
    heard_at: float  # when its latest heartbeat was received


@dataclass(frozen=True)
class Refusal:
    """Why the pool must not be woken now (HTTP 503 at once)."""

    code: str  # "kill_switch_engaged" | "spend_cap_reached"
    message: str


def refusal(kill: KillSwitch, state: PoolState, policy: PoolPolicy, now: float) -> Refusal | None:
    """Why no VM will serve this pool now: kill switch, spend cap, or every instance
    failed permanently under the current lease (errors are cleared by the next lease)."""
    if kill.engaged:
        return Refusal(
            "kill_switch_engaged",
            f"the kill switch is engaged by {kill.by or 'unknown'}: {kill.reason or 'no reason'}",
        )
    if state.paused:
        return Refusal("spend_cap_reached", f"pool {state.pool} is paused: {state.paused}")
    lease = state.lease
    errors = [state.instances[n].error for n in policy.instances if n in state.instances]
    failed = len(errors) == len(policy.instances) and all(errors)
    if lease is not None and lease.valid(now) and failed:
        return Refusal(
            "pool_unavailable",
            f"no VM of pool {state.pool} can start: " + "; ".join(sorted(set(map(str, errors)))),
        )
    return None


def routable(state: PoolState, policy: PoolPolicy, now: float) -> list[Target]:
    """Every ready VM of the pool, least loaded first (ties by name)."""
    targets = []
    for name, instance in state.instances.items():
        hb = state.heartbeats.get(name)
        if hb is None or instance.desired != Desired.RUNNING:
            continue
        if instance.observed in STOPPED_STATUSES or instance.observed == MISSING:
            continue
        if not _heard_since_start(hb, instance.last_action):
            continue
        if not hb.ready or not hb.address or now - hb.received_at > policy.heartbeat_gap_s:
            continue
        load = hb.running + hb.waiting
        targets.append(Target(name, hb.address, hb.boot_id, load, hb.ready_since, hb.received_at))
    return sorted(targets, key=lambda t: (t.load, t.instance))


def _heard_since_start(hb: Heartbeat, last_action: object) -> bool:
    kind = getattr(last_action, "kind", None)
    if kind == ActionKind.STOP:
        return False
    issued = getattr(last_action, "issued_at", None)
    return issued is None or hb.received_at >= issued


def route(
    state: PoolState,
    policy: PoolPolicy,
    now: float,
    in_flight: Mapping[str, int] | None = None,
    lost: Mapping[tuple[str, str], float] | None = None,
) -> Target | None:
    """The ready VM with the fewest requests in flight, or None (the pool is cold).

    ``in_flight`` adds this gateway's own open requests per instance (heartbeats lag).
    ``lost`` maps (instance, boot id) to when this request failed to reach it: that VM
    is skipped until it is heard from again (a dead VM never is; a restart is a new boot;
    a VM that merely refused one connection heartbeats again and is tried again).
    """
    mine, failed = in_flight or {}, lost or {}
    best: Target | None = None
    for target in routable(state, policy, now):
        lost_at = failed.get((target.instance, target.boot_id))
        if lost_at is not None and target.heard_at <= lost_at:
            continue
        load = target.load + mine.get(target.instance, 0)
        if best is None or load < best.load:
            best = replace(target, load=load)
    return best


def wake_id(state: PoolState, policy: PoolPolicy, now: float) -> str | None:
    """The message id of the wake this state calls for, or None when the lease suffices.

    Without a valid lease: one id per epoch and minute (a wake denied before the kill
    switch was lifted is not a duplicate a minute later). With a lease ending within
    half a lease: one id per lease deadline, so a held request keeps the lease alive.
    """
    lease = state.lease
    if lease is None or not lease.valid(now):
        return f"gateway-wake-{state.pool}-{state.epoch}-cold-{int(now // 60)}"
    if lease.deadline() - now < policy.lease_s / 2 and lease.deadline() < lease.max_until:
        return f"gateway-wake-{state.pool}-{lease.epoch}-until-{int(lease.deadline())}"
    return None
