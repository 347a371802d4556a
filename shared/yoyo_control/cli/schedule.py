"""``yoyoctl schedule`` and ``yoyoctl cycle --now``: the scheduler's jobs (the Scheduler
port: Cloud Scheduler, or the local stack's own), and a pool's cycle run now.

Invariant: a cycle run now is the one its schedule would make (the job forced, or its
message published with the pool's cycle window).
"""

from __future__ import annotations

import time
from typing import Any

from ..domain.timetext import relative, stamp
from .context import CliError, Commands, Ctx


def cmd_schedule(ctx: Ctx) -> int:
    now = time.time()
    jobs: list[dict[str, Any]] = [
        {
            "job": job.job,
            "schedule": job.schedule,
            "time_zone": job.time_zone,
            "state": job.state,
            "next": job.next_at,
            "last_attempt": job.last_attempt_at,
        }
        for job in ctx.scheduler().list_jobs(now)
    ]
    text = (
        "\n".join(
            f"{j['job']:<20} {j['schedule']:<16} {j['time_zone']:<12} next {stamp(j['next'])} "
            f"({relative(now, j['next'])})"
            for j in jobs
        )
        or "no scheduler jobs found"
    )
    pool = next(iter(ctx.config.pools))
    ctx.out({"jobs": jobs}, text, f"yoyoctl cycle --now --pool {pool}")
    return 0


def cmd_cycle(ctx: Ctx) -> int:
    if not ctx.args.now:
        raise CliError("cycle runs a pool's scheduled cycle now: add --now")
    pool = ctx.pool()
    run = ctx.scheduler().run_cycle(pool)
    doc: dict[str, Any]
    if run.message_id:
        doc = {"pool": pool, "window": run.window, "message_id": run.message_id}
        text = f"cycle published for pool {pool} ({run.window} window, message {run.message_id})"
    else:
        doc = {"pool": pool, "job": run.job}
        text = f"ran Cloud Scheduler job {run.job}"
    ctx.out(doc, text, f"yoyoctl status --pool {pool}")
    return 0


def register(commands: Commands) -> None:
    commands.add("schedule", cmd_schedule, "next cycle and tick times")
    p = commands.add("cycle", cmd_cycle, "run a pool's cycle now", pool=True)
    p.add_argument("--now", action="store_true", required=True)
