"""on_batch: the batch controller's own entry point (never the lifecycle tick)."""

from __future__ import annotations

import json

from fakes import RecordingPublisher
from functions.conftest import POOL
from yoyo_control import bootstrap, names


def _submit(world) -> str:
    batches = bootstrap.build_batch_service(world.service.config, world.store, RecordingPublisher())
    line = {"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}
    return batches.submit(json.dumps(line).encode() + b"\n", POOL).id


def test_a_nudge_counts_the_pools_batch_demand_and_wakes_it(world, call, envelope) -> None:
    _submit(world)
    response = call(names.ENTRY_BATCH, envelope({"pool": POOL}, message_id="b-1"))
    assert response.status_code == 200
    state = world.store.get_pool(POOL)
    assert state.batch.shards == 1 and state.demand.depth == 0  # its own unit and field
    assert [c.kind for c in world.compute.acted("start")] == ["start"]


def test_a_tick_reads_no_batch(world, call, envelope) -> None:
    _submit(world)
    call(names.ENTRY_POINTS[names.TOPIC_TICK], envelope({}, message_id="t-1"))
    assert world.store.get_pool(POOL).batch.shards == 0  # only the controller tells it
    assert world.compute.acted("start") == []


def test_any_payload_runs_every_pool_and_is_acknowledged(world, call, envelope) -> None:
    _submit(world)
    for i, payload in enumerate([{}, {"pool": "nope"}, [1, 2], "\ud800"]):
        event = envelope(payload, message_id=f"x-{i}")
        assert call(names.ENTRY_BATCH, event).status_code == 200
    assert world.store.get_pool(POOL).batch.shards == 1
