"""``yoyoctl ask``: one request through the gateway, as any OpenAI client sends it.

The request goes to the gateway's ``/v1/completions`` with a gateway key: the local
stack's (``yoyoctl gateway key``), or on Google Cloud ``--url`` and ``OPENAI_API_KEY``
(only with ``--url``: an ``OPENAI_BASE_URL`` set for other tools is never followed).
The gateway does the rest, as for every application: it wakes a
scaled-to-zero pool (one wake, through the lease), holds the request through the cold
start, and refuses at once, with the reason, under the kill switch or a spend cap.

Invariants: there is one way to ask (the gateway's); this command never wakes a pool
itself; it waits at most ``--timeout``; a refusal is one line (the gateway's reason);
``cold_start`` is what the gateway says it held the request for (``X-Yoyo-Cold-Start``).
"""

from __future__ import annotations

import json
import os
import time

from .. import jsonhttp as http
from .context import CliError, Commands, Ctx

COLD_START_HEADER = "x-yoyo-cold-start"  # seconds the gateway held the request


def _gateway(ctx: Ctx) -> tuple[str, str]:
    """The gateway's base URL (``…/v1``) and a key to call it with."""
    url = ctx.args.url or ""
    if url:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise CliError("set OPENAI_API_KEY to a gateway key (docs/deploy.md, 'The gateway')")
        return url.rstrip("/"), key
    local = ctx.local_stack(
        "on Google Cloud pass --url https://GATEWAY/v1 and set OPENAI_API_KEY to a gateway key"
    )
    key, base = local.gateway_key()
    return base, key


def _error(doc: object) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return str(doc["error"].get("message", doc["error"]))
    return str(doc)[:200]


def cmd_ask(ctx: Ctx) -> int:
    pool = ctx.pool()
    model = ctx.config.policy(pool).model or pool  # the model names the pool (gateway)
    base, key = _gateway(ctx)
    body = {"model": model, "prompt": ctx.args.prompt, "max_tokens": ctx.args.max_tokens}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.monotonic()
    status, answer_headers, raw = http.exchange(
        "POST", f"{base}/completions", json.dumps(body).encode(), headers, ctx.args.timeout
    )
    total = time.monotonic() - started
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = raw.decode("utf-8", "replace")
    if status != 200:
        raise CliError(f"the gateway answered {status}: {_error(doc)}")
    if not isinstance(doc, dict) or not doc.get("choices"):
        raise CliError(f"the gateway at {base} answered: {str(doc)[:200]}")
    answer = str(doc["choices"][0].get("text", "")).strip()
    held = answer_headers.get(COLD_START_HEADER)
    try:
        waited = float(held) if held is not None else 0.0
    except ValueError:
        waited = 0.0
    cold = held is not None
    out = {
        "pool": pool,
        "endpoint": base,
        "answer": answer,
        "cold_start": cold,
        "cold_start_wait_s": round(waited, 3),
        "total_s": round(total, 3),
        "usage": doc.get("usage"),
    }
    text = (
        f"{answer}\n\n"
        + (f"cold start: the gateway held it {waited:.1f}s" if cold else "warm: a VM was up")
        + f"; total {total:.1f}s"
    )
    ctx.out(out, text, f"yoyoctl status --pool {pool}")
    return 0


def register(commands: Commands) -> None:
    p = commands.add("ask", cmd_ask, "send one request through the gateway (wakes the pool)", True)
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument(
        "--timeout", type=float, default=660.0, help="seconds (the gateway holds ≤ hold_s)"
    )
    p.add_argument("--url", help="the gateway's base URL, https://…/v1 (Google Cloud)")
