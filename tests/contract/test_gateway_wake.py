"""Two gateway instances on one store (SQLite, and Firestore on its emulator): concurrent
requests at a cold pool record ONE wake and are all answered once the VM is ready.

Each instance has its own store client, service and gateway, like two Cloud Functions
instances; they share only the store. The VM is a real (simulated) inference server
that announces itself by a heartbeat once Compute says it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from asgi_serving import Client, Server, asgi_app
from fakes import FakeCompute
from inference_servers import VLLM_KEY, serve_inference
from yoyo_control.adapters.clock import SystemClock
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import HeartbeatReceived
from yoyo_control.domain.model import Heartbeat
from yoyo_control.gateway.app import Gateway
from yoyo_control.gateway.auth import KeyRing, digest
from yoyo_control.local.inference import Engine
from yoyo_control.service import Service

CONFIG = parse_config(
    {
        "pools": {"gpu": {"instances": ["vm-0"], "model": "m", "lease_s": 600}},
        "gateway": {"hold_s": 60, "poll_s": 0.2},
    }
)
REQUESTS_PER_INSTANCE = 6


@pytest.fixture
def vm() -> Iterator[str]:
    server = serve_inference(Engine("m", 0.001, max_num_seqs=16))
    yield next(server)
    server.close()


def test_concurrent_requests_at_two_instances_record_one_wake(store_factory, vm: str) -> None:
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    clock = SystemClock()
    services = [Service(store_factory(), compute, clock, CONFIG) for _ in range(2)]
    clients, servers, views = [], [], []
    for service in services:
        gateway = Gateway(
            CONFIG,
            service.store,
            service.handle,
            HttpUpstream(VLLM_KEY, read_timeout_s=10),
            KeyRing([digest("k")]),
            clock,
            record=service.record,
        )
        servers.append(Server(asgi_app(gateway)))
        views.append(gateway.view)
        clients.append(Client(servers[-1].url))

    stop = threading.Event()

    def agent() -> None:  # the VM's agent: ready once Compute runs the VM
        while not stop.wait(0.05):
            if compute.status["vm-0"] == "RUNNING":
                time.sleep(0.3)  # the model loads
                now = clock.now()
                beat = Heartbeat("vm-0", "boot-1", now, now, ready=True, address=vm)
                services[0].handle(HeartbeatReceived("hb-1", now, "gpu", beat))
                return

    answers: list[int] = []
    lock = threading.Lock()

    def ask(client: Any) -> None:
        body = {"model": "m", "prompt": "hi", "max_tokens": 2}
        response = client.http.post(
            "/v1/completions", json=body, headers={"Authorization": "Bearer k"}
        )
        with lock:
            answers.append(response.status_code)

    threads = [threading.Thread(target=agent)]
    threads += [
        threading.Thread(target=ask, args=(client,))
        for client in clients
        for _ in range(REQUESTS_PER_INSTANCE)
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(60)
    finally:
        stop.set()
        for client, server in zip(clients, servers, strict=True):
            client.close()
            server.stop()
        for view in views:
            view.close()  # the kill switch's listener (Firestore)
    assert answers == [200] * (2 * REQUESTS_PER_INSTANCE)
    wakes = [
        e
        for e in services[1].store.events(pool="gpu", limit=1000)
        if e.kind == "fact" and e.message_id.startswith("gateway-wake")
    ]
    assert len(wakes) == 1, [e.message_id for e in wakes]
    assert len(compute.acted("start")) == 1


def test_the_firestore_listener_pushes_the_kill_switch_to_the_gateways_view(
    firestore_factory,
) -> None:
    """With Firestore the view never reads the kill switch per request: the listener
    (on_snapshot) pushes each change, so a kill reaches every gateway instance at no read
    per request (bench/store_ops.py prices the rest)."""
    from polling import eventually
    from yoyo_control.domain.facts import KillRequested
    from yoyo_control.gateway.view import View

    watched, writer = firestore_factory(), firestore_factory()
    view = View(watched, SystemClock())
    try:
        assert view.listening
        view.refresh("gpu")  # the first read (the listener's first push may lag)
        reads: list[str] = []
        real = watched.get_kill
        watched.get_kill = lambda: (reads.append("kill"), real())[1]  # type: ignore[method-assign]
        service = Service(writer, FakeCompute(), SystemClock(), CONFIG)
        service.handle(KillRequested("k1", time.time(), reason="budget", by="ops"))

        def killed() -> bool:
            current = view.current("gpu")
            return current is not None and current.kill.engaged

        eventually(killed, "the kill switch pushed to the view", 10)
        assert reads == []
    finally:
        view.close()
