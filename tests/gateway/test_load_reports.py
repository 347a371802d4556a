"""The gateway reports its load per pool (domain/scaling.load_report → LoadReported),
at most once per pool per ``gateway_load.LOAD_GAP_S`` per instance, and the load's end.

The gateway is served by uvicorn on 127.0.0.1 over a real SQLite store and service, a
real (simulated) inference server, the system clock. Its ``handle`` records what it
would publish (gateway/wire.py encodes it; the decoder test is tests/functions) and
passes it on to the service, as the queue function would.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_serving import Client, Server, asgi_app
from fakes import FakeCompute
from inference_servers import VLLM_KEY, serve_inference
from yoyo_control import messages
from yoyo_control.adapters.clock import SystemClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import Fact, HeartbeatReceived, LoadReported, RunRequested
from yoyo_control.domain.model import Heartbeat
from yoyo_control.errors import TemporaryError
from yoyo_control.gateway import load as gateway_load
from yoyo_control.gateway.app import Gateway
from yoyo_control.gateway.auth import KeyRing, digest
from yoyo_control.gateway.wire import encode_fact
from yoyo_control.local.inference import Engine
from yoyo_control.service import Service

KEY = "sk-load"
MODEL = "tiny-llm"
CONFIG = parse_config(
    {
        "pools": {
            "gpu": {
                "instances": ["vm-0"],
                "model": MODEL,
                "lease_s": 600,
                "max_num_seqs": 2,  # target 1.8: every change of the count crosses a step
            }
        },
        "gateway": {"hold_s": 30, "poll_s": 0.05},
    }
)


class Harness:
    def __init__(self, tmp_path: Path, vm: str) -> None:
        self.clock = SystemClock()
        compute = FakeCompute()
        compute.add("gpu", "vm-0")
        self.service = Service(SqliteStore(tmp_path / "s.db"), compute, self.clock, CONFIG)
        self.vm = vm
        self.sent: list[tuple[float, LoadReported]] = []  # (monotonic, fact)
        self.fail_next = 0
        self.lock = threading.Lock()
        self.gateway = Gateway(
            CONFIG,
            self.service.store,
            self.handle,
            HttpUpstream(VLLM_KEY, read_timeout_s=10),
            KeyRing([digest(KEY)]),
            self.clock,
            record=self.service.record,
            network_warmup_s=0.0,
        )
        self.server = Server(asgi_app(self.gateway))
        self.client = Client(self.server.url)

    def handle(self, fact: Fact) -> Any:
        if not isinstance(fact, LoadReported):
            return self.service.handle(fact)
        sent_at = time.monotonic()
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                raise TemporaryError("publish: deadline exceeded")
        encode_fact(fact)  # what would be published
        handled = self.service.handle(fact)  # what the queue function would do with it
        with self.lock:
            self.sent.append((sent_at, fact))
        return handled

    def warm(self) -> None:
        now = self.clock.now()
        self.service.handle(RunRequested("op", now, "gpu", "operator", "t", 600))
        hb = Heartbeat("vm-0", "boot-1", now, now, ready=True, address=self.vm)
        self.service.handle(HeartbeatReceived("hb-1", now, "gpu", hb))

    def ask(self, n: int) -> list[int]:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        statuses: list[int] = []

        def one() -> None:
            r = self.client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
            )
            with self.lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return statuses

    def settled(self) -> list[LoadReported]:
        """The reports, once the last one says the load ended (a deferred one may follow
        the last answer by up to LOAD_GAP_S)."""
        deadline = time.monotonic() + 10 * gateway_load.LOAD_GAP_S
        while True:
            with self.lock:
                facts = [f for _, f in self.sent]
            if facts and (facts[-1].in_flight, facts[-1].held) == (0, 0):
                return facts
            assert time.monotonic() < deadline, facts
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def _harness(tmp_path: Path, token_latency_s: float) -> Iterator[Harness]:
    server = serve_inference(Engine(MODEL, token_latency_s, max_num_seqs=2))
    h = Harness(tmp_path, next(server))
    yield h
    h.close()
    server.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    yield from _harness(tmp_path, 0.02)


@pytest.fixture
def slow_harness(tmp_path: Path) -> Iterator[Harness]:
    """A VM that takes about 8 × 0.4 s per request: its load outlasts a gap."""
    yield from _harness(tmp_path, 0.4)


def test_a_burst_is_reported_at_most_once_a_second_and_its_end_is_reported(
    harness: Harness,
) -> None:
    harness.warm()
    assert harness.ask(12) == [200] * 12
    facts = harness.settled()
    assert {f.pool for f in facts} == {"gpu"}
    assert facts[0].in_flight >= 1  # the first request is reported at once
    assert len({f.message_id for f in facts}) == len(facts)  # each its own message
    times = [t for t, _ in harness.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= gateway_load.LOAD_GAP_S * 0.9 for gap in gaps), gaps  # the bound
    # 24 changes of the count, each crossing a step: the bound made them few.
    assert len(facts) <= 2 + (times[-1] - times[0]) / gateway_load.LOAD_GAP_S
    # the control plane folded them in: the newest says the load ended
    load = harness.service.store.get_pool("gpu").load
    assert (load.in_flight, load.held) == (0, 0) and load.observed_at is not None
    for fact in facts:  # every one decodes on the queue topic as what was sent
        data = encode_fact(fact)
        decoded = messages.decode_queue(messages.PubSubMessage(data, "1", 0.0), CONFIG)
        assert (decoded.in_flight, decoded.held) == (fact.in_flight, fact.held)  # type: ignore[union-attr]


def test_held_requests_at_a_cold_pool_are_reported_as_held(harness: Harness) -> None:
    done: list[list[int]] = []
    asker = threading.Thread(target=lambda: done.append(harness.ask(3)))
    asker.start()
    deadline = time.monotonic() + 10
    while not any(f.held for _, f in harness.sent):
        assert time.monotonic() < deadline, harness.sent
        time.sleep(0.02)
    now = harness.clock.now()  # the wake went to the service; now the VM is ready
    hb = Heartbeat("vm-0", "boot-1", now, now, ready=True, address=harness.vm)
    harness.service.handle(HeartbeatReceived("hb-1", now, "gpu", hb))
    asker.join(30)
    assert done == [[200] * 3]
    facts = harness.settled()
    assert facts[0].held >= 1 and facts[0].in_flight == 0


def test_a_report_that_could_not_be_sent_is_sent_again_after_the_gap(
    slow_harness: Harness,
) -> None:
    harness = slow_harness
    harness.warm()
    harness.fail_next = 1  # the first publish fails (Pub/Sub deadline)
    assert harness.ask(1) == [200]
    facts = harness.settled()  # retried after the gap with the counts of that moment
    assert harness.fail_next == 0
    assert (facts[0].in_flight, facts[0].held) == (1, 0)  # the request, reported late
    assert (facts[-1].in_flight, facts[-1].held) == (0, 0)
    load = harness.service.store.get_pool("gpu").load
    assert (load.in_flight, load.held) == (0, 0)
