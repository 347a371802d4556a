"""Every pool as an operator reads it: the one view model behind ``yoyoctl status`` (text
and JSON, cli/status.py) and the status page (HTML, statuspage.py).

Invariants: read-only — the store is read (the kill switch, each pool's document, through
the caller's ``events``) and nothing is written; a pool never written yet shows its
configured instances as desired STOPPED, observed UNKNOWN; only a lease still valid at
``now`` is shown as held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .config import Config
from .domain import capacity
from .domain.heartbeats import is_busy
from .domain.model import (
    RUNNING_STATUSES,
    UNKNOWN,
    ActionRecord,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    Placement,
    PoolPolicy,
    PoolState,
    ZoneHealth,
)
from .gateway.coldstarts import ColdStart, cold_starts
from .ports import Event, Store


class LiveVm(Protocol):
    """A VM as its host sees it (the local stack's instance table)."""

    @property
    def status(self) -> str: ...
    @property
    def endpoint(self) -> str | None: ...


@dataclass(frozen=True)
class InstanceView:
    name: str
    placement: Placement
    instance: Instance | None  # None: never written yet
    heartbeat: Heartbeat | None
    vm: LiveVm | None = None  # only on the local stack

    @property
    def desired(self) -> str:
        return (self.instance.desired if self.instance else Desired.STOPPED).value

    @property
    def observed(self) -> str:
        return self.instance.observed if self.instance else UNKNOWN

    @property
    def running(self) -> bool:
        return self.observed in RUNNING_STATUSES

    @property
    def load(self) -> str:
        return "busy" if self.heartbeat is not None and is_busy(self.heartbeat) else "idle"

    @property
    def last_action(self) -> ActionRecord | None:
        return self.instance.last_action if self.instance else None

    @property
    def error(self) -> str | None:
        return self.instance.error if self.instance else None


@dataclass(frozen=True)
class ZoneView:
    """One capacity pool of the pool's instances (a zone; ``<zone>/standard`` for the
    standard fallback): healthy or backing off after capacity refusals, recent events."""

    zone: str
    health: str  # "ok", "retry" or "backing off"
    refusals_in_a_row: int
    backoff_until: float | None
    refused_since: float | None
    recent_refusals: list[float]
    recent_preemptions: list[float]
    last_refusal: str


@dataclass(frozen=True)
class PoolView:
    name: str
    policy: PoolPolicy
    state: PoolState
    now: float
    instances: list[InstanceView]
    zones: list[ZoneView]
    decisions: list[Event]  # decisions with a reason, oldest first
    cold_starts: list[ColdStart] = field(default_factory=list)  # oldest first

    @property
    def lease(self) -> Lease | None:
        """The lease while it is valid; None when no VM may run."""
        lease = self.state.lease
        return lease if lease is not None and lease.valid(self.now) else None

    @property
    def running(self) -> int:
        return sum(1 for i in self.state.instances.values() if i.observed in RUNNING_STATUSES)

    @property
    def prices(self) -> str:
        """The ledger's hourly prices: one for the pool, or each VM's own range."""
        prices = sorted(set(self.policy.prices.values())) or [self.policy.hourly_price_usd]
        if len(prices) == 1:
            return f"${prices[0]:.2f}/h per VM"
        return f"${prices[0]:.2f}–${prices[-1]:.2f}/h, each VM at its own price"


@dataclass(frozen=True)
class StatusView:
    now: float
    backend: str
    kill: KillSwitch
    pools: list[PoolView]


def zone_views(policy: PoolPolicy, state: PoolState, now: float) -> list[ZoneView]:
    keys = dict.fromkeys(capacity.key(policy.placement(n)) for n in policy.instances)
    views = []
    for key in keys:
        health = state.zones.get(key, ZoneHealth())
        off = capacity.backing_off(state.zones, key, now)
        views.append(
            ZoneView(
                zone=key,
                health="backing off" if off else ("ok" if not health.refusals else "retry"),
                refusals_in_a_row=health.refusals,
                backoff_until=health.backoff_until if off else None,
                refused_since=health.refused_since,
                recent_refusals=list(health.recent),
                recent_preemptions=list(health.preempted),
                last_refusal=health.detail,
            )
        )
    return views


def pool_view(
    policy: PoolPolicy,
    state: PoolState,
    events: list[Event],
    now: float,
    vms: Mapping[str, LiveVm] | None = None,
) -> PoolView:
    """The pool from its document and its recent ``events`` (oldest first)."""
    vms = vms or {}
    return PoolView(
        name=policy.pool,
        policy=policy,
        state=state,
        now=now,
        instances=[
            InstanceView(
                name,
                policy.placement(name),
                state.instances.get(name),
                state.heartbeats.get(name),
                vms.get(name),
            )
            for name in policy.instances
        ],
        zones=zone_views(policy, state, now),
        decisions=[e for e in events if e.kind == "decision" and e.reason],
        cold_starts=cold_starts(events),
    )


def status_view(
    store: Store,
    config: Config,
    now: float,
    events: Callable[[str], list[Event]],
    vms: Mapping[str, LiveVm] | None = None,
) -> StatusView:
    """Every configured pool: the kill switch first, then each pool's document and its
    ``events(pool)``."""
    kill = store.get_kill()
    pools = []
    for pool, policy in config.pools.items():
        state = store.get_pool(pool)
        pools.append(pool_view(policy, state, events(pool), now, vms))
    return StatusView(now, config.backend, kill, pools)
