"""``python -m yoyo_control.agent --config FILE``: the agent unit's entry point (the agent is
composed by the VM's root, machine.py).

Invariants: the agent reads the store only (kill switch, its pool's lease) and publishes
only heartbeats; SIGTERM/SIGINT end it cleanly; a configuration error is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .. import logs
from ..errors import ConfigError
from . import preemption
from .config import AgentConfig, load_agent_config
from .loop import Agent


def build(config: AgentConfig) -> Agent:
    from ..machine import build_agent

    return build_agent(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yoyo_control.agent")
    parser.add_argument("--config", required=True, help="the agent's JSON configuration")
    args = parser.parse_args(argv)
    try:
        config = load_agent_config(args.config)
        agent = build(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    preemption.start(config.metadata_url, agent.preempted, stop)
    logs.info(
        f"agent: started (heartbeat every {config.heartbeat_interval_s:g}s, idle backstop "
        f"{config.idle_shutdown_s:g}s, dead-man grace {config.deadman_grace_s:g}s)",
        pool=config.pool,
        instance=config.instance,
    )
    agent.run(stop, min(config.poll_s, config.heartbeat_interval_s))
    logs.info("agent: stopped", pool=config.pool, instance=config.instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
