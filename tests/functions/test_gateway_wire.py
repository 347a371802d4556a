"""The gateway composed for Google Cloud writes nothing to Firestore: a wake, its load and
the cold start it measured are published to the queue topic, and the queue function
(``on_queue``) turns them into what the control plane records.

In the cloud the gateway's service account holds roles/datastore.viewer and
roles/pubsub.publisher on ``PREFIX-queue`` and ``PREFIX-work`` only (terraform/iam.tf,
tests/infra/test_cloud_path.py): a write gets PERMISSION_DENIED. Here the gateway's store
is the control plane's own store behind a double that refuses every write the way
Firestore does for that role (google.api_core's PermissionDenied, 403), and its publisher
records what it publishes; each recorded message is then delivered to ``on_queue`` as
Eventarc delivers it (the ``world`` fixture: the real bootstrap on SQLite).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asgi_serving import Client, Server, asgi_app
from fakes import FakeCompute, ReadOnlyStore
from inference_servers import VLLM_KEY, serve_inference
from yoyo_control import bootstrap, names
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import HeartbeatReceived
from yoyo_control.domain.model import Heartbeat
from yoyo_control.gateway.auth import digest
from yoyo_control.local.envelope import rfc3339
from yoyo_control.local.inference import Engine
from yoyo_control.service import Service

from .conftest import CONFIG, INSTANCE, POOL, World, pubsub_event

KEY = "gw-key"
MODEL = "m"


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        with self.lock:
            self.messages.append((topic, data))
            return str(len(self.messages))

    def taken(self, start: int) -> list[tuple[str, bytes]]:
        with self.lock:
            return self.messages[start:]


@pytest.fixture
def vm() -> Iterator[str]:
    server = serve_inference(Engine(MODEL, 0.001, max_num_seqs=16))
    yield next(server)
    server.close()


def _gcp_gateway(
    world: World, monkeypatch: pytest.MonkeyPatch, publisher: RecordingPublisher
) -> tuple[Any, ReadOnlyStore]:
    """bootstrap.build_gateway as the cloud composes it: backend gcp, its own keys, the
    store it may only read, the publisher it may use."""
    pool = {**CONFIG["pools"][POOL], "model": MODEL}
    config = parse_config(
        {
            **CONFIG,
            "backend": "gcp",
            "pools": {POOL: pool},
            "gateway": {"hold_s": 30, "poll_s": 0.05},
        }
    )
    monkeypatch.setenv(names.ENV_VLLM_API_KEY, VLLM_KEY)
    monkeypatch.setenv(names.ENV_GATEWAY_KEY_SHA256, digest(KEY))
    monkeypatch.setattr(bootstrap, "build_publisher", lambda _config: publisher)
    store = ReadOnlyStore(world.store)
    service = Service(store, FakeCompute(), world.clock, config)  # type: ignore[arg-type]
    return bootstrap.build_gateway(service), store


def _deliver(call: Callable[..., Any], world: World, data: bytes, message_id: str) -> None:
    event = pubsub_event(
        data, message_id=message_id, publish_time=rfc3339(world.clock.now()), topic="yoyo-queue"
    )
    response = call("on_queue", event)
    assert response.status_code < 300, response.get_data(as_text=True)


def test_regression_the_gcp_gateway_wakes_and_records_by_publishing_never_writing(
    world: World, monkeypatch: pytest.MonkeyPatch, call: Callable[..., Any], vm: str
) -> None:
    publisher = RecordingPublisher()
    gateway, store = _gcp_gateway(world, monkeypatch, publisher)
    server = Server(asgi_app(gateway))
    client = Client(server.url)
    answers: list[Any] = []
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}

    def ask() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        answers.append(client.post("/v1/chat/completions", json=body, headers=headers))

    asker = threading.Thread(target=ask)
    asker.start()
    delivered = 0
    try:
        # 1. The cold pool: the gateway holds the request and publishes its wake.
        deadline = time.monotonic() + 10
        while not any(b'"wake"' in data for _, data in publisher.taken(0)):
            assert time.monotonic() < deadline, (
                f"no wake published; {len(store.refused)} writes refused"
            )
            time.sleep(0.02)
        assert store.refused == []
        assert {topic for topic, _ in publisher.taken(0)} == {"yoyo-queue"}
        # 2. The queue function records it: the lease is granted, the VM started.
        for _, data in publisher.taken(delivered):
            delivered += 1
            _deliver(call, world, data, f"{900 + delivered}")
        state = world.store.get_pool(POOL)
        assert state.lease is not None and state.lease.valid(world.clock.now())
        assert world.compute.status[INSTANCE] == "RUNNING"
        wakes = [e for e in world.events("fact") if e.message_id.startswith("gateway-wake-")]
        assert len(wakes) == 1, wakes
        # A second instance (or a redelivery) publishing the same wake is one wake.
        wake = next(data for _, data in publisher.taken(0) if b'"wake"' in data)
        _deliver(call, world, wake, "999")
        assert len([e for e in world.events("fact") if e.message_id == wakes[0].message_id]) == 1
        # 3. The VM is ready: the held request is answered.
        now = world.clock.now()
        beat = Heartbeat(INSTANCE, "boot-1", now, now, ready=True, address=vm)
        world.service.handle(HeartbeatReceived("hb-1", now, POOL, beat))
        asker.join(20)
        assert not asker.is_alive()
        assert answers and answers[0].status_code == 200, answers[0].get_data(as_text=True)
        assert "X-Yoyo-Cold-Start" in answers[0].headers
        # 4. The cold start and the load reached the control plane the same way.
        deadline = time.monotonic() + 10
        while not any(b'"cold_start"' in data for _, data in publisher.taken(0)):
            assert time.monotonic() < deadline, "no cold start published"
            time.sleep(0.02)
        while not any(b'"in_flight":0,"held":0' in d for _, d in publisher.taken(0)):
            assert time.monotonic() < deadline, "the load's end was not reported"
            time.sleep(0.02)  # a report deferred by the one-per-second bound
        for _, data in publisher.taken(delivered):
            delivered += 1
            _deliver(call, world, data, f"{900 + delivered}")
        assert world.rejected() == {}
        cold = world.events("cold-start")
        assert len(cold) == 1 and cold[0].data["instance"] == INSTANCE, cold
        assert cold[0].data["phases"]["wake_at"] is not None
        sent = [data for _, data in publisher.taken(0)]
        assert any(b'"held":1' in d for d in sent), sent  # held while cold
        assert any(b'"in_flight":0,"held":0' in d for d in sent), sent  # and the load's end
        assert world.store.get_pool(POOL).load.observed_at is not None
        assert store.refused == [], store.refused
    finally:
        asker.join(20)
        client.close()
        server.stop()


@pytest.mark.parametrize(
    "payload",
    [
        {"pool": POOL, "wake": "12345"},
        {"pool": POOL, "wake": "gateway-wake-" + "\ud83d"},
        {"pool": POOL, "cold_start": {"epoch": 1, "instance": "elsewhere", "held_s": 1}},
        {"pool": POOL, "cold_start": {"epoch": 10**40, "instance": INSTANCE, "held_s": 1}},
    ],
)
def test_a_malformed_gateway_message_is_acknowledged_and_recorded_as_rejected(
    world: World, call: Callable[..., Any], payload: Any
) -> None:
    _deliver(call, world, json.dumps(payload).encode(), "701")
    assert "701" in world.rejected()
    assert world.store.get_pool(POOL).lease is None
    assert world.events("cold-start") == []


def test_a_cold_start_is_recorded_once_per_epoch(world: World, call: Callable[..., Any]) -> None:
    now = world.clock.now()
    for message_id, held in (("801", 12.5), ("802", 99.0)):  # two instances, one epoch
        body = {"epoch": 4, "instance": INSTANCE, "held_s": held, "phases": {"wake_at": now}}
        _deliver(call, world, json.dumps({"pool": POOL, "cold_start": body}).encode(), message_id)
    [event] = world.events("cold-start")
    assert event.id == f"cold-start:{POOL}:4" and event.data["held_s"] == 12.5
    assert event.data["phases"]["wake_at"] == pytest.approx(now, abs=0.001)
    assert world.rejected() == {}
