"""``python -m yoyo_control.agent --config FILE``: the agent's own composition root.

Invariants: the agent reads the store only (kill switch, its pool's lease) and publishes
only heartbeats; SIGTERM/SIGINT end it cleanly; a configuration error is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .. import logs
from ..errors import ConfigError
from ..ports import Clock, Publisher, Store
from . import identity, metrics, preemption
from .config import AgentConfig, load_agent_config
from .loop import Agent, run_command
from .policy import Settings


def _boot_id(config: AgentConfig) -> str:
    if config.boot_id:
        return config.boot_id
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _store(config: AgentConfig) -> Store:
    if config.sqlite_path:
        from ..adapters.sqlite_store import SqliteStore

        return SqliteStore(config.sqlite_path)
    from ..adapters.firestore_store import FirestoreStore

    return FirestoreStore(project=config.project, database=config.firestore_database)


def _publisher(config: AgentConfig) -> Publisher:
    if config.pubsub_url:
        from ..local import guard
        from ..local.bus import LocalBusPublisher

        secret = guard.read_secret_file(config.bus_secret_file) if config.bus_secret_file else ""
        return LocalBusPublisher(config.pubsub_url, config.project, secret=secret)
    from ..adapters.pubsub import PubSubPublisher

    return PubSubPublisher(project=config.project)


def _identity(config: AgentConfig, clock: Clock) -> Callable[[], str] | None:
    """Where the heartbeats' identity token comes from (None: nowhere, beats are refused)."""
    if config.identity_key_file:
        fetch = identity.from_local_key(
            config.identity_key_file,
            config.heartbeat_audience,
            config.project,
            config.zone,
            config.instance,
            clock,
        )
    elif config.metadata_url:
        fetch = identity.from_metadata(
            config.metadata_url, config.heartbeat_audience, config.read_deadline()
        )
    else:
        return None
    return identity.CachedToken(fetch, clock)


def build(config: AgentConfig) -> Agent:
    from ..adapters.clock import MonotonicClock

    clock = MonotonicClock()

    settings = Settings(
        pool=config.pool,
        instance=config.instance,
        boot_id=_boot_id(config),
        heartbeat_interval_s=config.heartbeat_interval_s,
        idle_shutdown_s=config.idle_shutdown_s,
        deadman_grace_s=config.deadman_grace_s,
        poweroff_retry_s=config.poweroff_retry_s,
        address=config.address,
    )
    return Agent(
        settings=settings,
        topic=config.heartbeat_topic,
        store=_store(config),
        publisher=_publisher(config),
        read_metrics=functools.partial(metrics.read, config.metrics_url),
        poweroff=functools.partial(run_command, config.poweroff_command),
        clock=clock,
        preempted=threading.Event(),
        store_every_s=config.store_poll_s or config.heartbeat_interval_s,
        read_deadline_s=config.read_deadline(),
        identity=_identity(config, clock),
    )


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
