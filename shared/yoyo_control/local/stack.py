"""``yoyoctl local up``: the whole control plane on one machine, in the foreground.

One HTTP server on ``local.host:local.port`` (127.0.0.1:8080 by default; uvicorn, as
Cloud Run serves the functions: serving.py) serves:
- ``/on_cycle`` … ``/on_control``, ``/on_kill_switch_written``: the real entry points of
  functions/main.py, each loaded with ``functions_framework.create_app`` as Cloud
  Functions does, fed CloudEvents by the bus (Pub/Sub topics) and the kill watcher
  (the Firestore trigger);
- ``/bus/v1/...``: the local bus (Pub/Sub REST subset; see bus.py);
- ``/healthz``: the stack's own state (JSON): 200 once it is ready — every topic,
  subscription, watcher and the scheduler exist, so a command published now is delivered
  — and 503 before (and while stopping); ``yoyoctl`` finds the stack through it;
- ``/v1/...``: the OpenAI-compatible gateway (the async ``gateway`` HTTP function on
  functions-framework's ASGI app; its key is in the state dir, ``yoyoctl gateway key``
  prints it);
- ``/``: the status page (the ``status_page`` HTTP function).
Every request passes guard.Guard: its own Host and Origin only, and the per-stack secret
(``<state_dir>/stack-secret``) on anything that can change state.
Beside it run the scheduler (cycle and tick), the kill watcher, and the supervisor of the
local VMs. With ``--emulators`` the store is the Firestore emulator and the topics live
in the Pub/Sub emulator (a bridge pulls and pushes the same CloudEvents).

Invariants: state is in ``local.state_dir`` (SQLite store, instance table, VM files,
``local-up.json`` — what /healthz says, for scripts); SIGINT/SIGTERM stop everything in
reverse order and leave no process behind (VM process groups are killed and reaped,
emulators stopped; a step slower than a second is logged); the configuration the
functions load is the one this process has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import logs, names
from ..config import Config, load_config
from ..errors import ConfigError
from ..gateway import auth
from . import bus as busmod
from . import guard, identity
from .compute import InstanceTable, Row
from .killwatch import KillWatch
from .logview import PrettyStream
from .scheduler import Scheduler
from .store import open_store
from .supervisor import Supervisor

RUNTIME_FILE = "local-up.json"
# A shutdown step slower than this is logged with its duration. Each step bounds its own
# wait (scheduler 5 s, kill watcher 5 s, VMs 10 s + 3 s grace, bus 5 s), so a stuck
# component delays the exit by at most ~30 s in all and never prevents it.
SLOW_STOP_S = 1.0


def functions_source() -> Path:
    """functions/main.py: $YOYO_FUNCTIONS_SOURCE, else beside the package's repository."""
    env = os.environ.get("YOYO_FUNCTIONS_SOURCE")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[3] / "functions" / "main.py", Path.cwd() / "functions/main.py"]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        "functions/main.py not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); set YOYO_FUNCTIONS_SOURCE"
    )


def build_app(config: Config, broker: busmod.Broker | None, health: Callable[[], Any]) -> Any:
    """The one WSGI app: every entry point, the bus, /healthz and the status page."""
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    source = str(functions_source())
    mounts: dict[str, Any] = {}
    for entry in [*names.FUNCTION_TOPICS.values(), names.ENTRY_KILL_SWITCH_WRITTEN]:
        mounts[f"/{entry}"] = functions_framework.create_app(entry, source, "cloudevent")
    if broker is not None:
        mounts["/bus"] = busmod.BusApp(broker)
    page = functions_framework.create_app(names.ENTRY_STATUS_PAGE, source, "http")

    def root(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            doc = health()
            body = json.dumps(doc).encode()
            status = "200 OK" if doc.get("ok") else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        return page(environ, start_response)

    return DispatcherMiddleware(root, mounts)


def work_subscription(config: Config, pool: str) -> str:
    return f"{config.topic(names.TOPIC_WORK)}-sub-{pool}"


class Stack:
    def __init__(self, config: Config, emulators: bool = False) -> None:
        self.config = config
        self.use_emulators = emulators
        self.state_dir = Path(config.local.state_dir).resolve()
        self.base_url = f"http://{config.local.host}:{config.local.port}"
        self.started_at = time.time()
        self.stopping = threading.Event()
        self.ready = threading.Event()  # set when start() is done: "up" means ready
        self._cleanup: list[tuple[str, Callable[[], None]]] = []
        self.emulator_env: dict[str, str] = {}
        self.pubsub_url = f"{self.base_url}/bus"
        self.broker: busmod.Broker | None = None
        self.secret = ""

    # --- what a local VM runs ---------------------------------------------------------

    def vm_spec(self, row: Row, boot_id: str) -> dict[str, Any]:
        c, local = self.config, self.config.local
        sqlite_path = "" if self.use_emulators else str(self.state_dir / "yoyo.sqlite3")
        return {
            "project": c.project,
            "model": c.pools[row.pool].model or row.pool,
            "api_key_file": str(self.state_dir / auth.VLLM_KEY_FILE),
            "boot_delay_s": local.boot_delay_s,
            "token_latency_s": local.token_latency_s,
            "pubsub_url": self.pubsub_url,
            "bus_secret_file": str(self.state_dir / guard.SECRET_FILE),
            "work_subscription": work_subscription(c, row.pool),
            "storage_dir": str(self.state_dir / "objects"),  # bootstrap.build_storage's
            "model_server": dataclasses.asdict(local.model_server),  # how local/vm.py runs it
            "worker": {
                "concurrency": c.batch.concurrency,
                "ack_deadline_s": c.batch.ack_deadline_s,
            },
            "agent": {
                "pool": row.pool,
                "instance": row.name,
                "project": c.project,
                "heartbeat_topic": c.topic(names.TOPIC_HEARTBEAT),
                "firestore_database": c.firestore_database,
                "heartbeat_interval_s": local.heartbeat_interval_s,
                "idle_shutdown_s": local.idle_shutdown_s,
                "deadman_grace_s": local.deadman_grace_s,
                "metrics_url": "http://127.0.0.1:0/metrics",  # the VM fills in its port
                "poweroff_command": [sys.executable, "-m", "yoyo_control.local.vm", "poweroff"],
                "metadata_url": "",
                "pubsub_url": self.pubsub_url,
                "bus_secret_file": str(self.state_dir / guard.SECRET_FILE),
                "sqlite_path": sqlite_path,
                "boot_id": boot_id,
                "poll_s": min(1.0, float(local.heartbeat_interval_s)),
                "poweroff_retry_s": 5.0,
                # Google's signature stands in: the stack's key signs the VM's token.
                "heartbeat_audience": c.heartbeat_audience,
                "identity_key_file": str(identity.ensure_key(self.state_dir)),
                "zone": row.zone,
            },
        }

    # --- start / stop -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.ready.is_set() and not self.stopping.is_set(),
            "ready": self.ready.is_set(),
            "pid": os.getpid(),
            "url": self.base_url,
            "state_dir": str(self.state_dir),
            "emulators": self.emulator_env,
            "started_at": self.started_at,
        }

    def _on_stop(self, what: str, fn: Callable[[], None]) -> None:
        self._cleanup.append((what, fn))

    def start(self) -> None:
        import functions_framework

        from . import serving

        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.config
        auth.ensure_local_key(self.state_dir)
        auth.ensure_vllm_key(self.state_dir)
        if self.use_emulators:
            self._start_emulators()
        store = open_store(config)  # after the emulators: their hosts are in the environment
        table = InstanceTable(self.state_dir / "compute.sqlite3")
        for pool, policy in config.pools.items():
            for instance in policy.instances:
                table.register(pool, policy.placement(instance).zone, instance)

        self.secret = guard.new_secret(self.state_dir)
        deliver = guard.deliverer(self.secret)
        if not self.use_emulators:
            self.broker = busmod.Broker(config.project, deliver=deliver)
        app = guard.Guard(
            build_app(config, self.broker, self.health), config.local.port, self.secret
        )
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # The gateway as the cloud serves it: its async function on functions-framework's
        # ASGI app, under uvicorn; the rest of the stack (WSGI) behind the same server.
        gateway = functions_framework.create_app(
            names.ENTRY_GATEWAY, str(functions_source()), "http"
        )
        server = serving.Server(config.local.host, config.local.port, serving.front(app, gateway))
        server.start()
        self._on_stop("http server", server.shutdown)
        logs.info(f"serving the functions, the bus and the status page on {self.base_url}")

        if self.broker is not None:
            self._wire_bus(self.broker)
        else:
            self._wire_emulator_bridge()

        supervisor = Supervisor(table, self.state_dir, self.vm_spec, sink=self._vm_line)
        supervisor.start()
        self._on_stop("local VMs", supervisor.stop)

        watch = KillWatch(
            store,
            f"{self.base_url}/{names.ENTRY_KILL_SWITCH_WRITTEN}/",
            config.project,
            config.firestore_database,
            deliver,
        )
        watch.start()
        self._on_stop("kill-switch watcher", watch.stop)

        scheduler = Scheduler(config, self.publisher())
        scheduler.start()
        self._on_stop("scheduler", scheduler.stop)

        runtime = self.state_dir / RUNTIME_FILE
        self.ready.set()
        # Atomically: a script that sees the file exist must never read it half written.
        partial = runtime.with_name(f".{RUNTIME_FILE}.{os.getpid()}")
        partial.write_text(json.dumps(self.health(), indent=2))
        os.replace(partial, runtime)
        self._on_stop("runtime file", lambda: runtime.unlink(missing_ok=True))

    def publisher(self) -> busmod.LocalBusPublisher:
        return busmod.LocalBusPublisher(self.pubsub_url, self.config.project, secret=self.secret)

    def _wire_bus(self, broker: busmod.Broker) -> None:
        config = self.config
        for topic, entry in names.FUNCTION_TOPICS.items():
            broker.create_subscription(
                f"{config.topic(topic)}-push", config.topic(topic), f"{self.base_url}/{entry}/"
            )
        work_topic = config.topic(names.TOPIC_WORK)
        subs = {}
        for pool in config.pools:
            name = work_subscription(config, pool)
            broker.create_subscription(name, work_topic, None, f'attributes.pool = "{pool}"', 60)
            subs[name] = pool
        queue_topic = config.topic(names.TOPIC_QUEUE)

        def drained(sub: busmod.Subscription) -> None:
            # Like the backlog alert closing: the pool's work queue is empty again (a
            # producer's depth: batch demand is its own field and never erased by it).
            pool = subs.get(sub.name)
            if pool is not None:
                broker.publish(queue_topic, json.dumps({"pool": pool, "depth": 0}).encode(), {})
                logs.info("work queue drained: depth 0 published", pool=pool)

        broker.on_drained.append(drained)
        broker.start()
        self._on_stop("bus", broker.stop)

    def _start_emulators(self) -> None:
        from . import emulators

        firestore = emulators.start_firestore()
        self._on_stop("Firestore emulator", firestore.stop)
        pubsub = emulators.start_pubsub()
        self._on_stop("Pub/Sub emulator", pubsub.stop)
        self.emulator_env = {
            "FIRESTORE_EMULATOR_HOST": firestore.host,
            "PUBSUB_EMULATOR_HOST": pubsub.host,
        }
        os.environ.update(self.emulator_env)
        self.pubsub_url = f"http://{pubsub.host}"
        logs.info(f"emulators up: Firestore {firestore.host}, Pub/Sub {pubsub.host}")

    def _wire_emulator_bridge(self) -> None:
        from .bridge import Bridge

        bridge = Bridge(
            self.config,
            self.pubsub_url,
            self.base_url,
            work_subscription,
            guard.deliverer(self.secret),
        )
        bridge.start()
        self._on_stop("emulator bridge", bridge.stop)

    def _vm_line(self, instance: str, line: str) -> None:
        stream = self._stream
        if stream is not None:
            stream.line(line, prefix=f"vm {instance} | ")

    _stream: PrettyStream | None = None

    def stop(self) -> None:
        self.stopping.set()
        for what, fn in reversed(self._cleanup):
            began = time.monotonic()
            try:
                fn()
            except Exception as exc:
                logs.error(f"stopping {what}: {type(exc).__name__}: {exc}")
            took = time.monotonic() - began
            if took > SLOW_STOP_S:
                logs.warning(f"stopping {what} took {took:.1f} s")
        self._cleanup = []


def up(emulators: bool = False, config: Config | None = None) -> int:
    """Run the stack until SIGINT/SIGTERM. Returns the process exit code."""
    stream = PrettyStream(sys.stdout)
    logs.set_stream(stream)  # type: ignore[arg-type]
    config = config or load_config()
    stack = Stack(config, emulators)
    stack._stream = stream
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        stack.start()
        pools = ", ".join(
            f"{p} ({len(pol.instances)} VM{'s' if len(pol.instances) > 1 else ''})"
            for p, pol in config.pools.items()
        )
        logs.info(
            f"Yo-Yo local stack up: pools {pools}; state in {stack.state_dir}. "
            f"Status page: {stack.base_url}/ ; OpenAI-compatible gateway: {stack.base_url}/v1 "
            "(key: yoyoctl gateway key); in another terminal try: "
            'yoyoctl status, yoyoctl ask "hello". Ctrl-C stops.'
        )
        stop.wait()
        logs.info("stopping the local stack (Ctrl-C)")
    except OSError as exc:
        logs.error(f"local stack failed to start: {exc}")
        return 1
    finally:
        stack.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
        logs.info("local stack stopped; no process left behind")
        logs.set_stream(None)
    return 0
