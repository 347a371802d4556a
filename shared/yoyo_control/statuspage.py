"""The status page: every pool at a glance and a timeline of its VMs, as one HTML document.

``render_html(store, config, now)`` is served at ``/`` of the local stack and by the
``status_page`` HTTP function. It shows the kill switch, each pool's lease and deadline,
spend (the real-time ledger), its instances (desired/observed status, last heartbeat,
last action), and an inline-SVG timeline of each instance's running intervals (from the
event log's action and decision events) with the decisions and their reasons, and a
histogram of the gateway's cold starts (how long requests were held).

Invariants: read-only (store reads only); every text from the store is HTML-escaped;
no script and no external resource (a meta refresh reloads it every ``REFRESH_S``);
the timeline spans from the oldest event of the last hour (at least ``MIN_SPAN_S``) to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from .config import Config
from .domain import killswitch
from .domain.model import RUNNING_STATUSES, PoolPolicy, PoolState
from .gateway.coldstarts import cold_starts, histogram
from .ports import Event, Store

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


def _timeline(
    pool: str, instances: list[str], spans: list[Interval], decisions: list[Event], now: float
) -> str:
    starts = [i.start for i in spans] + [d.at for d in decisions]
    begin = min(starts) if starts else now - MIN_SPAN_S
    begin = max(now - MAX_SPAN_S, min(begin - 5, now - MIN_SPAN_S))
    span = now - begin
    plot_w = _W - _LABEL_W - 10

    def x(at: float) -> float:
        return _LABEL_W + max(0.0, min(1.0, (at - begin) / span)) * plot_w

    rows = [*instances, "decisions"]
    height = _ROW_H * len(rows) + 30
    parts = [
        f'<svg class="timeline" role="img" aria-label="timeline of pool {escape(pool)}" '
        f'viewBox="0 0 {_W} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">',
        f"<title>Pool {escape(pool)}: VM running intervals and decisions, "
        f"{_clock(begin)} to {_clock(now)} UTC</title>",
    ]
    for i, row in enumerate(rows):
        y = i * _ROW_H
        parts.append(
            f'<text x="4" y="{y + 17}" class="rowlabel">{escape(row)}</text>'
            f'<line x1="{_LABEL_W}" y1="{y + _ROW_H - 2}" x2="{_W - 10}" y2="{y + _ROW_H - 2}" '
            'class="grid"/>'
        )
    for interval in spans:
        if interval.instance not in instances:
            continue
        y = instances.index(interval.instance) * _ROW_H + 4
        end = interval.end if interval.end is not None else now
        x0, x1 = x(interval.start), x(end)
        label = (
            f"{interval.instance} running {_clock(interval.start)}–"
            f"{_clock(interval.end) if interval.end else 'now'} ({_span(end - interval.start)}): "
            f"{interval.why}"
        )
        cls = "run open" if interval.end is None else "run"
        parts.append(
            f'<rect class="{cls}" x="{x0:.1f}" y="{y}" width="{max(2.0, x1 - x0):.1f}" '
            f'height="{_ROW_H - 10}" rx="3"><title>{escape(label)}</title></rect>'
        )
    y = len(instances) * _ROW_H + 4
    for d in decisions:
        cx = x(d.at)
        cls = "mark stop" if _is_stopping(d) else "mark"
        parts.append(
            f'<circle class="{cls}" cx="{cx:.1f}" cy="{y + 8}" r="5">'
            f"<title>{escape(_clock(d.at) + ' ' + d.reason)}</title></circle>"
        )
    axis_y = len(rows) * _ROW_H + 14
    for k in range(5):
        at = begin + span * k / 4
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        parts.append(
            f'<text x="{x(at):.1f}" y="{axis_y}" class="axis" text-anchor="{anchor}">'
            f"{_clock(at)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _is_stopping(event: Event) -> bool:
    data = dict(event.data or {})
    return any(a.get("kind") == "stop" for a in data.get("actions") or [])


def _pool_section(store: Store, config: Config, pool: str, events: list[Event], now: float) -> str:
    state = store.get_pool(pool)
    policy = config.policy(pool)
    mine = [e for e in events if e.pool == pool]
    decisions = [e for e in mine if e.kind == "decision" and e.reason]
    spans = intervals(mine, state, now)
    lease = state.lease
    if lease is not None and lease.valid(now):
        lease_html = (
            f'<span class="ok">held by {escape(lease.holder)}</span> '
            f"(epoch {lease.epoch}), deadline {_clock(lease.deadline())} "
            f"({_ago(now, lease.deadline())}); "
            f"reasons: {escape(', '.join(lease.reasons))}"
        )
    else:
        lease_html = '<span class="off">none</span> — no VM may run'
    running = [n for n, i in state.instances.items() if i.observed in RUNNING_STATUSES]
    headline = (
        f'<span class="ok">{len(running)} running</span>'
        if running
        else '<span class="off">scaled to zero</span>'
    )
    rows = []
    for name in policy.instances:
        inst = state.instances.get(name)
        hb = state.heartbeats.get(name)
        la = inst.last_action if inst else None
        beat = "—"
        if hb is not None:
            load = "busy" if hb.busy or hb.running or hb.waiting else "idle"
            beat = (
                f"{_ago(now, hb.received_at)} · {load} ({hb.running} running, {hb.waiting} waiting)"
            )
        action = "—"
        if la is not None:
            action = f"{la.kind} at {_clock(la.issued_at)}: {la.outcome or 'in flight'}"
        observed = inst.observed if inst else "UNKNOWN"
        cls = "ok" if observed in RUNNING_STATUSES else "off"
        rows.append(
            "<tr>"
            f"<td>{escape(name)}</td>"
            f"<td>{escape(inst.desired if inst else 'STOPPED')}</td>"
            f'<td class="{cls}">{escape(observed)}</td>'
            f"<td>{escape(beat)}</td>"
            f"<td>{escape(action)}</td>"
            f"<td>{escape(inst.error or '') if inst else ''}</td>"
            "</tr>"
        )
    recent = "".join(
        f"<li><time>{_clock(d.at)}</time> {escape(d.reason)}</li>"
        for d in reversed(decisions[-12:])
    )
    paused = f'<p class="warn">Paused: {escape(state.paused)}</p>' if state.paused else ""
    ledger = state.ledger
    return f"""
<section class="pool">
  <h2>Pool {escape(pool)} — {headline}</h2>
  {paused}
  <dl>
    <dt>Lease</dt><dd>{lease_html}</dd>
    <dt>Demand</dt><dd>queue depth {state.demand.depth}
      ({escape(state.demand.source or "none")}, {_ago(now, state.demand.updated_at)})</dd>
    <dt>Spend</dt><dd>${ledger.day_usd:.4f} today, ${ledger.month_usd:.4f} this month
      at {_prices(policy)}</dd>
    <dt>Last decision</dt><dd>{escape(state.last_decision or "—")}</dd>
  </dl>
  {_timeline(pool, list(policy.instances), spans, decisions, now)}
  <table>
    <thead><tr><th>instance</th><th>desired</th><th>observed</th><th>last heartbeat</th>
    <th>last action</th><th>error</th></tr></thead>
    <tbody>{"".join(rows)}</tbody>
  </table>
  {_cold_starts(mine)}
  <h3>Recent decisions</h3>
  <ol class="decisions">{recent or "<li>none yet</li>"}</ol>
</section>"""


def _cold_starts(events: list[Event]) -> str:
    """The gateway's cold starts in the window: a histogram of how long requests were held."""
    starts = cold_starts(events)
    if not starts:
        return ""
    buckets = histogram([c.held_s for c in starts])
    top = max(count for _, count in buckets) or 1
    bars = "".join(
        f'<tr><td>{escape(label)}</td><td><div class="bar" style="width:{100 * count / top:.0f}%">'
        f"</div></td><td>{count}</td></tr>"
        for label, count in buckets
    )
    last = escape(starts[-1].line())
    return (
        f"<h3>Cold starts ({len(starts)}): how long requests were held</h3>"
        f'<table class="hist"><tbody>{bars}</tbody></table>'
        f'<p class="sub">last: {last}</p>'
    )


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1d2330;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px}h3{font-size:15px}
.sub{color:#5b6475;margin:0 0 16px}
.banner{padding:12px 16px;border-radius:8px;margin-bottom:16px;font-weight:600}
.banner.kill{background:#fde2e1;color:#8a1c17;border:1px solid #f3a19c}
.banner.clear{background:#e3f4e8;color:#1e5c33;border:1px solid #a6d8b5}
.pool{background:#fff;border:1px solid #dde1e8;border-radius:10px;padding:16px 20px;
margin-bottom:20px}
dl{display:grid;grid-template-columns:130px 1fr;gap:4px 12px;margin:0 0 12px}
dt{color:#5b6475}dd{margin:0}
.ok{color:#1e7a3d;font-weight:600}.off{color:#6b7280;font-weight:600}
.warn{color:#9a5b00;font-weight:600}
table{border-collapse:collapse;width:100%;margin-top:8px;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ef}
th{color:#5b6475;font-weight:600}
.timeline{background:#fbfcfd;border:1px solid #e6e9ef;border-radius:6px;margin:6px 0}
.timeline .rowlabel{font-size:13px;fill:#1d2330}
.timeline .axis{font-size:11px;fill:#5b6475}
.timeline .grid{stroke:#e6e9ef}
.timeline .run{fill:#3b82f6}.timeline .run.open{fill:#22a55b}
.hist td:nth-child(2){width:70%}.hist .bar{background:#3b82f6;height:10px;border-radius:3px}
.timeline .mark{fill:#f59e0b}.timeline .mark.stop{fill:#dc2626}
.decisions{font-size:13px;padding-left:20px;margin:4px 0}
.decisions time{color:#5b6475;font-variant-numeric:tabular-nums;margin-right:6px}
footer{color:#5b6475;font-size:12px}
"""


def render_html(store: Any, config: Config | None = None, now: float | None = None) -> str:
    """The page for ``store``/``config`` at ``now``; a Service alone also works (its store,
    configuration and clock are used)."""
    if config is None:
        service = store
        store, config = service.store, service.config
        now = service.clock.now() if now is None else now
    if now is None:
        import time

        now = time.time()
    kill = store.get_kill()
    events = store.events(since=now - MAX_SPAN_S, limit=2000)
    if kill.engaged:
        banner = (
            f'<div class="banner kill">{escape(killswitch.banner(kill))}'
            " — no VM may start until it is lifted (yoyoctl unkill)</div>"
        )
    else:
        banner = '<div class="banner clear">Kill switch: off</div>'
    sections = "".join(_pool_section(store, config, p, events, now) for p in config.pools)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Yo-Yo status</title><style>{_CSS}</style></head>
<body>
<h1>Yo-Yo control plane</h1>
<p class="sub">{escape(config.project)} · backend {escape(config.backend)} ·
{_clock(now)} UTC · refreshes every {REFRESH_S}s</p>
{banner}
{sections}
<footer>Bars: a VM running (green: still running). Dots: decisions (red: a stop);
hover for the reason. Times are UTC.</footer>
</body></html>"""


def _prices(policy: PoolPolicy) -> str:
    """The ledger's hourly prices: one for the pool, or each VM's own range."""
    prices = sorted(set(policy.prices.values())) or [policy.hourly_price_usd]
    if len(prices) == 1:
        return f"${prices[0]:.2f}/h per VM"
    return f"${prices[0]:.2f}–${prices[-1]:.2f}/h, each VM at its own price"
