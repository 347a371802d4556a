"""The status page: every pool at a glance and a timeline of its VMs, as one HTML document.

``render_html(store, config, now)`` (or ``render_html(service)``) is served at ``/`` of the
local stack and by the ``status_page`` HTTP function. It shows the kill switch, each pool's
lease and deadline, spend (the real-time ledger), its instances (desired/observed status,
last heartbeat, last action), and an inline-SVG timeline of each instance's running
intervals (from the event log's action and decision events) with the decisions and their
reasons, and a histogram of the gateway's cold starts (how long requests were held). The
HTML is the Jinja2 template ``templates/status.html``; the pools are statusview's view model
(``yoyoctl status`` shows the same), and this module adds what only the page draws.

Invariants: read-only (store reads only); every text from the store is HTML-escaped (the
template is autoescaped); no script and no external resource (a meta refresh reloads it
every ``REFRESH_S``);
the timeline spans from the oldest event of the last hour (at least ``MIN_SPAN_S``) to now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, overload

from jinja2 import Environment, PackageLoader, StrictUndefined

from .config import Config
from .domain import killswitch
from .domain.model import RUNNING_STATUSES, PoolState
from .domain.timetext import clock, relative, span
from .gateway.coldstarts import histogram
from .ports import Event, Store
from .service import Service
from .statusview import PoolView, status_view

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
    width = now - begin
    plot_w = _W - _LABEL_W - 10

    def x(at: float) -> float:
        return _LABEL_W + max(0.0, min(1.0, (at - begin) / width)) * plot_w

    labels = [*instances, "decisions"]
    bars = []
    for interval in spans:
        if interval.instance not in instances:
            continue
        end = interval.end if interval.end is not None else now
        x0, x1 = x(interval.start), x(end)
        title = (
            f"{interval.instance} running {clock(interval.start)}–"
            f"{clock(interval.end) if interval.end else 'now'} ({span(end - interval.start)}): "
            f"{interval.why}"
        )
        y = instances.index(interval.instance) * _ROW_H + 4
        bars.append(_Bar(x0, y, max(2.0, x1 - x0), interval.end is None, title))
    marks = [_Mark(x(d.at), _is_stopping(d), f"{clock(d.at)} {d.reason}") for d in decisions]
    ticks = []
    for k in range(5):
        at = begin + width * k / 4
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
class _PoolPage:
    """One pool's section: its view (statusview.PoolView) and what only the page draws."""

    view: PoolView
    timeline: _Timeline
    rows: list[_InstanceRow]
    histogram: list[tuple[str, int]]
    histogram_top: int
    recent: list[Event]  # newest first


def _pool_page(view: PoolView, events: list[Event], now: float) -> _PoolPage:
    rows = []
    for inst in view.instances:
        hb, la = inst.heartbeat, inst.last_action
        beat = "—"
        if hb is not None:
            beat = (
                f"{relative(now, hb.received_at)} · {inst.load} "
                f"({hb.running} running, {hb.waiting} waiting)"
            )
        action = "—"
        if la is not None:
            action = f"{la.kind} at {clock(la.issued_at)}: {la.outcome or 'in flight'}"
        rows.append(
            _InstanceRow(
                name=inst.name,
                desired=inst.desired,
                observed=inst.observed,
                running=inst.running,
                beat=beat,
                action=action,
                error=inst.error or "",
            )
        )
    buckets = histogram([c.held_s for c in view.cold_starts]) if view.cold_starts else []
    spans = intervals(events, view.state, now)
    return _PoolPage(
        view=view,
        timeline=_timeline(list(view.policy.instances), spans, view.decisions, now),
        rows=rows,
        histogram=buckets,
        histogram_top=max((count for _, count in buckets), default=0) or 1,
        recent=list(reversed(view.decisions[-12:])),
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
    events = store.events(since=now - MAX_SPAN_S, limit=2000)
    by_pool = {pool: [e for e in events if e.pool == pool] for pool in config.pools}
    view = status_view(store, config, now, by_pool.__getitem__)
    kill = view.kill
    return _PAGES.get_template("status.html").render(
        refresh_s=REFRESH_S,
        config=config,
        now=now,
        kill=kill,
        kill_banner=killswitch.banner(kill) if kill.engaged else "",
        pools=[_pool_page(v, by_pool[v.name], now) for v in view.pools],
        clock=clock,
        ago=partial(relative, now),
    )
