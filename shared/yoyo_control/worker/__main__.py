"""``python -m yoyo_control.worker --config FILE``: the yoyo-worker unit's entry point.

The worker is composed by the VM's root (machine.py); this reads the configuration,
builds it there, and runs it until SIGTERM/SIGINT (which stop pulling and hand running
shards back). A configuration error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from .. import logs
from .config import WorkerConfig, load_config
from .loop import Worker

__all__ = ["Worker", "WorkerConfig", "build", "load_config", "main"]


def build(config: WorkerConfig) -> Worker:
    from ..machine import build_worker

    return build_worker(config)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m yoyo_control.worker")
    parser.add_argument("--config", required=True, help="the worker's JSON configuration")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"yoyo-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    worker = build(config)

    def shutdown(*_: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    logs.info(f"worker: pulling {config.subscription} for {config.server_url}")
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
