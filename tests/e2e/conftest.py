"""End-to-end fixtures: real emulators, real push delivery, the real entry points.

Shape (one of each per session, shared by every test; isolation by a fresh project id
per test, so topics, subscriptions and Firestore documents never collide):
- Google's Pub/Sub emulator (tests/pubsub_emulator.py) and Firestore emulator
  (tests/emulators.py), started in parallel;
- one HTTP server on 127.0.0.1 serving every entry point of functions/main.py through
  ``functions_framework.create_app`` at ``/<entry point>`` (the push endpoints). It runs
  in this process, so each test swaps in its own Compute REST stub and ManualClock
  through bootstrap's public builders; counts of answers per entry point let tests wait
  for deliveries;
- per test: a ``backend: gcp`` configuration (Firestore store on the emulator), the
  Compute Engine adapter pointed at tests/compute_stub.py, topics ``yoyo-<suffix>`` with
  push subscriptions to the server.
Everything started is stopped even when a test fails.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from werkzeug.serving import make_server

import emulators
from compute_stub import ComputeStub
from polling import eventually
from pubsub_emulator import PubSubAdmin, start_pubsub
from yoyo_control import bootstrap, names
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.local import identity as local_identity
from yoyo_control.service import Service

MAIN = Path(__file__).resolve().parents[2] / "functions" / "main.py"
POOL = "default"
INSTANCE = "yoyo-default-0"
ZONE = "us-central1-a"
BUDGET_ID = "de72f49d-779b-4945-a127-4d6ce8def0bb"
ENTRY_POINTS = {**names.FUNCTION_TOPICS, "kill_switch": names.ENTRY_KILL_SWITCH_WRITTEN}
_projects = itertools.count(1)


@dataclass
class Emulators:
    pubsub: emulators.Emulator
    firestore: emulators.Emulator


@pytest.fixture(scope="session")
def google_emulators() -> Iterator[Emulators]:
    """Both emulators, started side by side (a JVM each takes seconds to come up)."""
    started: list[emulators.Emulator] = []
    failure: BaseException | None = None
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_pubsub), pool.submit(emulators.start_firestore)]
        _prewarm()  # import the clients while the JVMs boot (the first push is faster)
        for future in futures:  # wait for both, so none is left running unseen
            try:
                started.append(future.result())
            except BaseException as exc:
                failure = failure or exc
    try:
        if isinstance(failure, emulators.EmulatorUnavailable) and emulators.skip_requested():
            pytest.skip(f"{failure} ({emulators.SKIP_ENV}=1)")
        if failure is not None:
            raise failure
        yield Emulators(*started)
    finally:
        for emulator in started:
            emulator.stop()


def _prewarm() -> None:
    import google.cloud.compute_v1
    import google.cloud.firestore  # noqa: F401

    import yoyo_control.adapters.compute_engine
    import yoyo_control.adapters.firestore_store  # noqa: F401


class Answers:
    """WSGI middleware around the real apps: counts each entry point's HTTP answers."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "").strip("/")

        def counting(status: str, headers: Any, *args: Any) -> Any:
            with self.lock:
                self.counts[(path, int(status.split()[0]))] += 1
            return start_response(status, headers, *args)

        return self.app(environ, counting)

    def count(self, entry_point: str, status: int = 200) -> int:
        with self.lock:
            return self.counts[(entry_point, status)]


@pytest.fixture(scope="session")
def function_server() -> Iterator[tuple[str, Answers]]:
    """(base URL, answer counter) of the server that is every push endpoint."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    with pytest.MonkeyPatch.context() as env:  # create_app writes these variables
        env.setenv("FUNCTION_TARGET", "")
        env.setenv("FUNCTION_SIGNATURE_TYPE", "")
        apps = {
            f"/{entry}": functions_framework.create_app(entry, str(MAIN), "cloudevent")
            for entry in ENTRY_POINTS.values()
        }
    answers = Answers(DispatcherMiddleware(_not_found, apps))
    server = make_server("127.0.0.1", 0, answers, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such entry point\n"]


@dataclass
class World:
    project: str
    admin: PubSubAdmin
    stub: ComputeStub
    clock: ManualClock
    answers: Answers
    base_url: str
    emulators: Emulators
    config: dict[str, Any] = field(default_factory=dict)
    key_dir: Path | None = None  # the key heartbeats are signed with (Google's stand-in)
    subscriptions: list[str] = field(default_factory=list)  # deleted with the world

    def sign(self, beat: dict[str, Any]) -> dict[str, Any]:
        """``beat`` with an identity token of its own instance, as the metadata server gives."""
        assert self.key_dir is not None
        token = local_identity.sign(
            local_identity.ensure_key(self.key_dir),
            audience="yoyo-heartbeat",
            project=self.project,
            zone=ZONE,
            instance=beat["instance"],
            now=time.time(),
        )
        return {**beat, "identity": token}

    pool: str = POOL
    instance: str = INSTANCE
    budget_id: str = BUDGET_ID

    @staticmethod
    def eventually(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
        return eventually(check, what, timeout_s)

    @property
    def service(self) -> Service:
        return bootstrap.service()

    @property
    def store(self) -> Any:
        return self.service.store

    def topic(self, suffix: str) -> str:
        return f"yoyo-{suffix}"

    def subscribe(self, suffix: str, name: str = "", ack_deadline_s: int = 60) -> None:
        entry = ENTRY_POINTS[suffix]
        path = self.admin.create_push_subscription(
            name or f"yoyo-{suffix}-push",
            self.topic(suffix),
            f"{self.base_url}/{entry}/",
            ack_deadline_s=ack_deadline_s,
        )
        self.subscriptions.append(path)

    def publish(self, suffix: str, payload: Any, **attributes: str) -> str:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.admin.publish(self.topic(suffix), data, **attributes)

    def events(self, kind: str | None = None) -> list[Any]:
        return [e for e in self.store.events(limit=1000) if kind in (None, e.kind)]

    def status(self) -> str:
        return self.stub.status(ZONE, INSTANCE)


@pytest.fixture
def world_overrides() -> dict[str, Any]:
    """Top-level configuration keys a test module replaces (override this fixture)."""
    return {}


@pytest.fixture
def world(
    google_emulators: Emulators,
    function_server: tuple[str, Answers],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    world_overrides: dict[str, Any],
) -> Iterator[World]:
    from google.auth.credentials import AnonymousCredentials

    from yoyo_control.adapters.compute_engine import ComputeEngine

    project = f"yoyo-e2e-{next(_projects)}-{int(time.time())}"
    base_url, answers = function_server
    config = {
        "backend": "gcp",
        "project": project,
        "budget": {"budget_ids": [BUDGET_ID], "kill_fraction": 1.0},
        "pools": {
            POOL: {
                "zone": ZONE,
                "instances": [INSTANCE],
                "hourly_price_usd": 0.35,
                "idle_timeout_s": 600,
                "lease_s": 900,
                "queue_threshold": 50,
                "cycle": {"window_s": 1800},
            }
        },
        **world_overrides,
    }
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(config))
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", google_emulators.firestore.host)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", google_emulators.pubsub.host)
    clock = ManualClock(time.time())
    engines: list[ComputeEngine] = []

    with ComputeStub(project=project) as stub:
        stub.add(ZONE, INSTANCE, "TERMINATED", {names.LABEL_POOL: POOL})

        def build_compute(config: Any) -> ComputeEngine:
            engine = ComputeEngine(
                config.project,
                client_options={"api_endpoint": stub.endpoint},
                transport="rest",
                credentials=AnonymousCredentials(),
                poll_interval_s=0.001,
                operation_timeout_s=20.0,
                request_timeout_s=10.0,
            )
            engines.append(engine)
            return engine

        monkeypatch.setattr(bootstrap, "build_compute", build_compute)
        monkeypatch.setattr(bootstrap, "build_clock", lambda: clock)
        # Google's certificates are not reachable from here: heartbeats are signed with a
        # local key and checked by the same verifier against its public half.
        key_dir = tmp_path / "identity"
        monkeypatch.setattr(
            bootstrap,
            "build_identity",
            lambda config: local_identity.verifier(key_dir, config.heartbeat_audience),
        )
        bootstrap.reset()
        service = bootstrap.service()
        admin = PubSubAdmin(google_emulators.pubsub.host, project)
        for suffix in names.FUNCTION_TOPICS:
            admin.create_topic(f"yoyo-{suffix}")
        world = World(
            project, admin, stub, clock, answers, base_url, google_emulators, config, key_dir
        )
        try:
            yield world
        finally:
            # The function server is shared by the module's tests: a subscription left
            # behind would push its redeliveries into the next test's world.
            for path in world.subscriptions:
                admin.delete_subscription(path)
            bootstrap.reset()
            service.store.close()
            for engine in engines:
                engine.close()
