"""Issue 12 (trust) at the entry points: each test is named after its case and failed
before its fix. Real functions-framework app, real bootstrap, the SQLite store (the
Firestore emulator runs the same deliveries in test_fuzz.py)."""

from __future__ import annotations

from yoyo_control import names

CYCLE = names.ENTRY_POINTS[names.TOPIC_CYCLE]
CONTROL = names.ENTRY_POINTS[names.TOPIC_CONTROL]


# --- case 8: fact ids are keyed by source and message id ----------------------------------


def test_case8_a_control_start_reusing_a_cycle_message_id_is_not_a_duplicate(world, call, envelope):
    cycle = envelope({"pool": world.pool}, message_id="42", topic="yoyo-cycle")
    assert call(CYCLE, cycle).status_code == 200
    stop = envelope(
        {"command": "stop", "pool": world.pool},
        message_id="7",
        topic="yoyo-control",
        publish_time="2026-11-23T04:06:20Z",
    )
    assert call(CONTROL, stop).status_code == 200
    assert world.store.get_pool(world.pool).lease is None
    start = envelope(
        {"command": "start", "pool": world.pool, "for": "1h"},
        message_id="42",
        topic="yoyo-control",
        publish_time="2026-11-23T04:06:30Z",
    )
    assert call(CONTROL, start).status_code == 200
    lease = world.store.get_pool(world.pool).lease
    assert lease is not None and lease.holder == "operator"
    assert world.facts().count("42") == 2  # one per source


def test_case8_a_fact_recorded_under_its_old_id_is_still_a_duplicate(world, call, envelope):
    """Stores written before the change hold ``fact:<kind>:<message id>``: a redelivery of
    such a message is still recognised (the old id is checked too)."""
    from yoyo_control.ports import Event

    old = Event("fact:RunRequested:43", "fact", 0.0, world.pool, "43", "RunRequested")
    world.store.transact(lambda tx: tx.append(old))
    cycle = envelope({"pool": world.pool}, message_id="43", topic="yoyo-cycle")
    assert call(CYCLE, cycle).status_code == 200
    assert world.store.get_pool(world.pool).lease is None  # a duplicate: nothing granted
    assert world.facts() == ["43"]
