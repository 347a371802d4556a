"""The VM's composition root: the agent and the worker, from the adapters a VM has.

A GPU VM (and a local VM, which runs the same units) runs three processes: the model
server (vLLM by default; started by its systemd unit, locally by a configured command),
the agent and the worker. Both of ours reach the model server through one port
(``ports.ModelServer``: ``/health``, and its load under configured metric names), the
store and Pub/Sub through the same adapters: Firestore or SQLite (the local stack), Google's
Pub/Sub client or its REST API (the emulator, the local bus, with the stack's secret).

Invariants: nothing here, in agent/ or in worker/ imports the local stack (local/): a VM
knows the local stack only as URLs and files in its configuration; adapters are built
once per process, at start; a configuration error is a ConfigError (agent) or ValueError
(worker) raised before anything runs.
"""

from __future__ import annotations

import functools
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .adapters.model_server import HttpModelServer, MetricNames
from .adapters.pubsub_rest import read_secret_file, secret_headers
from .agent import identity
from .agent.config import AgentConfig
from .agent.loop import Agent, run_command
from .agent.policy import Settings
from .ports import Clock, Publisher, Storage, Store
from .worker.config import VLLM_API_KEY_ENV, WorkerConfig
from .worker.loop import Worker
from .worker.queue import GOOGLE_PUBSUB, WorkQueue, google_token
from .worker.shard import ShardRunner, http_poster

# --- shared adapters ------------------------------------------------------------------


def store(project: str, database: str, sqlite_path: str = "") -> Store:
    if sqlite_path:
        from .adapters.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path)
    from .adapters.firestore_store import FirestoreStore

    return FirestoreStore(project=project, database=database)


def publisher(project: str, pubsub_url: str = "", secret_file: str = "") -> Publisher:
    """Heartbeats go out by Google's client, or by REST to ``pubsub_url``."""
    if pubsub_url:
        from .adapters.pubsub_rest import RestPublisher

        secret = read_secret_file(secret_file) if secret_file else ""
        return RestPublisher(pubsub_url, project, secret=secret)
    from .adapters.pubsub import PubSubPublisher

    return PubSubPublisher(project=project)


def model_server(metrics_url: str, names: MetricNames) -> HttpModelServer:
    """The model server whose Prometheus text is at ``metrics_url``."""
    parts = urllib.parse.urlsplit(metrics_url)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return HttpModelServer(base, names, metrics_path=parts.path or "/metrics")


# --- the agent ------------------------------------------------------------------------


def _boot_id(config: AgentConfig) -> str:
    if config.boot_id:
        return config.boot_id
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


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


def build_agent(config: AgentConfig) -> Agent:
    from .adapters.clock import MonotonicClock

    clock = MonotonicClock()
    names = MetricNames(config.metric_running, config.metric_waiting, config.metric_finished)
    server = model_server(config.metrics_url, names)
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
        store=store(config.project, config.firestore_database, config.sqlite_path),
        publisher=publisher(config.project, config.pubsub_url, config.bus_secret_file),
        read_metrics=server.load,
        poweroff=functools.partial(run_command, config.poweroff_command),
        clock=clock,
        preempted=threading.Event(),
        store_every_s=config.store_poll_s or config.heartbeat_interval_s,
        read_deadline_s=config.read_deadline(),
        identity=_identity(config, clock),
    )


# --- the worker -----------------------------------------------------------------------


def worker_storage(config: WorkerConfig) -> Storage:
    if config.bucket:
        from .adapters.cloud_storage import CloudStorage

        return CloudStorage(config.bucket, project=config.project)
    from .adapters.local_storage import LocalStorage

    return LocalStorage(config.storage_dir)


def work_queue(config: WorkerConfig) -> WorkQueue:
    """The pool's work subscription: Google's Pub/Sub with the VM's token, or by REST."""
    if config.pubsub_url:
        headers = secret_headers(read_secret_file(config.bus_secret_file))
        return WorkQueue(config.pubsub_url, config.project, config.subscription, headers=headers)
    return WorkQueue(GOOGLE_PUBSUB, config.project, config.subscription, google_token())


def _server_key(config: WorkerConfig) -> str:
    if config.api_key_file:
        return read_secret_file(config.api_key_file)
    return os.environ.get(VLLM_API_KEY_ENV, "").strip()


def build_worker(config: WorkerConfig) -> Worker:
    runner = ShardRunner(
        worker_storage(config),
        config.server_url,
        concurrency=config.concurrency,
        chunk_lines=config.chunk_lines,
        post=http_poster(_server_key(config)),
    )
    return Worker(config, work_queue(config), runner)  # its server: HttpModelServer(server_url)
