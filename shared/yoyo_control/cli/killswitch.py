"""``yoyoctl kill`` and ``yoyoctl unkill``: the kill switch, through the control topic or
(``--direct``) written in the store as an operator flipping it in the console would.

Invariants: both ask for confirmation unless ``--yes``; the switch's author is the
operator (``user@yoyoctl``).
"""

from __future__ import annotations

import time
from typing import Any

from .. import names
from ..domain.model import KillSwitch
from .context import Commands, Ctx, by


def _write(ctx: Ctx, kill: KillSwitch) -> None:
    ctx.store.transact(lambda tx: tx.save_kill(kill))


def cmd_kill(ctx: Ctx) -> int:
    reason = ctx.args.reason
    ctx.confirm(f"Engage the kill switch (every VM stops, none starts) because {reason!r}?")
    who = by()
    if ctx.args.direct:
        _write(ctx, KillSwitch(True, reason, who, time.time()))
        doc: dict[str, Any] = {"engaged": True, "reason": reason, "by": who, "via": "store"}
        text = f"kill switch engaged in the store ({names.KILL_SWITCH_PATH}); VMs are stopping"
    else:
        mid = ctx.publish(names.TOPIC_CONTROL, {"command": "kill", "reason": reason, "by": who})
        doc = {"engaged": True, "reason": reason, "by": who, "via": "control", "message_id": mid}
        text = f"kill command published (message {mid}); VMs are stopping"
    ctx.out(doc, text, "yoyoctl status   (lift it later with: yoyoctl unkill --yes)")
    return 0


def cmd_unkill(ctx: Ctx) -> int:
    ctx.confirm("Lift the kill switch (VMs may start again)?")
    who = by()
    if ctx.args.direct:
        _write(ctx, KillSwitch(False, f"lifted by {who}", who, time.time()))
        doc: dict[str, Any] = {"engaged": False, "by": who, "via": "store"}
        text = "kill switch lifted in the store"
    else:
        mid = ctx.publish(names.TOPIC_CONTROL, {"command": "unkill", "by": who})
        doc = {"engaged": False, "by": who, "via": "control", "message_id": mid}
        text = f"unkill command published (message {mid})"
    ctx.out(doc, text, "yoyoctl status")
    return 0


def register(commands: Commands) -> None:
    p = commands.add("kill", cmd_kill, "engage the kill switch (every VM stops)")
    p.add_argument("--reason", required=True)
    p.add_argument("--direct", action="store_true", help="write the switch in the store")
    p = commands.add("unkill", cmd_unkill, "lift the kill switch")
    p.add_argument("--direct", action="store_true", help="write the switch in the store")
