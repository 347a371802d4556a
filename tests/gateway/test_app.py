"""The gateway served by uvicorn on 127.0.0.1 (as functions-framework serves it): real
SQLite store and service, the real async HTTP client to real (simulated) inference
servers on 127.0.0.1, a manual clock. Every error path over raw HTTP.

A pool's VM becomes "ready" the way it does in production: a heartbeat fact announcing
its address goes through ``service.handle``. The view's pauses while a request is held
advance the manual clock (and run the test's ``on_pause`` hooks).
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from asgi_serving import Client, Server, asgi_app
from fakes import FakeCompute
from inference_servers import VLLM_KEY, serve_inference
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import (
    HeartbeatReceived,
    KillRequested,
    QueueDepthObserved,
    RunRequested,
    Tick,
)
from yoyo_control.domain.model import Heartbeat
from yoyo_control.errors import PermanentError, TemporaryError
from yoyo_control.gateway.app import Gateway
from yoyo_control.gateway.auth import KeyRing, digest
from yoyo_control.gateway.view import View
from yoyo_control.local.inference import Engine
from yoyo_control.service import Service

KEY = "sk-test-key"
MODEL = "tiny-llm"


def config(**gateway: Any) -> Any:
    return parse_config(
        {
            "pools": {
                "gpu": {
                    "instances": ["vm-0", "vm-1"],
                    "model": MODEL,
                    "lease_s": 600,
                    "heartbeat_gap_s": 60,
                    "boot_grace_s": 300,
                }
            },
            "gateway": {"hold_s": 120, "max_held": 5, "max_body_bytes": 4096, **gateway},
        }
    )


@dataclass
class World:
    service: Service
    store: SqliteStore
    compute: FakeCompute
    clock: ManualClock
    client: Client
    gateway: Gateway
    servers: dict[str, str]  # instance → address of its inference server
    engines: dict[str, Engine]
    pause: Any = None
    on_pause: list[Callable[[], None]] = field(default_factory=list)
    beats: int = 0

    def ready(self, instance: str, running: int = 0, address: str | None = None) -> None:
        """The instance's agent reports ready (through the heartbeat fact, as in production)."""
        self.beats += 1
        now = self.clock.now()
        hb = Heartbeat(
            instance,
            f"boot-{instance}",
            now,
            now,
            busy=running > 0,
            running=running,
            ready=True,
            address=address or self.servers[instance],
        )
        self.service.handle(HeartbeatReceived(f"hb-{self.beats}", now, "gpu", hb))

    def warm(self, *instances: str) -> None:
        """A lease and both VMs running (queued work for two), ``instances`` ready."""
        now = self.clock.now()
        self.service.handle(QueueDepthObserved("depth", now, "gpu", 2, "test"))
        self.service.handle(RunRequested("op-start", now, "gpu", "operator", "t", 600))
        for instance in instances:
            self.ready(instance)

    def post(self, path: str, body: Any, key: str = KEY, **kw: Any) -> Any:
        """POST through the gateway (``kw`` goes to the test client, e.g. buffered=False)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        return self.client.post(f"/v1{path}", data=data, headers=headers, **kw)

    def chat(self, buffered: bool = True, **extra: Any) -> Any:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        return self.post("/chat/completions", {**body, **extra}, buffered=buffered)

    def wakes(self) -> list[Any]:
        return [
            e
            for e in self.store.events(pool="gpu", limit=1000)
            if e.kind == "fact" and e.message_id.startswith("gateway-wake")
        ]


def gateway_of(w: World, pause: Any) -> Gateway:
    """Another gateway instance on ``w``'s store and service (separate in the cloud)."""
    clock = w.clock
    return Gateway(
        w.gateway.config,
        w.store,
        w.service.handle,
        HttpUpstream(VLLM_KEY, read_timeout_s=5),
        KeyRing([digest(KEY)]),
        clock,
        record=w.service.record,
        view=View(w.store, clock, w.gateway.config.gateway.poll_s, sleep=pause),
        network_warmup_s=0.0,
    )


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    servers: list[Iterator[str]] = []
    served: list[tuple[Server, Client]] = []

    def build(**gateway: Any) -> World:
        cfg = config(**gateway)
        clock = ManualClock()
        compute = FakeCompute()
        for name in ("vm-0", "vm-1"):
            compute.add("gpu", name)
        store = SqliteStore(tmp_path / f"s{len(servers)}.db")
        service = Service(store, compute, clock, cfg)
        addresses, engines = {}, {}
        for name in ("vm-0", "vm-1"):
            engines[name] = Engine(MODEL, 0.001)
            gen = serve_inference(engines[name])
            servers.append(gen)
            addresses[name] = next(gen)
        world_ref: list[World] = []

        async def pause(seconds: float) -> None:
            clock.advance(seconds)
            for hook in list(world_ref[0].on_pause):
                hook()
            await asyncio.sleep(0)

        gw = Gateway(
            cfg,
            store,
            service.handle,
            HttpUpstream(VLLM_KEY, read_timeout_s=5),
            KeyRing([digest(KEY)]),
            clock,
            record=service.record,
            view=View(store, clock, cfg.gateway.poll_s, sleep=pause),
            network_warmup_s=0.0,
        )
        server = Server(asgi_app(gw))
        client = Client(server.url)
        served.append((server, client))
        world = World(service, store, compute, clock, client, gw, addresses, engines, pause)
        world_ref.append(world)
        return world

    yield build
    for server, client in served:
        client.close()
        server.stop()
    for gen in servers:
        gen.close()


def error_of(response: Any) -> dict[str, Any]:
    doc = response.get_json()
    assert set(doc["error"]) == {"message", "type", "param", "code"}, doc
    return dict(doc["error"])


# --- refusals and malformed requests (raw HTTP) ----------------------------------------


def test_no_key_or_a_wrong_key_is_401_and_nothing_is_woken(make_world) -> None:
    w = make_world()
    wrong = w.post("/chat/completions", {"model": MODEL}, key="nope")
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_api_key"
    bare = w.client.get("/v1/models")
    assert bare.status_code == 401 and error_of(bare)["code"] == "invalid_api_key"
    assert w.wakes() == [] and w.compute.calls == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'{"messages": []}', "missing_model"),
        (b'{"model": 7}', "missing_model"),
        (b"[" * 3000, "invalid_json"),  # nested too deep for the parser
    ],
)
def test_a_malformed_body_is_400(make_world, body: bytes, code: str) -> None:
    w = make_world()
    response = w.post("/chat/completions", body)
    assert response.status_code == 400 and error_of(response)["code"] == code


def test_a_number_too_long_to_parse_is_400(make_world) -> None:
    w = make_world(max_body_bytes=20000)
    response = w.post("/chat/completions", b'{"model": "m", "n": 1' + b"0" * 5000 + b"}")
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"
    assert w.wakes() == []


def test_an_unknown_model_is_404_listing_the_known_ones(make_world) -> None:
    w = make_world()
    response = w.chat(model="gpt-9")
    error = error_of(response)
    assert response.status_code == 404 and error["code"] == "model_not_found"
    assert MODEL in error["message"] and w.wakes() == []
    odd = w.chat(model="\ud800\x00" + "x" * 3000)  # a lone surrogate, NUL, long
    assert odd.status_code == 404 and len(error_of(odd)["message"]) < 300


def test_a_store_failure_is_an_openai_format_503(make_world, monkeypatch) -> None:
    w = make_world()

    def unavailable() -> None:
        raise TemporaryError("the store did not answer")

    monkeypatch.setattr(w.store, "get_kill", unavailable)  # injected fault, as the adapter raises
    response = w.chat()
    assert response.status_code == 503 and error_of(response)["code"] == "gateway_unavailable"


def test_a_body_over_the_limit_is_413(make_world) -> None:
    w = make_world()
    response = w.chat(padding="x" * 5000)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"


def test_unknown_routes_and_methods_are_refused(make_world) -> None:
    w = make_world()
    assert w.post("/files", {"model": MODEL}).status_code == 404
    auth = {"Authorization": f"Bearer {KEY}"}
    assert w.client.get("/v1/chat/completions", headers=auth).status_code == 405


def test_kill_switch_is_503_at_once_naming_who_and_never_wakes(make_world) -> None:
    w = make_world()
    w.service.handle(KillRequested("k1", w.clock.now(), reason="maintenance", by="alice"))
    before = w.clock.now()
    response = w.chat()
    error = error_of(response)
    assert response.status_code == 503 and error["code"] == "kill_switch_engaged"
    assert "alice" in error["message"] and "maintenance" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert w.clock.now() == before  # not held
    assert w.wakes() == [] and w.compute.acted("start") == []


def test_a_spend_cap_is_503_at_once_and_never_wakes(make_world) -> None:
    w = make_world()
    state = w.store.get_pool("gpu")
    from dataclasses import replace

    w.store.transact(lambda tx: tx.save_pool(replace(state, paused="daily cap $1.00 reached")))
    response = w.chat()
    assert response.status_code == 503 and error_of(response)["code"] == "spend_cap_reached"
    assert "$1.00" in error_of(response)["message"] and w.wakes() == []


# --- warm routing -------------------------------------------------------------------


def test_a_warm_request_goes_to_the_least_loaded_ready_vm(make_world) -> None:
    w = make_world()
    w.warm()
    w.ready("vm-0", running=3)
    w.ready("vm-1", running=0)
    response = w.chat()
    assert response.status_code == 200, response.data
    assert response.get_json()["choices"][0]["message"]["content"]
    assert "X-Yoyo-Cold-Start" not in response.headers
    assert (w.engines["vm-0"].succeeded["length"], w.engines["vm-1"].succeeded["length"]) == (0, 1)
    models = w.client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).get_json()
    assert models["data"] == [
        {
            "id": MODEL,
            "object": "model",
            "created": 0,
            "owned_by": "yoyo",
            "pool": "gpu",
            "warm": True,
        }
    ]


def test_completions_embeddings_and_streams_pass_through(make_world) -> None:
    w = make_world()
    w.warm("vm-0")
    text = w.post("/completions", {"model": MODEL, "prompt": "a", "max_tokens": 2})
    assert text.status_code == 200 and text.get_json()["object"] == "text_completion"
    emb = w.post("/embeddings", {"model": MODEL, "input": ["a", "b"]})
    assert emb.status_code == 200 and len(emb.get_json()["data"]) == 2
    stream = w.chat(stream=True)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    events = [line for line in stream.get_data().split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]" and len(events) >= 5


# --- the cold pool --------------------------------------------------------------------


def test_a_cold_pool_gets_one_wake_and_the_request_is_forwarded_once_ready(make_world) -> None:
    w = make_world()
    woke_at: list[float] = []

    def vm_boots() -> None:
        if w.compute.status.get("vm-0") == "RUNNING" and not woke_at:
            woke_at.append(w.clock.now())
        if woke_at and w.clock.now() - woke_at[0] >= 90 and w.beats == 0:
            w.ready("vm-0")

    w.on_pause.append(vm_boots)
    response = w.chat()
    assert response.status_code == 200, response.data
    held = float(response.headers["X-Yoyo-Cold-Start"])
    assert 90 <= held <= 95
    assert len(w.wakes()) == 1 and len(w.compute.acted("start")) == 1
    [event] = [e for e in w.store.events(pool="gpu", limit=1000) if e.kind == "cold-start"]
    phases = event.data["phases"]
    order = ["arrived_at", "wake_at", "ready_at", "forwarded_at", "first_byte_at"]
    assert all(phases[a] <= phases[b] for a, b in itertools.pairwise(order)), phases


def test_past_the_hold_it_is_503_with_retry_after(make_world) -> None:
    w = make_world(hold_s=30)
    response = w.chat()
    assert response.status_code == 503 and error_of(response)["code"] == "cold_start_timeout"
    assert int(response.headers["Retry-After"]) > 0
    assert len(w.wakes()) == 1  # the lease is young: no second wake within the hold


def test_a_kill_engaged_while_held_ends_the_hold_with_the_reason(make_world) -> None:
    w = make_world()
    w.on_pause.append(
        lambda: w.service.handle(KillRequested("k", w.clock.now(), reason="budget", by="ops"))
    )
    response = w.chat()
    assert response.status_code == 503 and error_of(response)["code"] == "kill_switch_engaged"


def test_held_requests_are_bounded_429_beyond(make_world) -> None:
    w = make_world(max_held=1)
    release = threading.Event()

    async def held_until_released(seconds: float) -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)
        w.clock.advance(seconds)
        w.ready("vm-0")

    w.gateway.view.sleep = held_until_released
    first: list[Any] = []
    holder = threading.Thread(target=lambda: first.append(w.chat()))
    holder.start()
    try:
        for _ in range(200):
            if w.gateway.forwarder.held == 1:
                break
            threading.Event().wait(0.01)
        second = w.chat()
        assert second.status_code == 429 and error_of(second)["code"] == "too_many_held_requests"
        assert int(second.headers["Retry-After"]) > 0
    finally:
        release.set()
        holder.join(10)
    assert first and first[0].status_code == 200


def test_a_held_request_keeps_the_lease_alive(make_world) -> None:
    w = make_world(hold_s=900)
    response = w.chat()  # the VM never gets ready: held to the end
    assert response.status_code == 503
    # 900 s held on a 600 s lease: the gateway extended it before it lapsed.
    assert len(w.wakes()) >= 2
    lease = w.store.get_pool("gpu").lease
    assert lease is not None and lease.valid(w.clock.now() - 1)


# --- VMs lost mid-request ---------------------------------------------------------------


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_a_vm_lost_before_answering_is_retried_on_another_ready_vm(make_world) -> None:
    w = make_world()
    w.warm()
    w.ready("vm-0", address=closed_port())  # least loaded, but gone
    w.ready("vm-1", running=2)
    response = w.chat()
    assert response.status_code == 200, response.data
    assert w.engines["vm-1"].succeeded["length"] == 1


def test_a_vm_lost_with_no_other_is_held_for_the_restart(make_world) -> None:
    w = make_world()
    w.warm()
    w.ready("vm-0", address=closed_port())

    def restarted() -> None:
        if w.clock.now() - w.store.get_pool("gpu").lease.granted_at > 60:  # type: ignore[union-attr]
            hb = Heartbeat(
                "vm-0", "boot-2", w.clock.now(), w.clock.now(), address=w.servers["vm-0"]
            )
            w.service.handle(HeartbeatReceived(f"r{w.clock.now()}", w.clock.now(), "gpu", hb))

    w.on_pause.append(restarted)
    response = w.chat()
    assert response.status_code == 200, response.data


def test_a_vm_that_refused_one_connection_is_tried_again_once_heard_from(make_world) -> None:
    w = make_world()
    w.warm()
    w.ready("vm-0", address=closed_port())  # the same boot, momentarily unreachable
    w.on_pause.append(lambda: w.ready("vm-0"))  # …heartbeats again: alive after all
    response = w.chat()
    assert response.status_code == 200, response.data
    assert w.engines["vm-0"].succeeded["length"] == 1


def read_request(conn: socket.socket) -> None:
    """Read one whole HTTP request (closing with unread bytes would reset the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


def dying_vm() -> Iterator[str]:
    """A VM that starts a stream, sends one event, and disappears (TCP close mid-body)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            event = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(5)


def test_a_stream_whose_vm_is_lost_ends_with_an_error_event(make_world) -> None:
    w = make_world()
    w.warm()
    vm = dying_vm()
    w.ready("vm-0", address=next(vm))
    try:
        response = w.chat(stream=True)
        body = response.get_data()
    finally:
        vm.close()
    events = [e for e in body.split(b"\n\n") if e]
    assert b'"Hi"' in events[0]
    last = json.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "vm_lost"
    assert w.gateway.forwarder.in_flight == {"vm-0": 0}


def test_two_gateway_instances_at_a_cold_pool_record_one_wake(make_world) -> None:
    """Two instances (separate processes in the cloud) share only the store."""
    w = make_world()
    booted = threading.Lock()

    def vm_boots_after_a_while() -> None:
        time.sleep(0.002)  # let the other instance's thread run
        with booted:
            if w.beats == 0 and w.compute.acted("start") and w.clock.now() > 1_800_000_030:
                w.ready("vm-0")

    w.on_pause.append(vm_boots_after_a_while)
    other = Server(asgi_app(gateway_of(w, w.pause)))
    second = Client(other.url)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"Authorization": f"Bearer {KEY}"}
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda: answers.append(w.chat())),
        threading.Thread(
            target=lambda: answers.append(
                second.post("/v1/chat/completions", json=body, headers=headers)
            )
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    second.close()
    other.stop()
    assert [a.status_code for a in answers] == [200, 200]
    assert len(w.wakes()) == 1 and len(w.compute.acted("start")) == 1


def test_a_stream_is_relayed_event_by_event_never_buffered(make_world) -> None:
    """The VM holds its second event until the client has received the first."""
    w = make_world()
    w.warm()
    first_seen = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def vm() -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for event in (b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"):
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                if not first_seen.wait(10):  # a buffering gateway never shows the first
                    return
            conn.sendall(b"0\r\n\r\n")

    thread = threading.Thread(target=vm, daemon=True)
    thread.start()
    try:
        w.ready("vm-0", address=f"127.0.0.1:{listener.getsockname()[1]}")
        response = w.chat(stream=True, buffered=False)
        chunks = iter(response.response)
        assert next(chunks) == b'data: {"n": 1}\n\n'
        first_seen.set()
        assert b"".join(chunks) == b'data: {"n": 2}\n\ndata: [DONE]\n\n'
    finally:
        first_seen.set()
        listener.close()
        thread.join(10)


def test_a_pool_whose_every_vm_fails_to_start_is_refused_not_held(make_world) -> None:
    w = make_world()
    quota = "QUOTA_EXCEEDED: Quota 'GPUS_ALL_REGIONS' exceeded"

    def no_gpu_quota(kind: str, instance: str, request_id: str) -> None:
        # Every start is refused, and only starts: the gateway's load report reconciles
        # the pool too, and may stop a VM whose start failed (a list of faults for "the
        # next two calls" would be taken by that stop).
        if kind == "start":
            raise PermanentError(quota)

    w.compute.on_call = no_gpu_quota
    started = w.clock.now()
    ticks: list[float] = []

    def scheduler() -> None:  # the tick, every 30 s: the pool tries its next instance
        if not ticks or w.clock.now() - ticks[-1] >= 30:
            ticks.append(w.clock.now())
            w.service.handle(Tick(f"tick-{len(ticks)}", w.clock.now()))

    w.on_pause.append(scheduler)
    response = w.chat()
    error = error_of(response)
    assert response.status_code == 503 and error["code"] == "pool_unavailable", error
    assert "GPUS_ALL_REGIONS" in error["message"]
    assert w.clock.now() - started < 60  # refused once the errors were known, not at hold_s


# --- the routing view: cached, refreshed behind, bounded ----------------------------------


class CountingUpstream:
    def __init__(self, inner: Any) -> None:
        self.inner, self.posts = inner, []  # type: ignore[var-annotated]

    async def post(self, address: str, path: str, body: bytes) -> Any:
        self.posts.append(address)
        return await self.inner.post(address, path, body)


def test_a_lost_vm_is_skipped_by_every_request_until_heard_from_again(make_world) -> None:
    w = make_world()
    w.warm()
    gone = closed_port()
    w.ready("vm-0", address=gone)  # least loaded, but gone
    w.ready("vm-1", running=2)
    counting = CountingUpstream(w.gateway.forwarder.upstream)
    w.gateway.forwarder.upstream = counting
    assert [w.chat().status_code for _ in range(3)] == [200, 200, 200]
    assert counting.posts.count(gone) == 1  # only the first request tried it
    w.clock.advance(1)
    w.ready("vm-0")  # heard from again (its real address): routable again
    w.gateway.view.forget("gpu")  # (the next request reads the pool, not waiting out its age)
    assert w.chat().status_code == 200 and counting.posts[-1] == w.servers["vm-0"]


def test_a_kill_is_refused_once_the_view_is_older_than_its_bound(make_world) -> None:
    """The documented bound: a request may be routed on a kill switch read up to
    ``kill_s`` (1 s) ago; past that every request sees the kill switch."""
    w = make_world()
    w.warm("vm-0")
    assert w.chat().status_code == 200  # the view is read now
    w.service.handle(KillRequested("k", w.clock.now(), reason="stop", by="ops"))
    w.clock.advance(w.gateway.view.kill_s + 0.001)
    response = w.chat()
    assert response.status_code == 503 and error_of(response)["code"] == "kill_switch_engaged"


def test_steady_traffic_reads_the_store_at_most_once_per_document_second(make_world) -> None:
    """100 warm requests over 10 s: the pool (1 pool + 2 heartbeat documents) is read at
    most once per 3 s, the (polled) kill switch at most once per second."""
    w = make_world()
    w.warm("vm-0", "vm-1")
    reads = {"pool": 0, "kill": 0}
    get_pool, get_kill = w.store.get_pool, w.store.get_kill

    def counted(kind: str, fn: Any) -> Any:
        def call(*args: Any) -> Any:
            reads[kind] += 1
            return fn(*args)

        return call

    w.store.get_pool = counted("pool", get_pool)  # type: ignore[method-assign]
    w.store.get_kill = counted("kill", get_kill)  # type: ignore[method-assign]
    for _ in range(100):
        assert w.chat().status_code == 200
        w.clock.advance(0.1)
    assert reads["pool"] * 3 <= 10 + 3 and reads["kill"] <= 10 + 1, reads


# --- failures that follow a request (issue 24) ------------------------------------------


class DroppingVm:
    """An inference server that takes a request with ``poison`` in it and closes without
    a word (as a server whose handler crashes on it), and answers any other."""

    ANSWER = json.dumps(
        {"object": "chat.completion", "choices": [{"message": {"content": "ok"}}]}
    ).encode()

    def __init__(self) -> None:
        self.dropped = 0
        self.answered = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                if b"poison" in body:
                    self.dropped += 1
                    return
                self.answered += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(self.ANSWER), self.ANSWER)
                )

    def close(self) -> None:
        self.listener.close()


def test_a_request_the_model_server_drops_is_a_502_after_two_and_the_vm_stays_routable(
    make_world,
) -> None:
    w = make_world()
    w.warm()
    vm = DroppingVm()
    try:
        w.ready("vm-0", address=vm.address)
        response = w.chat(poison=True)
        error = error_of(response)
        assert response.status_code == 502 and error["code"] == "upstream_lost", error
        assert vm.dropped == 2  # lost twice, never a third time
        # No heartbeat since: the VM was not marked lost for everyone.
        again = w.chat()
        assert again.status_code == 200 and "X-Yoyo-Cold-Start" not in again.headers
        assert vm.answered == 1
    finally:
        vm.close()


def test_a_new_gateway_instance_that_cannot_connect_yet_does_not_mark_the_vm_lost(
    make_world,
) -> None:
    """Direct VPC may take a minute to connect a new instance: its connect failures are
    the instance's. The request skips the VM until it is heard from again; other
    requests still try it."""
    w = make_world()
    w.gateway.forwarder.network_warmup_s = 60.0
    w.warm()
    gone = closed_port()
    w.ready("vm-0", address=gone)  # unreachable from this instance, for now
    w.ready("vm-1", running=2)
    counting = CountingUpstream(w.gateway.forwarder.upstream)
    w.gateway.forwarder.upstream = counting
    assert [w.chat().status_code for _ in range(2)] == [200, 200]
    assert counting.posts.count(gone) == 2  # each request tried it: not marked lost
    assert w.gateway.forwarder.unreachable == {}


def test_every_answer_has_a_request_id_and_a_405_says_what_is_allowed(make_world) -> None:
    w = make_world()
    w.warm("vm-0")
    answers = [
        w.chat(),
        w.post("/chat/completions", {"model": MODEL}, key="nope"),
        w.client.get("/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}),
        w.client.post("/v1/models", headers={"Authorization": f"Bearer {KEY}"}),
    ]
    assert [a.status_code for a in answers] == [200, 401, 405, 405]
    ids = {a.headers["x-request-id"] for a in answers}
    assert len(ids) == 4 and all(i.startswith("req_") for i in ids)
    assert answers[2].headers["Allow"] == "POST" and answers[3].headers["Allow"] == "GET"


def test_a_number_that_is_not_finite_is_a_400_and_never_forwarded(make_world) -> None:
    w = make_world()
    w.warm("vm-0")
    for number in (b"1e400", b"NaN", b"-Infinity"):
        body = b'{"model": "%s", "messages": [], "max_tokens": %s}' % (MODEL.encode(), number)
        response = w.post("/chat/completions", body)
        assert response.status_code == 400 and error_of(response)["code"] == "invalid_number"
    assert sum(w.engines["vm-0"].succeeded.values()) == 0


def test_a_client_that_hangs_up_cancels_its_call_to_the_vm(make_world) -> None:
    """The VM takes the request and thinks; the client gives up: the gateway closes its
    connection to the VM (vLLM aborts a request whose connection closes)."""
    w = make_world()
    w.warm()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = threading.Event()

    def slow_vm() -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            conn.settimeout(30)
            if conn.recv(1) == b"":  # the gateway closed it: the request is cancelled
                closed.set()

    thread = threading.Thread(target=slow_vm, daemon=True)
    thread.start()
    try:
        w.ready("vm-0", address=f"127.0.0.1:{listener.getsockname()[1]}")
        impatient = Client(f"http://{w.client.http.base_url.netloc.decode()}", timeout=1.0)
        with pytest.raises(httpx.TimeoutException):
            impatient.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        impatient.close()
        assert closed.wait(10), "the call to the VM was not cancelled"
        for _ in range(100):
            if w.gateway.forwarder.in_flight.get("vm-0") == 0:
                break
            time.sleep(0.02)
        assert w.gateway.forwarder.in_flight.get("vm-0") == 0
    finally:
        listener.close()
        thread.join(5)


def test_a_vm_is_marked_lost_by_timeouts_of_two_requests_not_one_request_twice(
    make_world,
) -> None:
    w = make_world()
    w.warm()
    silent = socket.socket()  # accepts (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    w.gateway.forwarder.upstream = HttpUpstream(VLLM_KEY, read_timeout_s=0.3)
    try:
        w.ready("vm-0", address=f"127.0.0.1:{silent.getsockname()[1]}")
        first = w.chat()  # timed out twice: a 502 for it, the VM still routable
        assert first.status_code == 502 and error_of(first)["code"] == "upstream_lost"
        assert w.gateway.forwarder.unreachable == {}
        second = w.chat()  # a second request timed out there: the VM is skipped
        assert second.status_code == 503 and error_of(second)["code"] == "cold_start_timeout"
        assert ("vm-0", "boot-vm-0") in w.gateway.forwarder.unreachable
    finally:
        silent.close()


def test_a_client_that_leaves_a_stream_closes_the_vms_stream(make_world) -> None:
    w = make_world()
    w.warm()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = threading.Event()

    def streaming_vm() -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            event = b'data: {"n": 1}\n\n'
            conn.settimeout(30)
            try:
                for _ in range(300):  # an endless stream, until the gateway closes it
                    conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                    time.sleep(0.05)
            except OSError:
                closed.set()
                return
            if conn.recv(1) == b"":
                closed.set()

    thread = threading.Thread(target=streaming_vm, daemon=True)
    thread.start()
    try:
        w.ready("vm-0", address=f"127.0.0.1:{listener.getsockname()[1]}")
        response = w.chat(stream=True, buffered=False)
        assert next(iter(response.response)).startswith(b'data: {"n": 1}')
        response.response.close()  # type: ignore[union-attr]  # the client leaves
        assert closed.wait(20), "the VM's stream was not closed"
        for _ in range(100):
            if w.gateway.forwarder.in_flight.get("vm-0") == 0:
                break
            time.sleep(0.02)
        assert w.gateway.forwarder.in_flight.get("vm-0") == 0
    finally:
        listener.close()
        thread.join(20)


class LoadingVm:
    """A model server still loading its model: every request is a 503 ("Loading model"),
    as vLLM's and llama.cpp's servers answer before the model is up."""

    def __init__(self) -> None:
        self.refused = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.refused += 1
                body = b'{"error": {"code": 503, "message": "Loading model"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_vm_that_answers_503_while_loading_is_skipped_not_relayed(make_world) -> None:
    """A server that says it is not ready (503) has not run the request: the gateway
    tries another ready VM (or holds the request) instead of handing the 503 to the
    client; the VM is not marked lost for everyone."""
    w = make_world()
    w.warm()
    loading = LoadingVm()
    try:
        w.ready("vm-0", address=loading.address)  # least loaded: tried first
        w.ready("vm-1", running=2)
        response = w.chat()
        assert response.status_code == 200, response.data
        assert loading.refused == 1
        assert w.gateway.forwarder.unreachable == {}
    finally:
        loading.close()
