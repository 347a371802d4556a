"""Fixtures for the entry-point tests: the real bootstrap on a temporary world.

``world`` points bootstrap at a YOYO_CONFIG whose SQLite state lives in tmp_path (``any_world``:
the same on SQLite and on the Firestore emulator, a fresh project each), with a
FakeCompute and a ManualClock swapped in through bootstrap's public builders (test modules
read the configuration's names as ``world.pool``, ``world.instance``, ``world.budget_id``);
``call`` posts a CloudEvent to an entry point through ``functions_framework.create_app``.
Every environment change and the process-wide service are undone after each test.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from fakes import FakeCompute
from yoyo_control import bootstrap
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.service import Service

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "functions" / "main.py"
FIXTURES = Path("/work/shared/fixtures")
PAYLOADS = Path(__file__).resolve().parent / "payloads"

POOL = "default"
INSTANCE = "yoyo-default-0"
BUDGET_ID = "de72f49d-779b-4945-a127-4d6ce8def0bb"
START = 1_795_406_800.0  # just after the fixtures' publish time (2026-11-23T04:06:14Z)

CONFIG: dict[str, Any] = {
    "backend": "local",
    "project": "my-project",
    "budget": {"budget_ids": [BUDGET_ID], "kill_fraction": 1.0},
    "pools": {
        POOL: {
            "zone": "us-central1-a",
            "instances": [INSTANCE],
            "hourly_price_usd": 0.35,
            "idle_timeout_s": 600,
            "heartbeat_gap_s": 180,
            "boot_grace_s": 300,
            "lease_s": 900,
            "queue_threshold": 50,
            "cycle": {"window_s": 1200},
        }
    },
}


def load_payload(name: str) -> Any:
    """A decoded payload from /work/shared/fixtures or tests/functions/payloads."""
    for folder in (PAYLOADS, FIXTURES):
        path = folder / name
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


def pubsub_event(
    payload: Any,
    *,
    message_id: str = "1001",
    attributes: Mapping[str, str] | None = None,
    publish_time: str = "2026-11-23T04:06:14.109Z",
    topic: str = "yoyo-test",
) -> dict[str, Any]:
    """The Eventarc CloudEvent of fixtures/pubsub_cloudevent.json around ``payload``.

    ``payload``: bytes are sent as they are, anything else as JSON.
    """
    event = json.loads((FIXTURES / "pubsub_cloudevent.json").read_text())
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message = event["data"]["message"]
    message["data"] = base64.b64encode(data).decode()
    for key in ("messageId", "message_id"):
        message[key] = message_id
    for key in ("publishTime", "publish_time"):
        message[key] = publish_time
    if attributes is None:
        message.pop("attributes", None)
    else:
        message["attributes"] = dict(attributes)
    event["id"] = message_id
    event["time"] = publish_time
    event["source"] = f"//pubsub.googleapis.com/projects/my-project/topics/{topic}"
    return event


@pytest.fixture
def payload() -> Callable[[str], Any]:
    """``payload(name)``: a decoded payload from the shared fixtures or payloads/."""
    return load_payload


@pytest.fixture
def envelope() -> Callable[..., dict[str, Any]]:
    """``envelope(payload, message_id=…, attributes=…, publish_time=…)``: see pubsub_event."""
    return pubsub_event


@dataclass
class World:
    service: Service
    compute: FakeCompute
    clock: ManualClock
    pool: str = POOL
    instance: str = INSTANCE
    budget_id: str = BUDGET_ID

    @property
    def store(self) -> Any:
        return self.service.store

    def events(self, kind: str | None = None) -> list[Any]:
        return [e for e in self.store.events(limit=1000) if kind in (None, e.kind)]

    def rejected(self) -> dict[str, str]:
        return {e.message_id: e.reason for e in self.events("rejected")}

    def facts(self) -> list[str]:
        return [e.message_id for e in self.events("fact")]


def _world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, firestore_host: str = ""
) -> Iterator[World]:
    config = {**CONFIG, "local": {"state_dir": str(tmp_path / "state")}}
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    if firestore_host:  # bootstrap picks the Firestore store; a fresh database per world
        # (not a fresh project: heartbeats' identity tokens name the configured project)
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)
        config["firestore_database"] = f"w-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(config))
    compute = FakeCompute()
    compute.add(POOL, INSTANCE)
    clock = ManualClock(START)
    monkeypatch.setattr(bootstrap, "build_compute", lambda _config: compute)
    monkeypatch.setattr(bootstrap, "build_clock", lambda: clock)
    bootstrap.reset()
    service = bootstrap.service()
    try:
        yield World(service, compute, clock)
    finally:
        bootstrap.reset()
        service.store.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", "firestore"])
def any_world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """``world`` on each store: SQLite, and Google's Firestore emulator."""
    host = ""
    if request.param == "firestore":  # (tests/conftest.py: started once per session)
        host = request.getfixturevalue("firestore_emulator").host
    yield from _world(tmp_path, monkeypatch, host)


@pytest.fixture
def signed(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``signed(payload, **claims)``: a heartbeat payload with its VM's identity token.

    The token is signed with the world's local key (the local stack's stand-in for
    Google's, which ``world`` and ``any_world`` keep in ``tmp_path / "state"``), for the
    payload's own instance in the pool's zone and project, unless
    ``instance``, ``zone``, ``project``, ``audience``, ``now`` or ``key_dir`` say otherwise.
    """
    import time

    from yoyo_control.local import identity

    def sign(payload: Mapping[str, Any], **claims: Any) -> dict[str, Any]:
        key_dir = claims.pop("key_dir", tmp_path / "state")
        values = {
            "audience": "yoyo-heartbeat",
            "project": "my-project",
            "zone": "us-central1-a",
            "instance": payload.get("instance", INSTANCE),
            "now": time.time(),
            **claims,
        }
        token = identity.sign(identity.ensure_key(key_dir), **values)
        return {**payload, "identity": token}

    return sign


Client = Callable[..., Any]


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Any]:
    """``app(target, signature)``: a functions-framework test client for functions/main.py."""
    # create_app writes these into os.environ; monkeypatch restores them afterwards.
    monkeypatch.setenv("FUNCTION_TARGET", "")
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", "")
    built: dict[tuple[str, str], Any] = {}

    def make(target: str, signature: str = "cloudevent") -> Any:
        key = (target, signature)
        if key not in built:
            created = functions_framework.create_app(target, str(MAIN), signature)
            # an async function's app is functions-framework's ASGI one (no test client)
            built[key] = created.test_client() if hasattr(created, "test_client") else created
        return built[key]

    return make


@pytest.fixture
def call(app: Callable[[str, str], Any]) -> Callable[..., Any]:
    """``call(target, event)``: POST a structured-mode CloudEvent; the Flask response."""

    def post(target: str, event: Mapping[str, Any] | bytes, **headers: str) -> Any:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        headers = {"Content-Type": "application/cloudevents+json", **headers}
        return app(target).post("/", data=body, headers=headers)

    return post
