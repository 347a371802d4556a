"""``yoyoctl local …`` and ``yoyoctl gateway key``: the local stack, run and acted on
directly (bootstrap.local_operator; on Google Cloud each says why it does not apply).
"""

from __future__ import annotations

from .context import Commands, Ctx


def cmd_local_up(ctx: Ctx) -> int:
    local = ctx.local_stack("local up runs the embedded stack: the configuration's backend is gcp")
    return local.up(emulators=ctx.args.emulators)


def cmd_local_refuse_zone(ctx: Ctx) -> int:
    """Make the local "Compute Engine" refuse starts in a zone for capacity (or stop)."""
    local = ctx.local_stack("local refuse-zone acts on the embedded stack: the backend is gcp")
    table = local.table()
    zone = ctx.args.zone
    if ctx.args.lift:
        table.accept_zone(zone)
        text = f"zone {zone} accepts starts again"
    else:
        table.refuse_zone(zone, ctx.args.code)
        text = f"zone {zone} refuses every start with {ctx.args.code}"
    ctx.out({"refusing": table.refusing()}, text, "yoyoctl status")
    return 0


def cmd_gateway_key(ctx: Ctx) -> int:
    local = ctx.local_stack(
        "on Google Cloud the gateway's keys are digests in Secret Manager "
        "(docs/deploy.md, 'The gateway'); the key itself is whatever you generated"
    )
    key, url = local.gateway_key()
    ctx.out({"key": key, "base_url": url}, key)
    return 0


def register_gateway(commands: Commands) -> None:
    gateway = commands.group("gateway", "the OpenAI-compatible gateway")
    gateway.add("key", cmd_gateway_key, "print the local stack's API key")


def register_local(commands: Commands) -> None:
    local = commands.group("local", "the local stack")
    p = local.add("up", cmd_local_up, "run everything on this machine")
    p.add_argument(
        "--emulators",
        action="store_true",
        help="Firestore and Pub/Sub emulators instead of SQLite and the local bus",
    )
    p.set_defaults(find_stack=False)  # it is the stack
    p = local.add(
        "refuse-zone", cmd_local_refuse_zone, "local VMs in ZONE are refused for capacity"
    )
    p.add_argument("zone")
    p.add_argument("--code", default="ZONE_RESOURCE_POOL_EXHAUSTED")
    p.add_argument("--lift", action="store_true", help="accept starts in the zone again")
