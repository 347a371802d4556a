"""Golden payloads through every entry point, as Eventarc delivers them: status and state.

Each test posts a real-format CloudEvent to functions/main.py through functions-framework
and asserts on the answer (200 = ack, 500 = redeliver) and on what the store then holds.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from yoyo_control import names
from yoyo_control.domain.model import KillSwitch
from yoyo_control.errors import TemporaryError

ON = names.ENTRY_POINTS
CYCLE, TICK, QUEUE = ON[names.TOPIC_CYCLE], ON[names.TOPIC_TICK], ON[names.TOPIC_QUEUE]
BUDGET, HEARTBEAT = ON[names.TOPIC_BUDGET], ON[names.TOPIC_HEARTBEAT]
CONTROL, KILL_WRITTEN = ON[names.TOPIC_CONTROL], names.ENTRY_KILL_SWITCH_WRITTEN


def start_pool(world, call, envelope, payload, mid: str = "c-1") -> None:
    response = call(CYCLE, envelope(payload("cycle.json"), message_id=mid))
    assert response.status_code == 200, response.data
    assert world.compute.status[world.instance] == "RUNNING"


# --- cycle ---------------------------------------------------------------------------


def test_cycle_grants_the_window_as_a_lease_and_starts_the_vm(world, call, envelope, payload):
    response = call(CYCLE, envelope(payload("cycle.json"), message_id="c-1"))
    assert response.status_code == 200
    lease = world.store.get_pool(world.pool).lease
    assert lease.holder == "cycle" and lease.expires_at == world.clock.now() + 1800
    assert [c.kind for c in world.compute.acted("start")] == ["start"]
    assert world.facts() == ["c-1"]


def test_cycle_without_a_window_uses_the_pools_cycle_window(world, call, envelope, payload):
    assert call(CYCLE, envelope(payload("cycle_default_window.json"))).status_code == 200
    assert world.store.get_pool(world.pool).lease.expires_at == world.clock.now() + 1200


def test_a_duplicate_delivery_is_recorded_once_and_acts_once(world, call, envelope, payload):
    event = envelope(payload("cycle.json"), message_id="dup-1")
    assert call(CYCLE, event).status_code == 200
    assert call(CYCLE, event).status_code == 200
    assert len(world.compute.acted("start")) == 1
    assert world.facts() == ["dup-1"]


# --- tick ----------------------------------------------------------------------------


def test_tick_observes_every_pool_and_is_recorded(world, call, envelope, payload):
    assert call(TICK, envelope(payload("tick.json"), message_id="t-1")).status_code == 200
    instance = world.store.get_pool(world.pool).instances[world.instance]
    assert instance.observed == "TERMINATED" and instance.observed_at == world.clock.now()
    assert world.facts() == ["t-1"]


def test_tick_accepts_any_body(world, call, envelope):
    assert call(TICK, envelope(b"not json at all", message_id="t-2")).status_code == 200
    assert world.facts() == ["t-2"] and world.rejected() == {}


def test_tick_after_idle_releases_the_lease_and_stops(world, call, envelope, payload, signed):
    start_pool(world, call, envelope, payload)
    idle = envelope(signed(payload("heartbeat_idle.json")), message_id="h-1")
    assert call(HEARTBEAT, idle).status_code == 200
    world.clock.advance(601)
    assert call(TICK, envelope({}, message_id="t-1")).status_code == 200
    assert world.store.get_pool(world.pool).lease is None
    assert world.compute.status[world.instance] == "TERMINATED"
    assert any("idle" in e.reason for e in world.events("decision"))


# --- queue ---------------------------------------------------------------------------


def test_an_open_backlog_incident_becomes_demand_and_starts(world, call, envelope, payload):
    response = call(QUEUE, envelope(payload("monitoring_incident_open.json"), message_id="q-1"))
    assert response.status_code == 200
    demand = world.store.get_pool(world.pool).demand
    assert demand.depth == 212 and demand.source == "monitoring:0.n2q4k8x3p1ab"
    assert world.compute.status[world.instance] == "RUNNING"


def test_a_closed_incident_clears_the_demand(world, call, envelope, payload):
    call(QUEUE, envelope(payload("monitoring_incident_open.json"), message_id="q-1"))
    closed = envelope(payload("monitoring_incident_closed.json"), message_id="q-2")
    assert call(QUEUE, closed).status_code == 200
    assert world.store.get_pool(world.pool).demand.depth == 0


def test_an_incident_below_the_threshold_still_counts_as_the_threshold(
    world, call, envelope, payload
):
    incident = payload("monitoring_incident_open.json")
    incident["incident"]["observed_value"] = "3.000"
    del incident["incident"]["policy_user_labels"]  # the pool comes from metadata.user_labels
    assert call(QUEUE, envelope(incident)).status_code == 200
    assert world.store.get_pool(world.pool).demand.depth == 50


def test_a_producer_depth_is_demand(world, call, envelope, payload):
    assert call(QUEUE, envelope(payload("queue_producer.json"))).status_code == 200
    demand = world.store.get_pool(world.pool).demand
    assert (demand.depth, demand.source) == (120, "producer")


# --- budget --------------------------------------------------------------------------


def budget_event(envelope, payload, name: str, mid: str, **attrs: str) -> dict[str, Any]:
    attributes = {**payload("budget_attributes.json"), **attrs}
    return envelope(payload(name), message_id=mid, attributes=attributes)


def test_the_fixture_envelope_itself_kills_when_over_budget(world, call, payload):
    """fixtures/pubsub_cloudevent.json is a budget-over notification, byte for byte."""
    event = payload("pubsub_cloudevent.json")
    assert call(BUDGET, event).status_code == 200
    kill = world.store.get_kill()
    assert kill.engaged and kill.reason == "budget: 152.37 of 150.00 USD" and kill.by == "budget"
    assert world.facts() == ["8126378431922841"]


def test_budget_over_engages_the_kill_switch_and_stops(world, call, envelope, payload):
    start_pool(world, call, envelope, payload)
    response = call(BUDGET, budget_event(envelope, payload, "budget_over.json", "b-1"))
    assert response.status_code == 200
    assert world.store.get_kill().engaged
    assert world.compute.status[world.instance] == "TERMINATED"
    assert world.store.get_pool(world.pool).lease is None


def test_a_routine_budget_update_is_a_recorded_no_op(world, call, envelope, payload):
    response = call(BUDGET, budget_event(envelope, payload, "budget_update.json", "b-2"))
    assert response.status_code == 200
    assert not world.store.get_kill().engaged
    [fact] = world.events("fact")
    assert (fact.data["cost"], fact.data["amount"], fact.data["currency"]) == (41.8, 150.0, "USD")
    assert fact.data["interval_start"] == "2026-11-01T07:00:00Z"
    assert fact.data["budget_id"] == world.budget_id


def test_a_forecast_crossing_is_recorded_but_does_not_kill_by_default(
    world, call, envelope, payload
):
    response = call(BUDGET, budget_event(envelope, payload, "budget_forecast.json", "b-3"))
    assert response.status_code == 200 and not world.store.get_kill().engaged
    [fact] = world.events("fact")
    assert fact.data["forecast_threshold"] == 1.0 and fact.data["alert_threshold"] is None


def test_a_foreign_budget_is_acknowledged_and_ignored(world, call, envelope, payload):
    event = budget_event(envelope, payload, "budget_over.json", "b-4", budgetId="someone-else")
    assert call(BUDGET, event).status_code == 200
    assert not world.store.get_kill().engaged and world.rejected() == {}


# --- heartbeat -----------------------------------------------------------------------


def test_a_busy_heartbeat_is_stored(world, call, envelope, payload, signed):
    start_pool(world, call, envelope, payload)
    response = call(HEARTBEAT, envelope(signed(payload("heartbeat_busy.json")), message_id="h-1"))
    assert response.status_code == 200
    beat = world.store.get_pool(world.pool).heartbeats[world.instance]
    assert beat.busy and (beat.running, beat.waiting) == (2, 3)
    assert beat.sent_at == 1795406773.5 and beat.last_request_at == 1795406773.0
    assert beat.received_at == world.clock.now()


# --- control -------------------------------------------------------------------------


def test_kill_then_unkill_from_the_operator(world, call, envelope, payload):
    start_pool(world, call, envelope, payload)
    assert (
        call(CONTROL, envelope(payload("control_kill.json"), message_id="k-1")).status_code == 200
    )
    kill = world.store.get_kill()
    assert (kill.engaged, kill.reason, kill.by) == (True, "maintenance", "operator")
    assert world.compute.status[world.instance] == "TERMINATED"
    # Published after the kill was committed (an unkill published before that is stale).
    unkill = envelope(
        payload("control_unkill.json"), message_id="k-2", publish_time="2026-11-23T04:07:00Z"
    )
    assert call(CONTROL, unkill).status_code == 200
    kill = world.store.get_kill()
    assert not kill.engaged and kill.by == "alice"


def test_operator_start_for_a_duration(world, call, envelope, payload):
    assert call(CONTROL, envelope(payload("control_start.json"))).status_code == 200
    lease = world.store.get_pool(world.pool).lease
    assert lease.holder == "operator" and lease.expires_at == world.clock.now() + 7200
    assert world.compute.status[world.instance] == "RUNNING"


def test_operator_extend_then_stop(world, call, envelope, payload):
    start_pool(world, call, envelope, payload)  # 30 min window
    world.clock.advance(300)  # (less than idle_timeout: extending does not reset idleness)
    assert (
        call(CONTROL, envelope(payload("control_extend.json"), message_id="e-1")).status_code == 200
    )
    assert world.store.get_pool(world.pool).lease.expires_at == world.clock.now() + 3600
    assert (
        call(CONTROL, envelope(payload("control_stop.json"), message_id="s-1")).status_code == 200
    )
    assert world.store.get_pool(world.pool).lease is None
    assert world.compute.status[world.instance] == "TERMINATED"
    assert any("released by alice: done for today" in e.reason for e in world.events("decision"))


# --- kill switch written (Firestore trigger) -----------------------------------------


def firestore_headers(content_type: str, event_id: str = "fs-1") -> dict[str, str]:
    doc = names.KILL_SWITCH_PATH
    return {
        "Content-Type": content_type,
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "//firestore.googleapis.com/projects/my-project/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-subject": f"documents/{doc}",
        "ce-time": "2026-11-23T04:06:14.109Z",
        "ce-database": "(default)",
        "ce-namespace": "(default)",
        "ce-document": doc,
        "ce-location": "us-central1",
        "ce-project": "my-project",
    }


def protobuf_body(document_json: dict[str, Any]) -> bytes:
    from google.events.cloud.firestore import DocumentEventData

    message = DocumentEventData.from_json(json.dumps(document_json), ignore_unknown_fields=True)
    return DocumentEventData.serialize(message)


def engage_behind_the_functions_back(world) -> None:
    """A console flip: the document changes; only the trigger tells the control plane."""
    world.store.transact(lambda tx: tx.save_kill(KillSwitch(True, "console", "bob", 1.0)))


def test_a_console_flip_as_protobuf_stops_every_pool_now(world, call, envelope, payload, app):
    start_pool(world, call, envelope, payload)
    engage_behind_the_functions_back(world)
    body = protobuf_body(payload("firestore_kill_switch_engaged.json"))
    client = app(KILL_WRITTEN)
    response = client.post("/", data=body, headers=firestore_headers("application/protobuf"))
    assert response.status_code == 200
    assert world.compute.status[world.instance] == "TERMINATED"
    [fact] = [e for e in world.events("fact") if e.message_id == "fs-1"]
    assert fact.data["kill"]["engaged"] is True
    assert fact.data["kill"]["by"] == "bob@example.com"
    assert fact.data["kill"]["at"] == pytest.approx(1795406774.109)


def test_a_kill_switch_write_as_json_is_accepted(world, call, envelope, payload, app):
    start_pool(world, call, envelope, payload)
    engage_behind_the_functions_back(world)
    body = json.dumps(payload("firestore_kill_switch_engaged.json")).encode()
    response = app(KILL_WRITTEN).post(
        "/", data=body, headers=firestore_headers("application/json", "fs-2")
    )
    assert response.status_code == 200
    assert world.compute.status[world.instance] == "TERMINATED"
    assert "fs-2" in world.facts()


def test_a_write_to_another_document_is_rejected(world, payload, app):
    document = payload("firestore_kill_switch_engaged.json")
    for side in ("value", "oldValue"):
        document[side]["name"] = "projects/p/databases/(default)/documents/yoyo_pools/default"
    headers = {**firestore_headers("application/protobuf", "fs-3"), "ce-subject": "documents/x"}
    headers["ce-document"] = "x"
    response = app(KILL_WRITTEN).post("/", data=protobuf_body(document), headers=headers)
    assert response.status_code == 200
    assert "not the yoyo_control/kill_switch document" in world.rejected()["fs-3"]


# --- other deliveries of the same messages -------------------------------------------


def test_eventarc_binary_mode_pubsub_delivery(world, app, envelope, payload):
    event = envelope(payload("cycle.json"), message_id="bin-1")
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event["id"],
        "ce-source": event["source"],
        "ce-type": event["type"],
        "ce-time": event["time"],
    }
    response = app(CYCLE).post("/", data=json.dumps(event["data"]), headers=headers)
    assert response.status_code == 200
    assert world.facts() == ["bin-1"] and world.compute.status[world.instance] == "RUNNING"


def test_a_raw_pubsub_push_body_is_converted_by_the_framework(world, app):
    """What the Pub/Sub emulator's push subscription posts (no CloudEvent headers)."""
    push = {
        "subscription": "projects/my-project/subscriptions/yoyo-cycle-push",
        "message": {
            "data": base64.b64encode(b'{"pool": "default", "window": 600}').decode(),
            "messageId": "77",
            "message_id": "77",
            "publishTime": "2026-11-23T04:06:14.109Z",
            "publish_time": "2026-11-23T04:06:14.109Z",
            "attributes": {"origin": "test"},
        },
    }
    response = app(CYCLE).post("/", json=push)
    assert response.status_code == 200
    assert world.facts() == ["77"]
    assert world.store.get_pool(world.pool).lease.expires_at == world.clock.now() + 600


# --- transient failures are redelivered, then succeed once ---------------------------


def test_a_transient_compute_failure_answers_500_and_the_redelivery_acts_once(
    world, call, envelope, payload
):
    world.compute.faults.append(TemporaryError("503 backend error"))
    event = envelope(payload("cycle.json"), message_id="r-1")
    assert call(CYCLE, event).status_code == 500
    world.clock.advance(61)  # Pub/Sub's backoff; past the action retry delay
    assert call(CYCLE, event).status_code == 200
    starts = world.compute.acted("start")
    assert len(starts) == 1 and world.compute.status[world.instance] == "RUNNING"
    assert world.facts() == ["r-1"]


def test_a_transient_store_failure_on_a_valid_fact_answers_500(
    world, call, envelope, payload, monkeypatch
):
    def down(_fn):
        raise TemporaryError("firestore: too much contention")

    with monkeypatch.context() as patch:
        patch.setattr(world.store, "transact", down)
        assert call(CYCLE, envelope(payload("cycle.json"))).status_code == 500
    assert world.compute.calls == [] and world.facts() == []
