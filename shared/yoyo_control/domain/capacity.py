"""Capacity across zones (pure): which instance serves new demand, and how a capacity
refusal backs its zone off (DESIGN.md §3b "Capacity").

Invariants:
- A zone that refused a start for capacity is not tried again before its backoff ends:
  ``zone_backoff_s`` doubling with each refusal in a row, at most ``zone_backoff_max_s``.
  A start that succeeds in the zone ends the streak. Zone health lives on the pool
  document (``PoolState.zones``), with the last ``RECENT`` refusals and preemptions.
- ``choose`` keeps instances that are already up (running, or a start in flight) before
  starting any other, so one instance of demand never gets two starts — and when it
  scales down, it keeps those with work in flight, then those running (idle VMs stop
  first, never a busy one while an idle one runs); it starts the
  best stopped candidates by: healthy zone first (backed-off zones are skipped), spot
  before standard, warm before cold (an instance seen RUNNING before: its own disk
  already holds the weights — the proxy for "weights on disk"), cheaper before dearer,
  then configuration order. Deterministic for the same inputs.
- Health is kept per capacity pool: ``key`` is the zone for spot instances and
  ``<zone>/standard`` for standard ones (a spot stockout says nothing of standard
  capacity in the same zone).
- A standard (fallback) instance is a candidate only while every zone holding spot
  instances has refused for at least ``fallback_after_s`` (``fallback_open``); a standard
  instance that is idle (its fresh heartbeat says ready and not busy: not booting, not
  serving) is given up as soon as spot has returned: a spot instance may start in a zone
  with no refusal streak (a spot start succeeded there since, or it never refused). A
  zone whose backoff merely ended has not returned: trying it would stop a working
  fallback for a start that may be refused again (and restart the fallback: churn); the
  next wake after the lease tries spot first anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from .actions import pending
from .model import (
    RUNNING_STATUSES,
    SPOT,
    STANDARD,
    ActionKind,
    Desired,
    Instance,
    Placement,
    PoolPolicy,
    ZoneHealth,
)

RECENT = 8  # refusal and preemption times kept per zone


def key(placed: Placement) -> str:
    """Where the health of ``placed``'s capacity is kept in ``PoolState.zones``."""
    return placed.zone if placed.provisioning == SPOT else f"{placed.zone}/{STANDARD}"


def refused(
    zones: Mapping[str, ZoneHealth], zone: str, detail: str, policy: PoolPolicy, now: float
) -> dict[str, ZoneHealth]:
    """The zones after a capacity refusal in ``zone`` at ``now``: backed off, doubling."""
    health = zones.get(zone, ZoneHealth())
    refusals = health.refusals + 1
    delay = min(policy.zone_backoff_s * 2.0 ** (refusals - 1), policy.zone_backoff_max_s)
    new = replace(
        health,
        refusals=refusals,
        refused_since=health.refused_since if health.refusals else now,
        backoff_until=now + delay,
        detail=detail[:300],
        recent=(*health.recent, now)[-RECENT:],
    )
    return {**zones, zone: new}


def started(zones: Mapping[str, ZoneHealth], zone: str) -> Mapping[str, ZoneHealth]:
    """The zones after a start succeeded in ``zone``: its refusal streak is over."""
    health = zones.get(zone)
    if health is None or not health.refusals:
        return zones
    return {**zones, zone: replace(health, refusals=0, refused_since=None, backoff_until=None)}


def preempted(zones: Mapping[str, ZoneHealth], zone: str, now: float) -> dict[str, ZoneHealth]:
    health = zones.get(zone, ZoneHealth())
    return {**zones, zone: replace(health, preempted=(*health.preempted, now)[-RECENT:])}


def backing_off(zones: Mapping[str, ZoneHealth], zone: str, now: float) -> bool:
    health = zones.get(zone)
    return health is not None and health.backoff_until is not None and now < health.backoff_until


def fallback_open(policy: PoolPolicy, zones: Mapping[str, ZoneHealth], now: float) -> bool:
    """Spot has been refused in every spot zone for ``fallback_after_s``."""
    spot = {key(p) for p in map(policy.placement, policy.instances) if p.provisioning == SPOT}
    if not spot:
        return True  # a pool of standard instances only: nothing to fall back from
    since = [zones[z].refused_since if z in zones else None for z in spot]
    if any(s is None for s in since):
        return False
    return now - max(s for s in since if s is not None) >= policy.fallback_after_s


def is_up(inst: Instance) -> bool:
    """Running, or asked to start and not refused: it already serves (or will)."""
    if inst.observed in RUNNING_STATUSES:
        return True
    la = inst.last_action
    return (
        inst.desired == Desired.RUNNING
        and la is not None
        and la.kind == ActionKind.START
        and pending(la)
    )


def choose(
    policy: PoolPolicy,
    instances: Mapping[str, Instance],
    zones: Mapping[str, ZoneHealth],
    eligible: list[str],
    wanted: int,
    busy: Collection[str],
    idle: Collection[str],
    now: float,
) -> list[str]:
    """The ``wanted`` instances (of ``eligible``) that should run, best first."""

    def rank(name: str) -> tuple[bool, bool, bool, float, int]:
        placed = policy.placement(name)
        return (
            backing_off(zones, key(placed), now),
            placed.provisioning == STANDARD,
            not instances[name].warm,
            placed.hourly_price_usd,
            policy.instances.index(name),
        )

    fallback = fallback_open(policy, zones, now)
    startable = [
        n
        for n in eligible
        if not is_up(instances[n])
        and not backing_off(zones, key(policy.placement(n)), now)
        and (policy.placement(n).provisioning == SPOT or fallback)
    ]
    spot_ready = any(
        policy.placement(n).provisioning == SPOT
        and not zones.get(key(policy.placement(n)), ZoneHealth()).refusals
        for n in startable
    )
    up = [
        n
        for n in eligible
        if is_up(instances[n])
        and not (policy.placement(n).provisioning == STANDARD and spot_ready and n in idle)
    ]

    def keep(name: str) -> tuple[bool, bool, tuple[bool, bool, bool, float, int]]:
        return (name not in busy, instances[name].observed not in RUNNING_STATUSES, rank(name))

    return (sorted(up, key=keep) + sorted(startable, key=rank))[:wanted]


def skipped(
    policy: PoolPolicy, zones: Mapping[str, ZoneHealth], chosen: str, now: float
) -> list[str]:
    """Why each zone other than ``chosen``'s was passed over for a start (event log)."""
    zone = key(policy.placement(chosen))
    why = []
    for other in dict.fromkeys(key(policy.placement(n)) for n in policy.instances):
        health = zones.get(other)
        if other != zone and health is not None and backing_off(zones, other, now):
            assert health.backoff_until is not None
            why.append(
                f"zone {other} skipped: {health.refusals} capacity refusal(s) in a row, "
                f"backing off for {health.backoff_until - now:.0f}s more"
            )
    return why
