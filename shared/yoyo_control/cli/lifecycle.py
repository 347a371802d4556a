"""``yoyoctl start``, ``stop`` and ``extend``: a pool's lease, asked for on the control topic.

Invariants: each publishes one control message (docs/messages.md) naming the pool and the
operator; ``start`` refuses at once while the kill switch is engaged, ``stop`` asks for
confirmation unless ``--yes``.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..messages import duration_text
from .context import Commands, Ctx, by, duration_arg


def _request(ctx: Ctx, pool: str, command: str, then: str = "") -> int:
    """Publish ``command`` for ``pool`` with the command's ``--for`` and ``--reason``."""
    doc: dict[str, Any] = {"command": command, "pool": pool, "by": by()}
    if getattr(ctx.args, "duration", None) is not None:
        doc["for"] = duration_text(ctx.args.duration)
    if getattr(ctx.args, "reason", None):
        doc["reason"] = ctx.args.reason
    mid = ctx.publish(names.TOPIC_CONTROL, doc)
    ctx.out(
        {**doc, "message_id": mid},
        f"{command} requested for pool {pool} (message {mid}){then}",
        f"yoyoctl status --pool {pool}",
    )
    return 0


def cmd_start(ctx: Ctx) -> int:
    pool = ctx.pool()
    ctx.refuse_under_kill("no lease will be granted")
    then = "; the control plane grants the lease unless a cap pauses the pool"
    return _request(ctx, pool, "start", then)


def cmd_stop(ctx: Ctx) -> int:
    pool = ctx.pool()
    ctx.confirm(f"Release pool {pool}'s lease (its VMs stop)?")
    return _request(ctx, pool, "stop")


def cmd_extend(ctx: Ctx) -> int:
    return _request(ctx, ctx.pool(), "extend")


def register(commands: Commands) -> None:
    p = commands.add("start", cmd_start, "grant a pool a lease now", pool=True)
    p.add_argument("--for", dest="duration", type=duration_arg, help="e.g. 30m")
    p.add_argument("--reason")
    p = commands.add("stop", cmd_stop, "release a pool's lease (its VMs stop)", pool=True)
    p.add_argument("--reason")
    p = commands.add("extend", cmd_extend, "extend a pool's lease", pool=True)
    p.add_argument("--for", dest="duration", type=duration_arg, help="e.g. 30m")
