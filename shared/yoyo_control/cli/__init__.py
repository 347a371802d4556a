"""``yoyoctl``: operate the control plane, local or on Google Cloud, from one configuration.

The configuration comes from YOYO_CONFIG / YOYO_CONFIG_FILE / the embedded default, and
bootstrap builds the Store, the Publisher and the Scheduler from it, so the same commands
drive the local stack (``yoyoctl local up``) and a cloud deployment. Commands publish
control messages (docs/messages.md) exactly as ``gcloud pubsub topics publish`` would;
``--direct`` writes the kill switch document like an operator flipping it in the console.

The operator's composition root: ``context`` (``Ctx``: the configuration and the adapters,
built by bootstrap's builders; the local stack's operator from laptop.py).
Commands by area: ``status`` (status, events), ``killswitch`` (kill, unkill),
``lifecycle`` (start, stop, extend), ``work`` (ask, through the gateway), ``schedule``
(schedule, cycle), ``cost``, ``batch``, ``local`` (local up, local refuse-zone, gateway
key); ``simulate`` is the simulator's own parser (sim/cli.py); ``__main__`` is
``python -m yoyo_control.cli``.

Invariants (STYLE.md): every command takes ``--json``; an error is one line on stderr and
exit code 1 (a traceback only with ``--debug``), a usage error exit code 2; destructive
commands (kill, unkill, stop) ask for confirmation unless ``--yes``; after each action the
exact next command to run is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import YoyoError
from . import batch, cost, killswitch, lifecycle, local, schedule, status, work
from .context import CliError, Commands, Ctx

__all__ = ["CliError", "main"]


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
    commands = Commands(sub, common, pool)
    status.register_status(commands)
    killswitch.register(commands)
    lifecycle.register(commands)
    status.register_events(commands)
    work.register(commands)
    schedule.register(commands)
    cost.register(commands)
    batch.register(commands)
    # `yoyoctl simulate ARGS` is handed to the simulator's own parser by main().
    sub.add_parser("simulate", help="replay a derived trace on the real decide() (--help)")
    local.register_gateway(commands)
    local.register_local(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["simulate"]:
        from ..sim import simulate_main

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
