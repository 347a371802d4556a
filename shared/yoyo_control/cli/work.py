"""``yoyoctl submit`` and ``yoyoctl ask``: work for a pool, queued or answered now.

Invariants: ``submit`` publishes the work items, then the queue depth that makes the
control plane wake the pool; ``ask`` wakes a scaled-to-zero pool (one start message),
waits at most ``--timeout`` for a ready VM, stops waiting the moment the kill switch is
engaged, and sends one completion request.
"""

from __future__ import annotations

import json
import time

from .. import jsonhttp as http
from .. import names
from .context import CliError, Commands, Ctx, by


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
    """The pool's VMs answering now: ``--url``, else the local stack's ready VMs."""
    if ctx.args.url:
        try:
            status, _ = http.get(f"{ctx.args.url.rstrip('/')}/health", timeout=2.0)
        except OSError:
            return []
        return [ctx.args.url.rstrip("/")] if status == 200 else []
    local = ctx.local_stack(
        "on Google Cloud pass --url http://VM_ADDRESS:8000 (reachable from here)"
    )
    return local.ready_endpoints(pool)


def cmd_ask(ctx: Ctx) -> int:
    pool = ctx.pool()
    started = time.monotonic()
    endpoints = _ready(ctx, pool)
    woke = not endpoints
    if woke:
        ctx.refuse_under_kill("no VM will start")
        ctx.publish(
            names.TOPIC_CONTROL,
            {"command": "start", "pool": pool, "by": by(), "reason": "wake on request (ask)"},
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
    headers = ctx.local.vm_headers() if ctx.local else {}
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
    """The model the server serves (its first), or "" when it does not say."""
    try:
        status, raw = http.get(f"{base}/v1/models", headers=headers)
        return str(json.loads(raw)["data"][0]["id"]) if status == 200 else ""
    except (OSError, ValueError, KeyError, IndexError):
        return ""


def register(commands: Commands) -> None:
    p = commands.add("submit", cmd_submit, "queue work for a pool (the queue-threshold path)", True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--prompt", default="summarise this document")
    p.add_argument("--max-tokens", type=int, default=16)
    p = commands.add("ask", cmd_ask, "send one request, waking the pool if needed", True)
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--url", help="the inference server (on Google Cloud)")
