"""End to end: a message published to Pub/Sub reaches the VM through every real part.

Pub/Sub emulator (push subscription) → functions-framework (push body → CloudEvent) →
functions/main.py → service → Firestore emulator (state) → Compute Engine adapter → REST
stub (the VM). The tests assert on the VM's status in the stub and on the stored state.
"""

from __future__ import annotations

import json
import time

import pytest

from yoyo_control import names
from yoyo_control.adapters.pubsub import PubSubPublisher

pytestmark = pytest.mark.emulator


def fact_recorded(world, message_id: str) -> bool:
    return any(e.message_id == message_id for e in world.events("fact"))


def start_by_cycle(world) -> str:
    world.subscribe("cycle")
    mid = world.publish("cycle", {"pool": world.pool, "window": "30m"})
    world.eventually(lambda: world.status() == "RUNNING", "the cycle started the VM")
    world.eventually(lambda: fact_recorded(world, mid), "the cycle fact is in Firestore")
    return mid


def test_a_scheduled_cycle_starts_the_pool(world):
    start_by_cycle(world)
    lease = world.store.get_pool(world.pool).lease
    assert lease.holder == "cycle" and lease.expires_at == world.clock.now() + 1800
    assert [c.instance for c in world.stub.acted("start")] == [world.instance]


def test_a_tick_after_idle_stops_the_pool(world):
    start_by_cycle(world)
    world.subscribe("heartbeat")
    world.subscribe("tick")
    # The agent's own publisher, through the emulator:
    beat = {
        "pool": world.pool,
        "instance": world.instance,
        "boot_id": "boot-1",
        "sent_at": world.clock.now(),
        "busy": False,
        "running": 0,
        "waiting": 0,
    }
    publisher = PubSubPublisher(world.project)
    try:
        signed = json.dumps(world.sign(beat)).encode()
        publisher.publish(world.topic(names.TOPIC_HEARTBEAT), signed)
    finally:
        publisher.close()
    world.eventually(
        lambda: world.instance in world.store.get_pool(world.pool).heartbeats,
        "the heartbeat is stored",
    )
    world.clock.advance(601)
    world.publish("tick", {})
    world.eventually(lambda: world.status() == "TERMINATED", "the tick stopped the idle VM")
    assert world.store.get_pool(world.pool).lease is None
    assert any("idle" in e.reason for e in world.events("decision"))


def test_a_budget_over_its_amount_kills_and_stops(world):
    start_by_cycle(world)
    world.subscribe("budget")
    notification = {
        "budgetDisplayName": "yoyo-monthly",
        "alertThresholdExceeded": 1.0,
        "costAmount": 152.37,
        "costIntervalStart": "2026-11-01T07:00:00Z",
        "budgetAmount": 150.0,
        "budgetAmountType": "SPECIFIED_AMOUNT",
        "currencyCode": "USD",
    }
    world.publish(
        "budget",
        notification,
        billingAccountId="01D4EE-079462-DFD6EC",
        budgetId=world.budget_id,
        schemaVersion="1.0",
    )
    world.eventually(lambda: world.status() == "TERMINATED", "the budget kill stopped the VM")
    kill = world.store.get_kill()
    assert kill.engaged and kill.reason == "budget: 152.37 of 150.00 USD"


def test_a_duplicate_delivery_acts_once(world):
    # Two push subscriptions on one topic: every message is delivered twice, same id.
    world.subscribe("cycle", "yoyo-cycle-push-a")
    world.subscribe("cycle", "yoyo-cycle-push-b")
    entry = names.ENTRY_POINTS[names.TOPIC_CYCLE]
    before = world.answers.count(entry)
    mid = world.publish("cycle", {"pool": world.pool, "window": "30m"})
    world.eventually(
        lambda: world.answers.count(entry) >= before + 2, "both deliveries acknowledged"
    )
    assert world.status() == "RUNNING"
    assert len(world.stub.acted("start")) == 1
    assert [e.message_id for e in world.events("fact")] == [mid]


ACK_DEADLINE_S = 10  # Pub/Sub's shortest: an unacknowledged push is redelivered after it


def test_a_poison_message_is_acknowledged_not_redelivered(world):
    world.subscribe("control", ack_deadline_s=ACK_DEADLINE_S)
    entry = names.ENTRY_POINTS[names.TOPIC_CONTROL]
    mid = world.publish("control", b"\x00 not json")
    world.eventually(
        lambda: any(e.message_id == mid for e in world.events("rejected")), "the rejection"
    )
    assert world.answers.count(entry, 500) == 0 and world.answers.count(entry) == 1
    # Wait out the acknowledgement deadline (and a margin): a message the function had not
    # acknowledged would have been pushed again by now.
    time.sleep(ACK_DEADLINE_S + 3)
    assert world.answers.count(entry) == 1 and world.answers.count(entry, 500) == 0
    assert [e.message_id for e in world.events("rejected")] == [mid]


def test_a_message_the_function_did_not_acknowledge_is_pushed_again_within_the_deadline(world):
    """The control for the test above: its wait is long enough to see a redelivery."""
    world.subscribe("control", ack_deadline_s=ACK_DEADLINE_S)
    entry = names.ENTRY_POINTS[names.TOPIC_CONTROL]
    world.stub.fail_next(1, 503, methods=("start",))  # the first delivery answers 500
    world.publish("control", {"command": "start", "pool": world.pool, "for": "30m"})
    world.eventually(lambda: world.answers.count(entry, 500) == 1, "the failed delivery")
    world.eventually(
        lambda: world.answers.count(entry) == 1, "the redelivery", timeout_s=ACK_DEADLINE_S + 3
    )
