"""The batch work path end to end on Google's emulators and the Storage API emulator.

yoyoctl's BatchService → Cloud Storage (input) + Firestore (record) + Pub/Sub (one shard
reference per message on the pool's filtered work subscription, a nudge on the batch
controller's own topic ``yoyo-batch``) → on_batch counts the pool's batch demand (3
shards: ``PoolState.batch``) and the lifecycle wakes the pool (Compute REST stub) → the
real worker pulls the shards from the emulator, drives a simulated inference server,
writes checkpoints to Cloud Storage and acknowledges → the batch controller (on_batch,
never the tick) finalizes, streaming: every custom_id once in the output object, the
record completed, the pool's batch demand back to zero; the producer's demand untouched.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

import storage_emulator
from yoyo_control import bootstrap, names
from yoyo_control.adapters.pubsub import PubSubPublisher
from yoyo_control.batch import work
from yoyo_control.domain.batch import Status
from yoyo_control.local.inference import Engine, make_handler
from yoyo_control.worker.__main__ import Worker, WorkerConfig
from yoyo_control.worker.queue import WorkQueue
from yoyo_control.worker.shard import ShardRunner

pytestmark = pytest.mark.emulator

BUCKET = f"yoyo-batch-e2e-{uuid.uuid4().hex[:8]}"
SUBSCRIPTION = "yoyo-work-sub-default"


@pytest.fixture(scope="module")
def storage_host() -> Iterator[str]:
    emulator = storage_emulator.start_storage()
    try:
        storage_emulator.storage_client(emulator.host).create_bucket(BUCKET)
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture
def world_overrides(storage_host: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{storage_host}")
    # The world's pool asks one instance per 50 queued messages; a batch's demand is its
    # pending shards (one work message each), so this pool asks one per shard.
    pool = {
        "zone": "us-central1-a",
        "instances": ["yoyo-default-0"],
        "hourly_price_usd": 0.35,
        "idle_timeout_s": 600,
        "lease_s": 900,
        "queue_threshold": 1,
    }
    return {
        "batch": {"bucket": BUCKET, "shard_lines": 20, "ack_deadline_s": 10},
        "pools": {"default": pool},
    }


@pytest.fixture
def server() -> Iterator[tuple[str, Engine]]:
    engine = Engine("sim", 0.001, 8)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(engine, 0.0))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", engine
    finally:
        httpd.shutdown()
        httpd.server_close()


def lines(n: int) -> bytes:
    out = []
    for i in range(n):
        body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 2}
        line = {"custom_id": f"e2e-{i}", "method": "POST", "url": "/v1/chat/completions"}
        out.append(json.dumps({**line, "body": body}))
    return ("\n".join(out) + "\n").encode()


def test_a_batch_travels_the_work_path_and_comes_back_exactly_once(world, server) -> None:
    server_url, engine = server
    world.subscribe("batch")
    world.subscribe("tick")
    world.admin.create_topic(world.topic(names.TOPIC_WORK))
    world.admin._call(
        "PUT",
        world.admin.subscription_path(SUBSCRIPTION),
        {
            "topic": world.admin.topic_path(world.topic(names.TOPIC_WORK)),
            "ackDeadlineSeconds": 10,
            "filter": f'attributes.pool = "{world.pool}"',
        },
    )
    publisher = PubSubPublisher(world.project)
    config = world.service.config
    batches = bootstrap.build_batch_service(config, world.store, publisher)
    try:
        batch = batches.submit(lines(60), world.pool)  # 3 shards: depth 3 >= queue_threshold 1
    finally:
        publisher.close()
    world.eventually(lambda: world.status() == "RUNNING", "the submit woke the pool")
    state = world.store.get_pool(world.pool)
    assert state.batch.shards == 3 and state.demand.depth == 0  # its own unit and field

    worker_config = WorkerConfig(
        project=world.project,
        subscription=SUBSCRIPTION,
        server_url=server_url,
        pubsub_url=f"http://{world.emulators.pubsub.host}",
        bucket=BUCKET,
        ack_deadline_s=10,
    )
    runner = ShardRunner(bootstrap.build_storage(config), server_url, concurrency=8)
    worker = Worker(
        worker_config,
        WorkQueue(worker_config.pubsub_url, world.project, SUBSCRIPTION),
        runner,
    )
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        done = [work.done_key(batch.id, shard) for shard in range(3)]
        world.eventually(  # (each shard also has started and checkpoint objects: count done)
            lambda: all(runner.storage.size(key) is not None for key in done),
            "three shards done",
        )
        world.clock.advance(60)
        world.publish("tick", {})  # the lifecycle's tick: it never reads a batch
        world.publish("batch", {})  # the batch controller's scheduled run
        world.eventually(
            lambda: world.store.get_batch(batch.id).status is Status.COMPLETED,
            "the batch controller finalized the batch",
        )
    finally:
        worker.stop.set()
        thread.join(30)
    output = runner.storage.get(f"batches/{batch.id}/output.jsonl") or b""
    ids = [json.loads(x)["custom_id"] for x in output.splitlines()]
    assert sorted(ids) == sorted(f"e2e-{i}" for i in range(60))
    assert sum(engine.succeeded.values()) == 60
    world.eventually(
        lambda: world.store.get_pool(world.pool).batch.shards == 0, "the batch demand cleared"
    )
