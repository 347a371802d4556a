"""Fixtures of the batch suite: a fresh ``Bench`` (tests/batch_bench.py) per test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batch_bench import POOL, SUBSCRIPTION, Bench, Clock, serve_wsgi
from yoyo_control import names
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.batch.service import BatchService
from yoyo_control.config import DEFAULT_LOCAL, parse_config
from yoyo_control.local.bus import Broker, BusApp, LocalBusPublisher
from yoyo_control.local.inference import Engine, make_handler


@pytest.fixture
def bench_factory(tmp_path: Path) -> Iterator[Callable[..., Bench]]:
    cleanups: list[Callable[[], None]] = []

    def make(token_latency_s: float = 0.001, max_num_seqs: int = 8, **batch: Any) -> Bench:
        config = parse_config(
            {
                **DEFAULT_LOCAL,
                "local": {"state_dir": str(tmp_path)},
                "batch": {"shard_lines": 50, **batch},
            }
        )
        broker = Broker(config.project)
        work_topic = config.topic(names.TOPIC_WORK)
        broker.create_subscription(
            SUBSCRIPTION, work_topic, None, f'attributes.pool = "{POOL}"', 10
        )
        queue_topic = config.topic(names.TOPIC_QUEUE)
        broker.create_subscription("queue-seen", queue_topic, None, "", 10)
        bus_url = serve_wsgi(BusApp(broker), cleanups)
        engine = Engine("sim", token_latency_s, max_num_seqs)
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(engine, 0.0))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cleanups.append(server.shutdown)
        cleanups.append(server.server_close)
        storage = LocalStorage(tmp_path / "objects")
        store = SqliteStore(tmp_path / "yoyo.sqlite3")
        cleanups.append(store.close)
        clock = Clock()
        service = BatchService(
            store, storage, LocalBusPublisher(bus_url, config.project), clock, config
        )
        bench = Bench(
            service, storage, broker, engine, f"http://127.0.0.1:{server.server_address[1]}",
            bus_url, clock,
        )  # fmt: skip
        cleanups.append(bench.stop_workers)
        return bench

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def bench(bench_factory: Callable[..., Bench]) -> Bench:
    return bench_factory()
