"""``yoyoctl status`` and ``yoyoctl events``: what the control plane holds and did.

Invariants: read-only; ``status`` renders statusview's view model (the status page's
too) as text or JSON; ``events --follow`` prints each event once, oldest first, until
Ctrl-C; the ticks are left out unless ``--all``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from typing import Any

from ..domain import history, prewarm
from ..domain.codec import to_doc
from ..domain.decide import prewarm_settings
from ..domain.killswitch import banner
from ..domain.timetext import clock, relative, stamp
from ..ports import Event
from ..statusview import InstanceView, PoolView, StatusView, status_view
from .context import Commands, Ctx

STATUS_EVENTS = 200  # the newest events of each pool read for its decisions and cold starts


def status_doc(view: StatusView) -> dict[str, Any]:
    return {
        "now": view.now,
        "backend": view.backend,
        "kill_switch": to_doc(view.kill),
        "pools": [_pool_doc(pool) for pool in view.pools],
    }


def _pool_doc(p: PoolView) -> dict[str, Any]:
    lease = p.state.lease
    return {
        "pool": p.name,
        "lease": (
            {**to_doc(lease), "valid": lease.valid(p.now), "deadline": lease.deadline()}
            if lease
            else None
        ),
        "paused": p.state.paused,
        "demand": to_doc(p.state.demand),
        "load": to_doc(p.state.load),
        "ledger": to_doc(p.state.ledger),
        "hourly_price_usd": p.policy.hourly_price_usd,
        "instances": [_instance_doc(i) for i in p.instances],
        "zones": [asdict(z) for z in p.zones],
        "history": to_doc(p.state.history),
        "prewarm": _prewarm_doc(p),
        "last_decision": p.state.last_decision,
        "decisions": [{"at": e.at, "reason": e.reason} for e in p.decisions[-5:]],
        "cold_starts": [
            {"at": c.at, "instance": c.instance, "held_s": c.held_s, "phases": dict(c.phases)}
            for c in p.cold_starts[-5:]
        ],
    }


def _prewarm_doc(p: PoolView) -> dict[str, Any]:
    """The pool's pre-warm budget, what it spent today and the next pre-warm it plans."""
    settings = prewarm_settings(p.policy)
    planned = prewarm.next_planned(p.state.history, p.now, settings)
    return {
        "budget_min": settings.budget_min,
        "spent_today_min": prewarm.spent_today(p.state.history, p.now, settings.timezone) / 60,
        "next_at": planned[0] if planned else None,
        "next_reason": planned[1].reason if planned else None,
    }


def _history_lines(p: PoolView, now: float) -> list[str]:
    """The learned pattern (domain/history.py) and the next planned pre-warm."""
    learned = history.describe(p.state.history, p.policy.timezone)
    lines = [
        ("  history:  " if i == 0 else "            ") + line for i, line in enumerate(learned)
    ]
    doc = _prewarm_doc(p)
    if doc["budget_min"] <= 0:
        lines.append("  prewarm:  off (prewarm_budget_min = 0)")
        return lines
    spent = f"{doc['spent_today_min']:.1f} of {doc['budget_min']:g} VM-min spent today"
    if doc["next_at"] is None:
        lines.append(f"  prewarm:  none planned in the next 24 h; {spent}")
    else:
        when = f"{stamp(doc['next_at'])} ({relative(now, doc['next_at'])})"
        lines.append(f"  prewarm:  next at {when}; {spent}")
    return lines


def _instance_doc(i: InstanceView) -> dict[str, Any]:
    inst, placed = i.instance, i.placement
    return {
        "name": i.name,
        "zone": placed.zone,
        "provisioning": placed.provisioning,
        "hourly_price_usd": placed.hourly_price_usd,
        "desired": i.desired,
        "observed": i.observed,
        "observed_at": inst.observed_at if inst else None,
        "running_since": inst.running_since if inst else None,
        "vm": i.vm.status if i.vm else None,
        "endpoint": i.vm.endpoint if i.vm else None,
        "last_heartbeat": to_doc(i.heartbeat) if i.heartbeat else None,
        "last_action": (
            {**to_doc(i.last_action), "said": i.last_action.said} if i.last_action else None
        ),
        "error": i.error,
    }


def _pool_lines(p: PoolView, now: float) -> list[str]:
    lines = [f"\npool {p.name}"]
    lease = p.lease
    if lease is not None:
        lines.append(
            f"  lease:    epoch {lease.epoch} held by {lease.holder}, deadline "
            f"{stamp(lease.deadline())} ({relative(now, lease.deadline())}); "
            f"reasons: {', '.join(lease.reasons)}"
        )
    else:
        lines.append("  lease:    none (no VM may run)")
    if p.state.paused:
        lines.append(f"  paused:   {p.state.paused}")
    demand, ledger = p.state.demand, p.state.ledger
    lines.append(f"  demand:   queue depth {demand.depth} ({demand.source or 'none'})")
    load = p.state.load
    if load.vms or load.refused or load.in_flight or load.held:
        lines.append(
            f"  load:     {load.vms} VM(s) wanted within {p.policy.scale_window_s:.0f}s "
            f"(target {p.policy.target:g}/VM); gateway: {load.in_flight} in flight, "
            f"{load.held} held"
        )
    if load.refused:
        lines.append(f"  scale:    {load.refused}")
    lines.append(
        f"  spend:    ${ledger.day_usd:.4f} today, ${ledger.month_usd:.4f} this month "
        "(ledger: each VM at its own hourly price)"
    )
    lines += _history_lines(p, now)
    for i in p.instances:
        hb = i.heartbeat
        beat = "no heartbeat"
        if hb:
            beat = (
                f"heartbeat {relative(now, hb.received_at)} ({i.load}, {hb.running} running,"
                f" {hb.waiting} waiting)"
            )
        vm = f", vm {i.vm.status}" if i.vm and i.vm.status else ""
        price = f"${i.placement.hourly_price_usd:.2f}/h"
        lines.append(
            f"  {i.name} [{i.placement.zone}, {i.placement.provisioning}, {price}]: "
            f"desired {i.desired}, observed {i.observed}{vm}; "
            f"{beat}" + (f"; error: {i.error}" if i.error else "")
        )
    for z in p.zones:
        health = z.health
        if z.backoff_until is not None:
            health += f" until {clock(z.backoff_until)}"
        if z.refusals_in_a_row:
            health += f" ({z.refusals_in_a_row} capacity refusal(s) in a row)"
        seen = [f"{len(z.recent_refusals)} refusal(s)"] if z.recent_refusals else []
        if z.recent_preemptions:
            seen.append(f"{len(z.recent_preemptions)} preemption(s)")
        recent = f"; recently {', '.join(seen)}" if seen else ""
        lines.append(f"  zone {z.zone}: {health}{recent}")
    for d in p.decisions[-5:]:
        lines.append(f"  {clock(d.at)}  {d.reason}")
    for c in p.cold_starts[-5:]:
        lines.append(f"  cold start {clock(c.at)}: {c.line()}")
    return lines


def cmd_status(ctx: Ctx) -> int:
    now = time.time()
    store = ctx.store
    view = status_view(
        store,
        ctx.config,
        now,
        lambda pool: store.events(pool=pool, limit=STATUS_EVENTS),
        ctx.local.vms() if ctx.local else None,
    )
    if ctx.args.pool:
        view = replace(view, pools=[p for p in view.pools if p.name == ctx.pool()])
    lines = [banner(view.kill)]
    for pool in view.pools:
        lines += _pool_lines(pool, now)
    hint = "yoyoctl events --follow"
    if view.kill.engaged:
        hint = "yoyoctl unkill --yes"
    elif not any(p.lease for p in view.pools):
        hint = 'yoyoctl ask "hello"   (or: yoyoctl batch submit examples/batch.jsonl)'
    ctx.out(status_doc(view), "\n".join(lines), hint)
    return 0


def _event_line(e: Event) -> str:
    where = f" [{e.pool}]" if e.pool else ""
    return f"{clock(e.at)} {e.kind:<8}{where} {e.reason}"


def _event_doc(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "at": e.at,
        "pool": e.pool,
        "message_id": e.message_id,
        "reason": e.reason,
        "data": dict(e.data),
    }


def cmd_events(ctx: Ctx) -> int:
    pool = ctx.args.pool

    def shown(e: Event) -> bool:
        return bool(ctx.args.all) or not (e.kind == "fact" and e.reason == "Tick")

    def show(e: Event) -> None:
        print(json.dumps(_event_doc(e), default=str) if ctx.json else _event_line(e), flush=True)

    events = [e for e in ctx.store.events(pool=pool, limit=ctx.args.limit * 4) if shown(e)]
    events = events[-ctx.args.limit :]
    if not ctx.args.follow:
        ctx.out(
            {"events": [_event_doc(e) for e in events]},
            "\n".join(_event_line(e) for e in events) or "no events yet",
            "yoyoctl events --follow",
        )
        return 0
    seen = {e.id for e in events}
    since = events[-1].at - 1 if events else time.time() - 1
    for e in events:
        show(e)
    try:
        while True:
            time.sleep(ctx.args.interval)
            for e in ctx.store.events(pool=pool, since=since, limit=500):
                if e.id in seen or not shown(e):
                    continue
                seen.add(e.id)
                since = max(since, e.at - 1)
                show(e)
    except KeyboardInterrupt:
        return 0


def register_status(commands: Commands) -> None:
    commands.add("status", cmd_status, "pools, leases, VMs, kill switch, spend, decisions", True)


def register_events(commands: Commands) -> None:
    p = commands.add("events", cmd_events, "the event log (facts, decisions, actions)", True)
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--all", action="store_true", help="also the ticks")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
