"""The control plane's composition root (the functions, the gateway), over the shared
adapters: configuration → adapters → Service.

The ``build_*`` functions are the one switch between the backends: Google Cloud's
adapters (adapters/), or the laptop's, which only the local root (laptop.py) knows.
``yoyoctl`` (cli/context.py) composes itself from the same builders; the VM has its own
root (machine.py); see docs/architecture.md for who may import whom.

Invariants: adapters are built lazily, once per process (a warm Cloud Functions
instance reuses them); nothing is built at import time; the backend chosen by the
configuration ("gcp" or "local") is the only switch between cloud and embedded parts;
nothing below the roots imports this module.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import names
from .config import Config, load_config
from .errors import ConfigError
from .ports import Clock, Compute, IdentityVerifier, Publisher, Scheduler, Storage, Store
from .service import Service

if TYPE_CHECKING:
    from .batch.controller import BatchController
    from .batch.service import BatchService
    from .gateway.app import Gateway
    from .laptop import LocalOperator

_lock = threading.Lock()
_service: Service | None = None
_identity: IdentityVerifier | None = None
_gateway: Gateway | None = None
_batch_controller: BatchController | None = None


def build_store(config: Config) -> Store:
    if config.backend == "gcp":
        from .adapters.firestore_store import FirestoreStore

        return FirestoreStore(
            project=config.project,
            database=config.firestore_database,
            event_ttl_days=config.event_ttl_days,
            concurrency=config.fanout.pools,  # as many as the service's pools at once
        )
    from . import laptop

    return laptop.store(config)


def build_compute(config: Config) -> Compute:
    if config.backend == "gcp":
        from .adapters.compute_engine import ComputeEngine

        return ComputeEngine(project=config.project)
    from . import laptop

    return laptop.compute(config)


def build_publisher(config: Config) -> Publisher:
    if config.backend == "gcp" or os.environ.get("PUBSUB_EMULATOR_HOST"):
        from .adapters.pubsub import PubSubPublisher

        return PubSubPublisher(project=config.project)
    from . import laptop

    return laptop.publisher(config)


def build_scheduler(config: Config, publisher: Publisher) -> Scheduler:
    """The cycle and tick jobs: Cloud Scheduler's on gcp, else the local stack's (its
    cycles published with ``publisher``)."""
    if config.backend == "gcp":
        from .adapters.cloud_scheduler import CloudScheduler

        return CloudScheduler(config.project, config.region, config.topic_prefix)
    from . import laptop

    return laptop.scheduler(config, publisher)


def operator_config(find_running_stack: bool = True) -> Config:
    """The configuration as ``yoyoctl`` uses it: on the local backend, that of the running
    stack it names (its state directory and emulators), if one runs."""
    config = load_config()
    if find_running_stack and config.backend == "local":
        from .laptop import adopt_running_stack

        return adopt_running_stack(config)
    return config


def local_operator(config: Config) -> LocalOperator | None:
    """What an operator does to the local stack directly (its VMs' table, keys, zones,
    ``local up``); None on gcp, which has no such stack."""
    if config.backend != "local":
        return None
    from . import laptop

    return laptop.operator(config)


def build_storage(config: Config) -> Storage:
    """Batch objects: the configured bucket on gcp, else a directory under state_dir."""
    if config.backend == "gcp":
        from .adapters.cloud_storage import CloudStorage

        if not config.batch.bucket:
            raise ConfigError("batch.bucket: required on the gcp backend (Terraform output)")
        return CloudStorage(bucket=config.batch.bucket, project=config.project)
    from .adapters.local_storage import LocalStorage

    return LocalStorage(Path(config.local.state_dir) / "objects")


def build_batch_service(config: Config, store: Store, publisher: Publisher) -> BatchService:
    from .batch.service import BatchService

    return BatchService(store, build_storage(config), publisher, build_clock(), config)


def build_batch_controller(service: Service) -> BatchController:
    """The batch controller over ``service``'s store; its facts go to ``service.handle``."""
    from .batch.controller import BatchController

    config = service.config
    return BatchController(
        build_batch_service(config, service.store, build_publisher(config)), service.handle
    )


def batch_controller() -> BatchController:
    """The process-wide batch controller, built on first use."""
    global _batch_controller
    built = service()
    with _lock:
        if _batch_controller is None:
            if not batch_configured(built.config):
                raise ConfigError("batch.bucket: not set, so there is no batch to control")
            _batch_controller = build_batch_controller(built)
        return _batch_controller


def build_clock() -> Clock:
    from .adapters.clock import SystemClock

    return SystemClock()


def build_identity(config: Config) -> IdentityVerifier:
    """Who may sign heartbeats: Google (gcp), or the local stack's own key (local)."""
    if config.backend == "gcp":
        from .adapters.identity_tokens import GOOGLE_ISSUERS, GoogleCerts, TokenVerifier

        return TokenVerifier(config.heartbeat_audience, GOOGLE_ISSUERS, GoogleCerts())
    from . import laptop

    return laptop.identity(config)


def batch_configured(config: Config) -> bool:
    """Batch inference has somewhere to keep its objects (locally it always has)."""
    return config.backend == "local" or bool(config.batch.bucket)


def build_service(config: Config | None = None) -> Service:
    config = config or load_config()
    return Service(build_store(config), build_compute(config), build_clock(), config)


def service() -> Service:
    """The process-wide service, built on first use."""
    global _service
    with _lock:
        if _service is None:
            _service = build_service()
        return _service


def identity() -> IdentityVerifier:
    """The process-wide heartbeat identity verifier, built on first use."""
    global _identity
    config = service().config
    with _lock:
        if _identity is None:
            _identity = build_identity(config)
        return _identity


def build_gateway(service: Service) -> Gateway:
    """The gateway over ``service``: keys and the VMs' inference key from the environment
    (Secret Manager secrets mounted as variables), else the local state directory; with
    batch inference configured, also /v1/files and /v1/batches.

    It reads the store (its view) but tells the control plane what it saw — a wake, its
    load, a cold start — by publishing to the queue topic (gateway/wire.py), on every
    backend: in the cloud its service account may not write Firestore, and locally the
    bus delivers the message to the same entry point (``on_queue``)."""
    from .adapters.upstream_http import HttpUpstream
    from .gateway import auth
    from .gateway.app import Gateway
    from .gateway.batches import BatchApi
    from .gateway.wire import QueueWire

    config = service.config
    vllm_key = os.environ.get(names.ENV_VLLM_API_KEY, "")
    if not vllm_key:
        if config.backend != "local":
            raise ConfigError(f"{names.ENV_VLLM_API_KEY} is not set (the VMs' vLLM API key)")
        vllm_key = auth.ensure_vllm_key(config.local.state_dir)
    publisher = build_publisher(config)
    wire = QueueWire(publisher, config)
    batches = None
    if batch_configured(config):
        batches = build_batch_service(config, service.store, publisher)
    return Gateway(
        config,
        service.store,
        wire.handle,
        HttpUpstream(vllm_key, read_timeout_s=config.gateway.upstream_timeout_s),
        auth.KeyRing.load(config.local.state_dir),
        service.clock,
        record=wire.record,
        batch_api=BatchApi(batches, config.gateway) if batches else None,
    )


def gateway() -> Gateway:
    """The process-wide gateway, built on first use (then read without a lock: every
    request asks for it, and a reference read is atomic)."""
    global _gateway
    if _gateway is not None:
        return _gateway
    built = service()
    with _lock:
        if _gateway is None:
            _gateway = build_gateway(built)
        return _gateway


def reset() -> None:
    """Forget the process-wide service, verifier and gateway (tests, configuration reloads)."""
    global _service, _identity, _gateway, _batch_controller
    with _lock:
        _service = None
        _identity = None
        _gateway = None
        _batch_controller = None
