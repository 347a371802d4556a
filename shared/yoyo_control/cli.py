"""``yoyoctl``: operate the control plane, local or on Google Cloud, from one configuration.

The configuration comes from YOYO_CONFIG / YOYO_CONFIG_FILE / the embedded default, and
bootstrap builds the Store and the Publisher from it, so the same commands drive the local
stack (``yoyoctl local up``) and a cloud deployment. Commands publish control messages
(docs/messages.md) exactly as ``gcloud pubsub topics publish`` would; ``--direct`` writes
the kill switch document like an operator flipping it in the console.

Invariants (STYLE.md): every command takes ``--json``; an error is one line on stderr and
exit code 1 (a traceback only with ``--debug``), a usage error exit code 2; destructive
commands (kill, unkill, stop) ask for confirmation unless ``--yes``; after each action the
exact next command to run is printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import names
from .config import load_config, parse_duration
from .domain import capacity
from .domain.codec import from_doc, to_doc
from .domain.killswitch import banner, describe
from .domain.model import KillSwitch, PoolPolicy, PoolState, ZoneHealth
from .errors import ConfigError, YoyoError
from .gateway.coldstarts import cold_starts, summary


class CliError(YoyoError):
    """A failure worth one line to the operator."""


STACK_STARTING_WAIT_S = 60.0  # how long a command waits for a local stack still starting


# --- plumbing ------------------------------------------------------------------------


class Ctx:
    """What every command gets: the configuration, adapters built on demand, output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.config = load_config()
        if getattr(args, "fn", None) is not cmd_local_up:
            self._adopt_running_stack()
        self._store: Any = None
        self._publisher: Any = None

    def _adopt_running_stack(self) -> None:
        """Find the local stack this configuration names — by its address alone — and use
        its state directory and emulators (a relative ``state_dir`` resolves differently in
        another directory; the emulators' ports are known only to the stack)."""
        if self.config.backend != "local":
            return
        from . import jsonhttp as http

        local = self.config.local
        url = f"http://{local.host}:{local.port}/healthz"
        deadline = time.monotonic() + STACK_STARTING_WAIT_S
        while True:
            try:
                status, body = http.get(url, timeout=2.0)
                info = json.loads(body)
            except (OSError, ValueError):
                return  # no stack here: a command that needs one says so
            if not isinstance(info, dict):
                return
            if status == 200:
                break
            if time.monotonic() > deadline or info.get("ready") is None:
                raise CliError(f"the local stack at {url} is not ready (HTTP {status}); try again")
            time.sleep(0.2)  # starting: "up" means its topics and subscriptions exist
        state_dir = info.get("state_dir")
        if isinstance(state_dir, str) and state_dir:
            self.config = replace(self.config, local=replace(local, state_dir=state_dir))
        for key, value in (info.get("emulators") or {}).items():
            os.environ[str(key)] = str(value)

    @property
    def store(self) -> Any:
        if self._store is None:
            from .bootstrap import build_store

            self._store = build_store(self.config)
        return self._store

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from .bootstrap import build_publisher

            self._publisher = build_publisher(self.config)
        return self._publisher

    def pool(self) -> str:
        pool = getattr(self.args, "pool", None)
        if pool:
            self.config.policy(pool)  # ConfigError if unknown
            return str(pool)
        if len(self.config.pools) == 1:
            return next(iter(self.config.pools))
        raise CliError(f"several pools are configured ({sorted(self.config.pools)}): pass --pool")

    def publish(self, suffix: str, doc: dict[str, Any], **attributes: str) -> str:
        data = json.dumps(doc).encode()
        return str(self.publisher.publish(self.config.topic(suffix), data, **attributes))

    def out(self, doc: Any, text: str, next_command: str | None = None) -> None:
        if self.json:
            if next_command and isinstance(doc, dict):
                doc = {**doc, "next": next_command}
            print(json.dumps(doc, indent=2, default=str))
            return
        if text:
            print(text)
        if next_command:
            print(f"\nnext: {next_command}")

    def confirm(self, question: str) -> None:
        if getattr(self.args, "yes", False):
            return
        if not sys.stdin.isatty():
            raise CliError(f"{question} — refusing without confirmation: add --yes")
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CliError("cancelled")


def _by() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return f"{user}@yoyoctl"[:100]


def _clock(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rel(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    d = int(abs(now - at))
    text = f"{d}s" if d < 120 else f"{d // 60}m" if d < 7200 else f"{d // 3600}h{d % 3600 // 60}m"
    return f"in {text}" if at > now else f"{text} ago"


def _duration_arg(value: str) -> float:
    try:
        return parse_duration(value, "--for")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds % 60 == 0 else f"{int(seconds)}s"


# --- status --------------------------------------------------------------------------


def status_doc(ctx: Ctx, now: float) -> dict[str, Any]:
    store, config = ctx.store, ctx.config
    kill = store.get_kill()
    live: dict[str, Any] = {}
    if config.backend == "local":
        from .local.compute import InstanceTable

        table = InstanceTable(Path(config.local.state_dir) / "compute.sqlite3")
        live = {r.name: r for r in table.rows()}
    pools = []
    for pool, policy in config.pools.items():
        state = store.get_pool(pool)
        lease = state.lease
        instances = []
        for name in policy.instances:
            inst = state.instances.get(name)
            hb = state.heartbeats.get(name)
            row = live.get(name)
            placed = policy.placement(name)
            instances.append(
                {
                    "name": name,
                    "zone": placed.zone,
                    "provisioning": placed.provisioning,
                    "hourly_price_usd": placed.hourly_price_usd,
                    "desired": inst.desired.value if inst else "STOPPED",
                    "observed": inst.observed if inst else "UNKNOWN",
                    "observed_at": inst.observed_at if inst else None,
                    "running_since": inst.running_since if inst else None,
                    "vm": row.status if row else None,
                    "endpoint": row.endpoint if row else None,
                    "last_heartbeat": to_doc(hb) if hb else None,
                    "last_action": to_doc(inst.last_action) if inst and inst.last_action else None,
                    "error": inst.error if inst else None,
                }
            )
        recent = store.events(pool=pool, limit=200)
        decisions = [
            {"at": e.at, "reason": e.reason} for e in recent if e.kind == "decision" and e.reason
        ][-5:]
        colds = [
            {"at": c.at, "instance": c.instance, "held_s": c.held_s, "phases": dict(c.phases)}
            for c in cold_starts(recent)[-5:]
        ]
        pools.append(
            {
                "pool": pool,
                "lease": (
                    {**to_doc(lease), "valid": lease.valid(now), "deadline": lease.deadline()}
                    if lease
                    else None
                ),
                "paused": state.paused,
                "demand": to_doc(state.demand),
                "ledger": to_doc(state.ledger),
                "hourly_price_usd": policy.hourly_price_usd,
                "instances": instances,
                "zones": _zones_doc(policy, state, now),
                "last_decision": state.last_decision,
                "decisions": decisions,
                "cold_starts": colds,
            }
        )
    return {"now": now, "backend": config.backend, "kill_switch": to_doc(kill), "pools": pools}


def _zones_doc(policy: PoolPolicy, state: PoolState, now: float) -> list[dict[str, Any]]:
    """Each capacity pool of the pool's instances (a zone; ``<zone>/standard`` for the
    standard fallback): healthy or backing off after capacity refusals, and recent events."""
    keys = dict.fromkeys(capacity.key(policy.placement(n)) for n in policy.instances)
    docs = []
    for key in keys:
        health = state.zones.get(key, ZoneHealth())
        off = capacity.backing_off(state.zones, key, now)
        docs.append(
            {
                "zone": key,
                "health": "backing off" if off else ("ok" if not health.refusals else "retry"),
                "refusals_in_a_row": health.refusals,
                "backoff_until": health.backoff_until if off else None,
                "refused_since": health.refused_since,
                "recent_refusals": list(health.recent),
                "recent_preemptions": list(health.preempted),
                "last_refusal": health.detail,
            }
        )
    return docs


def cmd_status(ctx: Ctx) -> int:
    now = time.time()
    doc = status_doc(ctx, now)
    kill = doc["kill_switch"]
    lines = []
    lines.append(banner(from_doc(KillSwitch, kill)))
    for p in doc["pools"]:
        lease = p["lease"]
        lines.append(f"\npool {p['pool']}")
        if lease and lease["valid"]:
            lines.append(
                f"  lease:    epoch {lease['epoch']} held by {lease['holder']}, deadline "
                f"{_clock(lease['deadline'])} ({_rel(now, lease['deadline'])}); "
                f"reasons: {', '.join(lease['reasons'])}"
            )
        else:
            lines.append("  lease:    none (no VM may run)")
        if p["paused"]:
            lines.append(f"  paused:   {p['paused']}")
        demand = p["demand"]
        lines.append(f"  demand:   queue depth {demand['depth']} ({demand['source'] or 'none'})")
        ledger = p["ledger"]
        lines.append(
            f"  spend:    ${ledger['day_usd']:.4f} today, ${ledger['month_usd']:.4f} this month "
            "(ledger: each VM at its own hourly price)"
        )
        for inst in p["instances"]:
            hb = inst["last_heartbeat"]
            beat = "no heartbeat"
            if hb:
                load = "busy" if hb["busy"] or hb["running"] or hb["waiting"] else "idle"
                beat = (
                    f"heartbeat {_rel(now, hb['received_at'])} ({load}, {hb['running']} running,"
                    f" {hb['waiting']} waiting)"
                )
            vm = f", vm {inst['vm']}" if inst["vm"] else ""
            price = f"${inst['hourly_price_usd']:.2f}/h"
            lines.append(
                f"  {inst['name']} [{inst['zone']}, {inst['provisioning']}, {price}]: "
                f"desired {inst['desired']}, observed {inst['observed']}{vm}; "
                f"{beat}" + (f"; error: {inst['error']}" if inst["error"] else "")
            )
        for z in p["zones"]:
            health = z["health"]
            if z["backoff_until"] is not None:
                health += f" until {_clock(z['backoff_until'])[11:19]}"
            if z["refusals_in_a_row"]:
                health += f" ({z['refusals_in_a_row']} capacity refusal(s) in a row)"
            seen = [f"{len(z['recent_refusals'])} refusal(s)"] if z["recent_refusals"] else []
            if z["recent_preemptions"]:
                seen.append(f"{len(z['recent_preemptions'])} preemption(s)")
            recent = f"; recently {', '.join(seen)}" if seen else ""
            lines.append(f"  zone {z['zone']}: {health}{recent}")
        for d in p["decisions"]:
            lines.append(f"  {_clock(d['at'])[11:19]}  {d['reason']}")
        for c in p["cold_starts"]:
            line = summary(c["instance"], c["held_s"], c["phases"])
            lines.append(f"  cold start {_clock(c['at'])[11:19]}: {line}")
    hint = "yoyoctl events --follow"
    if kill["engaged"]:
        hint = "yoyoctl unkill --yes"
    elif not any(p["lease"] and p["lease"]["valid"] for p in doc["pools"]):
        hint = 'yoyoctl ask "hello"   (or: yoyoctl submit --count 3)'
    ctx.out(doc, "\n".join(lines), hint)
    return 0


# --- kill switch ---------------------------------------------------------------------


def _write_kill(ctx: Ctx, kill: KillSwitch) -> None:
    ctx.store.transact(lambda tx: tx.save_kill(kill))


def cmd_kill(ctx: Ctx) -> int:
    reason = ctx.args.reason
    ctx.confirm(f"Engage the kill switch (every VM stops, none starts) because {reason!r}?")
    by = _by()
    if ctx.args.direct:
        _write_kill(ctx, KillSwitch(True, reason, by, time.time()))
        doc: dict[str, Any] = {"engaged": True, "reason": reason, "by": by, "via": "store"}
        text = f"kill switch engaged in the store ({names.KILL_SWITCH_PATH}); VMs are stopping"
    else:
        mid = ctx.publish(names.TOPIC_CONTROL, {"command": "kill", "reason": reason, "by": by})
        doc = {"engaged": True, "reason": reason, "by": by, "via": "control", "message_id": mid}
        text = f"kill command published (message {mid}); VMs are stopping"
    ctx.out(doc, text, "yoyoctl status   (lift it later with: yoyoctl unkill --yes)")
    return 0


def cmd_unkill(ctx: Ctx) -> int:
    ctx.confirm("Lift the kill switch (VMs may start again)?")
    by = _by()
    if ctx.args.direct:
        _write_kill(ctx, KillSwitch(False, f"lifted by {by}", by, time.time()))
        doc: dict[str, Any] = {"engaged": False, "by": by, "via": "store"}
        text = "kill switch lifted in the store"
    else:
        mid = ctx.publish(names.TOPIC_CONTROL, {"command": "unkill", "by": by})
        doc = {"engaged": False, "by": by, "via": "control", "message_id": mid}
        text = f"unkill command published (message {mid})"
    ctx.out(doc, text, "yoyoctl status")
    return 0


# --- lease commands ------------------------------------------------------------------


def _refuse_under_kill(ctx: Ctx, what: str) -> None:
    """One clear line instead of a request the control plane will deny."""
    kill = ctx.store.get_kill()
    if kill.engaged:
        raise CliError(
            f"the kill switch is engaged, so {what} ({describe(kill)}); "
            "lift it with: yoyoctl unkill --yes"
        )


def cmd_start(ctx: Ctx) -> int:
    pool = ctx.pool()
    _refuse_under_kill(ctx, "no lease will be granted")
    doc: dict[str, Any] = {"command": "start", "pool": pool, "by": _by()}
    if ctx.args.duration is not None:
        doc["for"] = _window(ctx.args.duration)
    if ctx.args.reason:
        doc["reason"] = ctx.args.reason
    mid = ctx.publish(names.TOPIC_CONTROL, doc)
    ctx.out(
        {**doc, "message_id": mid},
        f"start requested for pool {pool} (message {mid}); the control plane grants the lease "
        "unless a cap pauses the pool",
        f"yoyoctl status --pool {pool}",
    )
    return 0


def cmd_stop(ctx: Ctx) -> int:
    pool = ctx.pool()
    ctx.confirm(f"Release pool {pool}'s lease (its VMs stop)?")
    doc: dict[str, Any] = {"command": "stop", "pool": pool, "by": _by()}
    if ctx.args.reason:
        doc["reason"] = ctx.args.reason
    mid = ctx.publish(names.TOPIC_CONTROL, doc)
    ctx.out(
        {**doc, "message_id": mid},
        f"stop requested for pool {pool} (message {mid})",
        f"yoyoctl status --pool {pool}",
    )
    return 0


def cmd_extend(ctx: Ctx) -> int:
    pool = ctx.pool()
    doc: dict[str, Any] = {"command": "extend", "pool": pool, "by": _by()}
    if ctx.args.duration is not None:
        doc["for"] = _window(ctx.args.duration)
    mid = ctx.publish(names.TOPIC_CONTROL, doc)
    ctx.out(
        {**doc, "message_id": mid},
        f"extend requested for pool {pool} (message {mid})",
        f"yoyoctl status --pool {pool}",
    )
    return 0


# --- events --------------------------------------------------------------------------


def _event_line(e: Any) -> str:
    where = f" [{e.pool}]" if e.pool else ""
    return f"{_clock(e.at)[11:19]} {e.kind:<8}{where} {e.reason}"


def _event_doc(e: Any) -> dict[str, Any]:
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

    def shown(e: Any) -> bool:
        return bool(ctx.args.all) or not (e.kind == "fact" and e.reason == "Tick")

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
        print(json.dumps(_event_doc(e), default=str) if ctx.json else _event_line(e), flush=True)
    try:
        while True:
            time.sleep(ctx.args.interval)
            for e in ctx.store.events(pool=pool, since=since, limit=500):
                if e.id in seen or not shown(e):
                    continue
                seen.add(e.id)
                since = max(since, e.at - 1)
                print(
                    json.dumps(_event_doc(e), default=str) if ctx.json else _event_line(e),
                    flush=True,
                )
    except KeyboardInterrupt:
        return 0


# --- work and requests ---------------------------------------------------------------


def cmd_submit(ctx: Ctx) -> int:
    pool = ctx.pool()
    count = ctx.args.count
    ids = [
        ctx.publish(
            names.TOPIC_WORK,
            {"prompt": f"{ctx.args.prompt} #{i + 1}", "max_tokens": ctx.args.max_tokens},
            pool=pool,
        )
        for i in range(count)
    ]
    depth_id = ctx.publish(names.TOPIC_QUEUE, {"pool": pool, "depth": count})
    ctx.out(
        {"pool": pool, "work_message_ids": ids, "queue_message_id": depth_id, "depth": count},
        f"{count} work item(s) queued on {ctx.config.topic(names.TOPIC_WORK)} for pool {pool}; "
        f"queue depth {count} published (message {depth_id})",
        f"yoyoctl status --pool {pool}   (or watch: yoyoctl events --follow)",
    )
    return 0


def _ready(ctx: Ctx, pool: str) -> list[str]:
    if ctx.args.url:
        from . import jsonhttp as http

        try:
            status, _ = http.get(f"{ctx.args.url.rstrip('/')}/health", timeout=2.0)
        except OSError:
            return []
        return [ctx.args.url.rstrip("/")] if status == 200 else []
    if ctx.config.backend != "local":
        raise CliError("on Google Cloud pass --url http://VM_ADDRESS:8000 (reachable from here)")
    from .local.compute import ready_endpoints

    return ready_endpoints(ctx.config, pool)


def cmd_ask(ctx: Ctx) -> int:
    from . import jsonhttp as http

    pool = ctx.pool()
    started = time.monotonic()
    endpoints = _ready(ctx, pool)
    woke = not endpoints
    if woke:
        _refuse_under_kill(ctx, "no VM will start")
        ctx.publish(
            names.TOPIC_CONTROL,
            {"command": "start", "pool": pool, "by": _by(), "reason": "wake on request (ask)"},
        )
        if not ctx.json:
            print(f"pool {pool} is scaled to zero: waking it (cold start)...", flush=True)
        deadline = started + ctx.args.timeout
        while not endpoints:
            if time.monotonic() > deadline:
                raise CliError(
                    f"no VM of pool {pool} became ready within {ctx.args.timeout:.0f}s; "
                    f"see: yoyoctl status --pool {pool}"
                )
            time.sleep(0.2)
            endpoints = _ready(ctx, pool)
            if not endpoints and ctx.store.get_kill().engaged:
                raise CliError("the kill switch was engaged while waking; see: yoyoctl status")
    waited = time.monotonic() - started
    base = endpoints[0]
    body = {"prompt": ctx.args.prompt, "max_tokens": ctx.args.max_tokens}
    headers = _vm_headers(ctx)
    _, models = http.post_json(
        f"{base}/v1/completions",
        {**body, "model": _model(base, headers)},
        timeout=ctx.args.timeout,
        headers=headers,
    )
    if not isinstance(models, dict) or "choices" not in models:
        raise CliError(f"the inference server at {base} answered: {models}")
    answer = models["choices"][0]["text"].strip()
    total = time.monotonic() - started
    doc = {
        "pool": pool,
        "endpoint": base,
        "answer": answer,
        "cold_start": woke,
        "cold_start_wait_s": round(waited, 3) if woke else 0.0,
        "total_s": round(total, 3),
        "usage": models.get("usage"),
    }
    text = (
        f"{answer}\n\n"
        + (f"cold start: waited {waited:.1f}s for a VM" if woke else "warm: a VM was already up")
        + f"; total {total:.1f}s"
    )
    ctx.out(doc, text, f"yoyoctl status --pool {pool}")
    return 0


def _model(base: str, headers: dict[str, str]) -> str:
    from . import jsonhttp as http

    try:
        status, raw = http.get(f"{base}/v1/models", headers=headers)
        return str(json.loads(raw)["data"][0]["id"]) if status == 200 else ""
    except (OSError, ValueError, KeyError, IndexError):
        return ""


# --- schedule and cycle --------------------------------------------------------------


def _scheduler_client() -> Any:
    from google.cloud import scheduler_v1

    return scheduler_v1.CloudSchedulerClient()


def cmd_schedule(ctx: Ctx) -> int:
    config, now = ctx.config, time.time()
    jobs: list[dict[str, Any]] = []
    if config.backend == "gcp":
        parent = f"projects/{config.project}/locations/{config.region}"
        prefix = f"{config.topic_prefix}-"
        for job in _scheduler_client().list_jobs(parent=parent):
            short = job.name.rsplit("/", 1)[-1]
            if not short.startswith(prefix):
                continue
            jobs.append(
                {
                    "job": short,
                    "schedule": job.schedule,
                    "time_zone": job.time_zone,
                    "state": job.state.name,
                    "next": job.schedule_time.timestamp() if job.schedule_time else None,
                    "last_attempt": (
                        job.last_attempt_time.timestamp() if job.last_attempt_time else None
                    ),
                }
            )
    else:
        from .local.scheduler import jobs as local_jobs

        for job in local_jobs(config):
            schedule = f"every {config.local.tick_interval_s:g}s"
            zone = "Etc/UTC"
            if job.name.startswith("cycle-"):
                cycle = config.cycles[job.name[len("cycle-") :]]
                schedule, zone = cycle.cron, cycle.time_zone
            elif config.local.tick_interval_s <= 0:
                schedule = config.tick_cron
            jobs.append(
                {
                    "job": job.name,
                    "schedule": schedule,
                    "time_zone": zone,
                    "state": "ENABLED",
                    "next": job.next_at(now),
                    "last_attempt": None,
                }
            )
    text = (
        "\n".join(
            f"{j['job']:<20} {j['schedule']:<16} {j['time_zone']:<12} next {_clock(j['next'])} "
            f"({_rel(now, j['next'])})"
            for j in jobs
        )
        or "no scheduler jobs found"
    )
    pool = next(iter(config.pools))
    ctx.out({"jobs": jobs}, text, f"yoyoctl cycle --now --pool {pool}")
    return 0


def cmd_cycle(ctx: Ctx) -> int:
    if not ctx.args.now:
        raise CliError("cycle runs a pool's scheduled cycle now: add --now")
    pool = ctx.pool()
    config = ctx.config
    if config.backend == "gcp":
        name = (
            f"projects/{config.project}/locations/{config.region}/jobs/"
            f"{config.topic_prefix}-cycle-{pool}"
        )
        _scheduler_client().run_job(name=name)
        doc: dict[str, Any] = {"pool": pool, "job": name}
        text = f"ran Cloud Scheduler job {name}"
    else:
        window = config.cycles[pool].window_s if pool in config.cycles else 1800.0
        payload = {"pool": pool, "window": _window(window)}
        mid = ctx.publish(names.TOPIC_CYCLE, payload)
        doc = {**payload, "message_id": mid}
        text = f"cycle published for pool {pool} ({_window(window)} window, message {mid})"
    ctx.out(doc, text, f"yoyoctl status --pool {pool}")
    return 0


# --- money and the simulator ---------------------------------------------------------


def cmd_cost(ctx: Ctx) -> int:
    from .sim import cost_report

    report = cost_report(ctx.store, ctx.config, time.time())
    lines = []
    for name, pool in report["pools"].items():
        caps = f"caps day {_money(pool['daily_cap_usd'])} / month {_money(pool['monthly_cap_usd'])}"
        paused = f"; PAUSED: {pool['paused']}" if pool["paused"] else ""
        lines.append(
            f"pool {name}: today ${pool['day_usd']:.2f}, month ${pool['month_usd']:.2f}, "
            f"run rate ${pool['run_rate_usd_per_hour']:.2f}/h, projected month "
            f"${pool['projected_month_usd']:.2f}; {caps}{paused}"
        )
    total = report["total"]
    lines.append(
        f"total: today ${total['day_usd']:.2f}, month ${total['month_usd']:.2f}, projected "
        f"month ${total['projected_month_usd']:.2f}; caps day {_money(total['daily_cap_usd'])}"
        f" / month {_money(total['monthly_cap_usd'])}"
        + (f"; PAUSED: {total['paused']}" if total["paused"] else "")
    )
    kill = report["kill_switch"]
    if kill["engaged"]:
        lines.append(banner(from_doc(KillSwitch, kill)))
    ctx.out(report, "\n".join(lines), "yoyoctl status")
    return 0


def _money(value: float | None) -> str:
    return "none" if value is None else f"${value:.2f}"


# --- gateway -------------------------------------------------------------------------


def cmd_gateway_key(ctx: Ctx) -> int:
    from .gateway import auth

    if ctx.config.backend != "local":
        raise CliError(
            "on Google Cloud the gateway's keys are digests in Secret Manager "
            "(docs/deploy.md, 'The gateway'); the key itself is whatever you generated"
        )
    key = auth.ensure_local_key(ctx.config.local.state_dir)
    url = f"http://{ctx.config.local.host}:{ctx.config.local.port}/v1"
    ctx.out({"key": key, "base_url": url}, key)
    return 0


def _vm_headers(ctx: Ctx) -> dict[str, str]:
    """The local VMs' inference key (vLLM --api-key), when the local stack made one."""
    from .gateway import auth

    path = Path(ctx.config.local.state_dir) / auth.VLLM_KEY_FILE
    if ctx.config.backend != "local" or not path.exists():
        return {}
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


# --- local stack ---------------------------------------------------------------------


def cmd_local_up(ctx: Ctx) -> int:
    from .local.stack import up

    if ctx.config.backend != "local":
        raise CliError("local up runs the embedded stack: the configuration's backend is gcp")
    return up(emulators=ctx.args.emulators, config=ctx.config)


def cmd_local_refuse_zone(ctx: Ctx) -> int:
    """Make the local "Compute Engine" refuse starts in a zone for capacity (or stop)."""
    from .local.compute import InstanceTable

    if ctx.config.backend != "local":
        raise CliError("local refuse-zone acts on the embedded stack: the backend is gcp")
    table = InstanceTable(Path(ctx.config.local.state_dir) / "compute.sqlite3")
    zone = ctx.args.zone
    if ctx.args.lift:
        table.accept_zone(zone)
        text = f"zone {zone} accepts starts again"
    else:
        table.refuse_zone(zone, ctx.args.code)
        text = f"zone {zone} refuses every start with {ctx.args.code}"
    ctx.out({"refusing": table.refusing()}, text, "yoyoctl status")
    return 0


# --- the parser ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--debug", action="store_true", help="tracebacks on errors")
    common.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    pool = argparse.ArgumentParser(add_help=False)
    pool.add_argument("--pool", help="the pool (default: the only configured one)")

    parser = argparse.ArgumentParser(
        prog="yoyoctl", description="Operate the Yo-Yo control plane.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[Ctx], int], help: str, *parents: Any) -> Any:
        p = sub.add_parser(name, help=help, parents=[common, *parents])
        p.set_defaults(fn=fn)
        return p

    add("status", cmd_status, "pools, leases, VMs, kill switch, spend, decisions", pool)
    p = add("kill", cmd_kill, "engage the kill switch (every VM stops)")
    p.add_argument("--reason", required=True)
    p.add_argument("--direct", action="store_true", help="write the switch in the store")
    p = add("unkill", cmd_unkill, "lift the kill switch")
    p.add_argument("--direct", action="store_true", help="write the switch in the store")
    p = add("start", cmd_start, "grant a pool a lease now", pool)
    p.add_argument("--for", dest="duration", type=_duration_arg, help="e.g. 30m")
    p.add_argument("--reason")
    p = add("stop", cmd_stop, "release a pool's lease (its VMs stop)", pool)
    p.add_argument("--reason")
    p = add("extend", cmd_extend, "extend a pool's lease", pool)
    p.add_argument("--for", dest="duration", type=_duration_arg, help="e.g. 30m")
    p = add("events", cmd_events, "the event log (facts, decisions, actions)", pool)
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--all", action="store_true", help="also the ticks")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p = add("submit", cmd_submit, "queue work for a pool (the queue-threshold path)", pool)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--prompt", default="summarise this document")
    p.add_argument("--max-tokens", type=int, default=16)
    p = add("ask", cmd_ask, "send one request, waking the pool if needed", pool)
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--url", help="the inference server (on Google Cloud)")
    add("schedule", cmd_schedule, "next cycle and tick times")
    p = add("cycle", cmd_cycle, "run a pool's cycle now", pool)
    p.add_argument("--now", action="store_true", required=True)
    add("cost", cmd_cost, "spend today and this month, caps, projected month-end spend")
    from .batch.cli import register as register_batch

    register_batch(sub, common, pool)
    # `yoyoctl simulate ARGS` is handed to the simulator's own parser by main().
    sub.add_parser("simulate", help="replay a derived trace on the real decide() (--help)")
    gateway = sub.add_parser("gateway", help="the OpenAI-compatible gateway", parents=[common])
    gateway_sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    p = gateway_sub.add_parser("key", help="print the local stack's API key", parents=[common])
    p.set_defaults(fn=cmd_gateway_key)
    local = sub.add_parser("local", help="the local stack", parents=[common])
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    p = local_sub.add_parser("up", help="run everything on this machine", parents=[common])
    p.add_argument(
        "--emulators",
        action="store_true",
        help="Firestore and Pub/Sub emulators instead of SQLite and the local bus",
    )
    p.set_defaults(fn=cmd_local_up)
    p = local_sub.add_parser(
        "refuse-zone", help="local VMs in ZONE are refused for capacity", parents=[common]
    )
    p.add_argument("zone")
    p.add_argument("--code", default="ZONE_RESOURCE_POOL_EXHAUSTED")
    p.add_argument("--lift", action="store_true", help="accept starts in the zone again")
    p.set_defaults(fn=cmd_local_refuse_zone)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["simulate"]:
        from .sim import simulate_main

        return simulate_main(words[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(Ctx(args)))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        known = (YoyoError, OSError, ValueError)
        what = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        print(f"error: {what}", file=sys.stderr)
        if not isinstance(exc, known):
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
