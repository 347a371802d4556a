"""The status page: every pool at a glance and a timeline of its VMs, as one HTML document.

``render_html(store, config, now)`` (or ``render_html(service)``) is served at ``/`` of the
local stack and by the ``status_page`` HTTP function. It shows the kill switch, each pool's
lease and deadline, spend (the real-time ledger), its instances (desired/observed status,
last heartbeat, last action), and an inline-SVG timeline of each instance's running
intervals (from the event log's action and decision events) with the decisions and their
reasons, and a histogram of the gateway's cold starts (how long requests were held). The
HTML is the Jinja2 template ``templates/status.html``; this module computes what it shows.

Invariants: read-only (store reads only); every text from the store is HTML-escaped (the
template is autoescaped); no script and no external resource (a meta refresh reloads it
every ``REFRESH_S``);
the timeline spans from the oldest event of the last hour (at least ``MIN_SPAN_S``) to now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, overload

from jinja2 import Environment, PackageLoader, StrictUndefined

from .config import Config
from .domain import killswitch
from .domain.heartbeats import is_busy
from .domain.model import RUNNING_STATUSES, Lease, PoolPolicy, PoolState
from .gateway.coldstarts import ColdStart, cold_starts, histogram
from .ports import Event, Store
from .service import Service

REFRESH_S = 5
MIN_SPAN_S = 120.0
MAX_SPAN_S = 3600.0
_W, _LABEL_W, _ROW_H = 900, 150, 26
_ENDING_RULES = ("5-heartbeat-gap", "8-preempted", "7-max-session")


@dataclass
class Interval:
    instance: str
    start: float
    end: float | None
    why: str


def _clock(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    delta = now - at
    if delta < 0:
        return f"in {_span(-delta)}"
    return f"{_span(delta)} ago"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def intervals(events: list[Event], state: PoolState, now: float) -> list[Interval]:
    """Running intervals per instance: a done start opens one; a done stop, or a decision
    that found the instance stopped (preempted, heartbeat gap), closes it."""
    open_: dict[str, Interval] = {}
    out: list[Interval] = []
    for event in events:
        data: dict[str, Any] = dict(event.data or {})
        if event.kind == "action" and data.get("outcome") == "done":
            action = data.get("action") or {}
            name, kind = str(action.get("instance", "")), action.get("kind")
            if kind == "start" and name not in open_:
                open_[name] = Interval(name, event.at, None, str(action.get("reason", "")))
            elif kind == "stop" and name in open_:
                interval = open_.pop(name)
                interval.end = event.at
                out.append(interval)
        elif event.kind == "decision":
            for change in data.get("changes") or []:
                name = str(change.get("instance") or "")
                if name in open_ and change.get("rule") in _ENDING_RULES:
                    interval = open_.pop(name)
                    interval.end = event.at
                    out.append(interval)
    for name, interval in open_.items():
        inst = state.instances.get(name)
        if inst is not None and inst.observed not in RUNNING_STATUSES and inst.observed_at:
            interval.end = max(interval.start, inst.observed_at)
        out.append(interval)
    return sorted(out, key=lambda i: i.start)


@dataclass(frozen=True)
class _Row:
    label: str
    y: int


@dataclass(frozen=True)
class _Bar:
    x: float
    y: int
    width: float
    open: bool
    title: str


@dataclass(frozen=True)
class _Mark:
    x: float
    stop: bool
    title: str


@dataclass(frozen=True)
class _AxisTick:
    x: float
    anchor: str
    at: float


@dataclass(frozen=True)
class _Timeline:
    """The SVG's geometry: one row per instance plus the decisions row, and a time axis."""

    begin: float
    rows: list[_Row]
    bars: list[_Bar]
    marks: list[_Mark]
    ticks: list[_AxisTick]
    height: int
    marks_y: int
    axis_y: int
    width: int = _W
    plot_x: int = _LABEL_W
    row_h: int = _ROW_H


def _timeline(
    instances: list[str], spans: list[Interval], decisions: list[Event], now: float
) -> _Timeline:
    starts = [i.start for i in spans] + [d.at for d in decisions]
    begin = min(starts) if starts else now - MIN_SPAN_S
    begin = max(now - MAX_SPAN_S, min(begin - 5, now - MIN_SPAN_S))
    span = now - begin
    plot_w = _W - _LABEL_W - 10

    def x(at: float) -> float:
        return _LABEL_W + max(0.0, min(1.0, (at - begin) / span)) * plot_w

    labels = [*instances, "decisions"]
    bars = []
    for interval in spans:
        if interval.instance not in instances:
            continue
        end = interval.end if interval.end is not None else now
        x0, x1 = x(interval.start), x(end)
        title = (
            f"{interval.instance} running {_clock(interval.start)}–"
            f"{_clock(interval.end) if interval.end else 'now'} ({_span(end - interval.start)}): "
            f"{interval.why}"
        )
        y = instances.index(interval.instance) * _ROW_H + 4
        bars.append(_Bar(x0, y, max(2.0, x1 - x0), interval.end is None, title))
    marks = [_Mark(x(d.at), _is_stopping(d), f"{_clock(d.at)} {d.reason}") for d in decisions]
    ticks = []
    for k in range(5):
        at = begin + span * k / 4
        ticks.append(_AxisTick(x(at), "start" if k == 0 else "end" if k == 4 else "middle", at))
    return _Timeline(
        begin=begin,
        rows=[_Row(label, i * _ROW_H) for i, label in enumerate(labels)],
        bars=bars,
        marks=marks,
        ticks=ticks,
        height=_ROW_H * len(labels) + 30,
        marks_y=len(instances) * _ROW_H + 4,
        axis_y=len(labels) * _ROW_H + 14,
    )


def _is_stopping(event: Event) -> bool:
    data = dict(event.data or {})
    return any(a.get("kind") == "stop" for a in data.get("actions") or [])


@dataclass(frozen=True)
class _InstanceRow:
    name: str
    desired: str
    observed: str
    running: bool
    beat: str
    action: str
    error: str


@dataclass(frozen=True)
class _PoolView:
    name: str
    state: PoolState
    lease: Lease | None  # only while valid
    running: int
    prices: str
    timeline: _Timeline
    rows: list[_InstanceRow]
    cold_starts: list[ColdStart]
    histogram: list[tuple[str, int]]
    histogram_top: int
    recent: list[Event]  # newest first


def _pool_view(
    store: Store, config: Config, pool: str, events: list[Event], now: float
) -> _PoolView:
    state = store.get_pool(pool)
    policy = config.policy(pool)
    mine = [e for e in events if e.pool == pool]
    decisions = [e for e in mine if e.kind == "decision" and e.reason]
    rows = []
    for name in policy.instances:
        inst = state.instances.get(name)
        hb = state.heartbeats.get(name)
        la = inst.last_action if inst else None
        beat = "—"
        if hb is not None:
            load = "busy" if is_busy(hb) else "idle"
            beat = (
                f"{_ago(now, hb.received_at)} · {load} ({hb.running} running, {hb.waiting} waiting)"
            )
        action = "—"
        if la is not None:
            action = f"{la.kind} at {_clock(la.issued_at)}: {la.outcome or 'in flight'}"
        observed = inst.observed if inst else "UNKNOWN"
        rows.append(
            _InstanceRow(
                name=name,
                desired=inst.desired if inst else "STOPPED",
                observed=observed,
                running=observed in RUNNING_STATUSES,
                beat=beat,
                action=action,
                error=(inst.error or "") if inst else "",
            )
        )
    starts = cold_starts(mine)
    buckets = histogram([c.held_s for c in starts]) if starts else []
    lease = state.lease
    return _PoolView(
        name=pool,
        state=state,
        lease=lease if lease is not None and lease.valid(now) else None,
        running=sum(1 for i in state.instances.values() if i.observed in RUNNING_STATUSES),
        prices=_prices(policy),
        timeline=_timeline(list(policy.instances), intervals(mine, state, now), decisions, now),
        rows=rows,
        cold_starts=starts,
        histogram=buckets,
        histogram_top=max((count for _, count in buckets), default=0) or 1,
        recent=list(reversed(decisions[-12:])),
    )


_PAGES = Environment(
    loader=PackageLoader("yoyo_control", "templates"),
    autoescape=True,  # every text from the store is escaped
    undefined=StrictUndefined,  # a misspelt name in the template fails, never renders blank
)


@overload
def render_html(source: Service) -> str: ...


@overload
def render_html(source: Store, config: Config, now: float | None = None) -> str: ...


def render_html(
    source: Service | Store, config: Config | None = None, now: float | None = None
) -> str:
    """The page for a store with its configuration at ``now`` (default: the wall clock), or
    for a Service (its store, configuration and clock)."""
    if isinstance(source, Service):
        store: Store = source.store
        config = source.config
        now = source.clock.now() if now is None else now
    elif config is None:
        raise TypeError("render_html(store, config, now): a store needs its configuration")
    else:
        store = source
    if now is None:
        now = time.time()
    kill = store.get_kill()
    events = store.events(since=now - MAX_SPAN_S, limit=2000)
    return _PAGES.get_template("status.html").render(
        refresh_s=REFRESH_S,
        config=config,
        now=now,
        kill=kill,
        kill_banner=killswitch.banner(kill) if kill.engaged else "",
        pools=[_pool_view(store, config, pool, events, now) for pool in config.pools],
        clock=_clock,
        ago=partial(_ago, now),
    )


def _prices(policy: PoolPolicy) -> str:
    """The ledger's hourly prices: one for the pool, or each VM's own range."""
    prices = sorted(set(policy.prices.values())) or [policy.hourly_price_usd]
    if len(prices) == 1:
        return f"${prices[0]:.2f}/h per VM"
    return f"${prices[0]:.2f}–${prices[-1]:.2f}/h, each VM at its own price"
