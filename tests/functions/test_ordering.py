"""Reordered delivery: Pub/Sub does not keep order, so a fact's publish time must decide.

An ``unkill`` published before the switch was engaged is stale (the switch's
``changed_at``); a kill always engages. More in test_trust.py (case 2).
"""

from __future__ import annotations

from yoyo_control import names

CONTROL = names.ENTRY_POINTS[names.TOPIC_CONTROL]


def test_an_older_unkill_delivered_late_does_not_lift_a_newer_kill(world, call, envelope):
    kill = envelope(
        {"command": "kill", "reason": "incident"},
        message_id="k-2",
        publish_time="2026-11-23T04:10:00Z",
    )
    stale_unkill = envelope(
        {"command": "unkill"}, message_id="k-1", publish_time="2026-11-23T04:05:00Z"
    )
    assert call(CONTROL, kill).status_code == 200
    assert call(CONTROL, stale_unkill).status_code == 200
    assert world.store.get_kill().engaged


def test_a_stale_heartbeat_delivered_late_changes_nothing(world, call, envelope, payload, signed):
    newer = signed(payload("heartbeat_busy.json"))
    older = signed({**payload("heartbeat_idle.json"), "sent_at": "2026-11-23T04:06:00Z"})
    assert (
        call(names.ENTRY_POINTS["heartbeat"], envelope(newer, message_id="h-2")).status_code == 200
    )
    assert (
        call(names.ENTRY_POINTS["heartbeat"], envelope(older, message_id="h-1")).status_code == 200
    )
    stored = world.store.get_pool(world.pool).heartbeats[world.instance]
    assert stored.busy and stored.sent_at == 1795406773.5
