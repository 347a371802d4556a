"""The decoders on their own (pure): what each accepted format turns into."""

from __future__ import annotations

import base64
import json

import pytest

from yoyo_control import messages
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import (
    ExtendRequested,
    KillRequested,
    QueueDepthObserved,
    RunRequested,
    StopRequested,
    UnkillRequested,
)
from yoyo_control.errors import InvalidMessage

CONFIG = parse_config(
    {
        "pools": {
            "gpu": {
                "zone": "z",
                "instances": ["vm-0"],
                "lease_s": 900,
                "queue_threshold": 10,
                "cycle": {"window_s": 1200},
            }
        }
    }
)
T0 = 1_795_406_774.109  # 2026-11-23T04:06:14.109Z


def msg(payload: object, **attributes: str) -> messages.PubSubMessage:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return messages.PubSubMessage(data, "m-1", T0, attributes)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2026-11-23T04:06:14.109Z", T0),
        ("2026-11-23T04:06:14.109000000Z", T0),  # Pub/Sub may send nanoseconds
        ("2026-11-23T05:06:14.109+01:00", T0),
        ("2026-11-23T04:06:14.109", T0),  # no offset: UTC
        (T0, T0),
        (1795406774, 1795406774.0),
        ("1795406774", 1795406774.0),
    ],
)
def test_times_are_rfc3339_or_epoch_seconds(value, seconds):
    assert messages.parse_time(value, "t") == pytest.approx(seconds)


@pytest.mark.parametrize("value", [True, None, "", "tomorrow", -1, 1e20, float("inf"), [1]])
def test_a_bad_time_says_which_field(value):
    with pytest.raises(InvalidMessage, match=r"^sent_at: "):
        messages.parse_time(value, "sent_at")


def test_unwrap_falls_back_to_the_cloudevent_id_and_time():
    event = {
        "id": "ce-9",
        "time": "2026-11-23T04:06:14.109Z",
        "data": {"message": {"data": base64.b64encode(b"{}").decode()}},
    }
    message = messages.unwrap_pubsub(event)
    assert (message.message_id, message.publish_time, message.data) == ("ce-9", T0, b"{}")
    assert message.attributes == {}


def test_a_message_without_data_is_empty_not_invalid():
    event = {"id": "1", "time": "2026-11-23T04:06:14Z", "data": {"message": {"messageId": "5"}}}
    assert messages.unwrap_pubsub(event).data == b""
    assert messages.decode("tick", event, CONFIG).message_id == "5"


def test_the_snake_case_fields_of_the_push_format_are_read_too():
    event = {
        "id": "1",
        "data": {
            "message": {"message_id": "7", "publish_time": "2026-11-23T04:06:14.109Z", "data": ""}
        },
    }
    message = messages.unwrap_pubsub(event)
    assert (message.message_id, message.publish_time) == ("7", T0)


def test_data_in_json_text_is_accepted():
    event = {"id": "1", "time": "2026-11-23T04:06:14Z", "data": json.dumps({"message": {}})}
    assert messages.unwrap_pubsub(event).message_id == "1"


def test_cycle_window_and_default():
    fact = messages.decode_cycle(msg({"pool": "gpu", "window": "1h30m"}), CONFIG)
    assert isinstance(fact, RunRequested)
    assert (fact.holder, fact.duration_s, fact.at, fact.message_id) == ("cycle", 5400, T0, "m-1")
    assert messages.decode_cycle(msg({"pool": "gpu"}), CONFIG).duration_s == 1200
    assert messages.decode_cycle(msg({"pool": "gpu", "window": 90}), CONFIG).duration_s == 90


def test_an_open_incident_is_at_least_the_threshold_and_closed_is_zero():
    incident = {
        "state": "open",
        "observed_value": "3.7",
        "policy_user_labels": {"yoyo_pool": "gpu"},
    }
    fact = messages.decode_queue(msg({"version": "1.2", "incident": incident}), CONFIG)
    assert isinstance(fact, QueueDepthObserved) and fact.depth == 10
    incident["observed_value"] = "212.9"
    assert messages.decode_queue(msg({"incident": incident}), CONFIG).depth == 212
    incident["observed_value"] = "not a number"  # an open incident still means work
    assert messages.decode_queue(msg({"incident": incident}), CONFIG).depth == 10
    incident["state"] = "closed"
    assert messages.decode_queue(msg({"incident": incident}), CONFIG).depth == 0


def test_policy_labels_win_over_metadata_labels():
    incident = {
        "state": "open",
        "policy_user_labels": {"yoyo_pool": "gpu"},
        "metadata": {"user_labels": {"yoyo_pool": "other"}},
    }
    assert messages.decode_queue(msg({"incident": incident}), CONFIG).pool == "gpu"


def test_budget_fields_are_all_parsed():
    payload = {
        "budgetDisplayName": "yoyo-monthly",
        "alertThresholdExceeded": 0.9,
        "forecastThresholdExceeded": 1.0,
        "costAmount": 135,
        "costIntervalStart": "2026-11-01T07:00:00Z",
        "budgetAmount": 150.0,
        "budgetAmountType": "SPECIFIED_AMOUNT",
        "currencyCode": "EUR",
    }
    fact = messages.decode_budget(msg(payload, budgetId="b-1", schemaVersion="1.0"), CONFIG)
    assert (fact.budget_id, fact.display_name, fact.cost, fact.amount) == (
        "b-1",
        "yoyo-monthly",
        135.0,
        150.0,
    )
    assert (fact.currency, fact.alert_threshold, fact.forecast_threshold) == ("EUR", 0.9, 1.0)
    assert fact.interval_start == "2026-11-01T07:00:00Z"


def test_heartbeat_times_in_either_form():
    base = {"pool": "gpu", "instance": "vm-0", "boot_id": "b"}
    a = messages.decode_heartbeat(msg({**base, "sent_at": "2026-11-23T04:06:14.109Z"}), CONFIG)
    b = messages.decode_heartbeat(msg({**base, "sent_at": T0}), CONFIG)
    assert a.heartbeat.sent_at == pytest.approx(b.heartbeat.sent_at)
    assert (a.heartbeat.busy, a.heartbeat.running, a.heartbeat.waiting) == (False, 0, 0)
    assert a.heartbeat.last_request_at is None


def test_heartbeats_may_carry_fields_we_do_not_use_yet():
    payload = {
        "pool": "gpu",
        "instance": "vm-0",
        "boot_id": "b",
        "sent_at": T0,
        "agent_version": "2.0",
    }
    assert messages.decode_heartbeat(msg(payload), CONFIG).heartbeat.instance == "vm-0"


def test_control_commands_and_their_defaults():
    kill = messages.decode_control(msg({"command": "kill"}), CONFIG)
    assert isinstance(kill, KillRequested) and (kill.by, kill.reason) == (
        "operator",
        "engaged by operator",
    )
    unkill = messages.decode_control(msg({"command": " UNKILL "}), CONFIG)
    assert isinstance(unkill, UnkillRequested) and unkill.by == "operator"
    start = messages.decode_control(msg({"command": "start", "pool": "gpu"}), CONFIG)
    assert isinstance(start, RunRequested)
    assert (start.holder, start.duration_s, start.reason) == (
        "operator",
        900,
        "started by operator",
    )
    stop = messages.decode_control(msg({"command": "stop", "pool": "gpu", "by": "al"}), CONFIG)
    assert isinstance(stop, StopRequested) and stop.reason == "stopped by al"
    extend = messages.decode_control(msg({"command": "extend", "pool": "gpu", "for": "2h"}), CONFIG)
    assert isinstance(extend, ExtendRequested) and extend.duration_s == 7200


def firestore_event(data: object, content_type: str = "application/json") -> dict[str, object]:
    return {
        "id": "fs-1",
        "time": "2026-11-23T04:06:14.109Z",
        "subject": "documents/yoyo_control/kill_switch",
        "datacontenttype": content_type,
        "data": data,
    }


def test_a_deleted_kill_switch_reads_as_lifted():
    from google.events.cloud.firestore import Document, DocumentEventData, Value

    old = Document(
        name="projects/p/databases/(default)/documents/yoyo_control/kill_switch",
        fields={"engaged": Value(boolean_value=True)},
    )
    body = DocumentEventData.serialize(DocumentEventData(old_value=old))
    fact = messages.decode_kill_switch_written(firestore_event(body, "application/protobuf"))
    assert not fact.kill.engaged and fact.message_id == "fs-1" and fact.at == T0


def test_a_kill_switch_document_in_json_text_with_a_numeric_time():
    doc = {
        "value": {
            "name": "projects/p/databases/(default)/documents/yoyo_control/kill_switch",
            "fields": {"engaged": {"booleanValue": True}, "at": {"integerValue": "1795406774"}},
        }
    }
    fact = messages.decode_kill_switch_written(firestore_event(json.dumps(doc)))
    assert fact.kill.engaged and fact.kill.at == 1795406774.0 and fact.kill.reason == ""


def test_the_same_delivery_always_decodes_to_the_same_fact():
    event = {
        "id": "9",
        "data": {
            "message": {
                "data": base64.b64encode(b'{"pool": "gpu"}').decode(),
                "publishTime": "2026-11-23T04:06:14.109Z",
            }
        },
    }
    assert messages.decode("cycle", event, CONFIG) == messages.decode("cycle", event, CONFIG)


@pytest.mark.parametrize(
    ("engaged", "expected"),
    [
        ({"booleanValue": True}, True),
        ({"booleanValue": False}, False),
        ({"stringValue": "yes"}, True),
        ({"stringValue": "off"}, False),
        ({"stringValue": "maybe"}, True),  # not clearly "no": the kill switch wins
        ({"integerValue": "0"}, False),
        ({"mapValue": {}}, True),
        ({"nullValue": None}, False),
        (None, False),
    ],
)
def test_a_hand_written_switch_reads_as_the_store_reads_it(engaged, expected):
    fields = {"at": {"booleanValue": True}}  # a nonsense time is dropped, not refused
    if engaged is not None:
        fields["engaged"] = engaged
    doc = {
        "value": {
            "name": "projects/p/databases/(default)/documents/yoyo_control/kill_switch",
            "fields": fields,
        }
    }
    fact = messages.decode_kill_switch_written(firestore_event(doc))
    assert fact.kill.engaged is expected and fact.kill.at is None


def test_the_trigger_reads_the_switch_like_the_firestore_store():
    store = pytest.importorskip("yoyo_control.adapters.firestore_store")
    for raw in (True, False, None, 0, 1, 2.5, "yes", "NO", " off ", "engaged", "garbage", "", [1]):
        doc = {"engaged": raw, "reason": "r", "by": "b", "at": "2026-11-23T04:06:14.109Z"}
        assert messages.kill_from_fields(doc) == store.kill_from_doc(doc), raw


def test_heartbeats_announce_the_inference_address_optionally():
    base = {"pool": "gpu", "instance": "vm-0", "boot_id": "b", "sent_at": T0}
    old_agent = messages.decode_heartbeat(msg(base), CONFIG)
    assert old_agent.heartbeat.address is None
    beat = messages.decode_heartbeat(msg({**base, "address": "10.128.0.7:8000"}), CONFIG)
    assert beat.heartbeat.address == "10.128.0.7:8000"


@pytest.mark.parametrize(
    "bad", ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "a b:80", "x:80\x00", 8000, ""]
)
def test_a_malformed_address_is_refused_with_the_reason(bad: object):
    payload = {"pool": "gpu", "instance": "vm-0", "boot_id": "b", "sent_at": T0, "address": bad}
    with pytest.raises(InvalidMessage, match="address"):
        messages.decode_heartbeat(msg(payload), CONFIG)


# --- the gateway's messages on the queue topic (gateway/wire.py) ---------------------


def test_a_gateway_wake_is_a_wake_lease_request_keyed_by_its_wake_id():
    from yoyo_control.domain.model import Holder
    from yoyo_control.gateway.wire import encode_fact

    wake = RunRequested("gateway-wake-gpu-3-cold-29923446", 0.0, "gpu", Holder.WAKE, "x", 1)
    fact = messages.decode_queue(msg(encode_fact(wake)), CONFIG)
    assert isinstance(fact, RunRequested)
    assert fact.message_id == "gateway-wake-gpu-3-cold-29923446"  # not Pub/Sub's "m-1"
    assert (fact.pool, fact.holder, fact.at, fact.duration_s) == ("gpu", Holder.WAKE, T0, 900)


@pytest.mark.parametrize(
    "payload",
    [
        {"pool": "gpu", "wake": None},
        {"pool": "gpu", "wake": ""},
        {"pool": "gpu", "wake": 12},
        {"pool": "gpu", "wake": "12345"},  # a Pub/Sub-like id: would collide with one
        {"pool": "gpu", "wake": "gateway-wake-"},
        {"pool": "gpu", "wake": "gateway-wake-gpu-"},
        {"pool": "gpu", "wake": "gateway-wake-other-1-cold-2"},  # another pool's id
        {"pool": "gpu", "wake": "gateway-wake-gpu-1/../x"},
        {"pool": "gpu", "wake": "gateway-wake-gpu-\ud83d"},
        {"pool": "gpu", "wake": "gateway-wake-gpu-" + "9" * 200},
        {"pool": "gpu", "wake": "gateway-wake-gpu-1", "depth": 3},
        {"pool": "nope", "wake": "gateway-wake-nope-1"},
        {"wake": "gateway-wake-gpu-1"},
    ],
)
def test_a_malformed_wake_is_invalid(payload):
    with pytest.raises(InvalidMessage, match="wake"):
        messages.decode_queue(msg(payload), CONFIG)


def _cold(**body: object) -> dict[str, object]:
    marks = {"arrived_at": T0 - 90, "wake_at": T0 - 89, "first_byte_at": T0}
    doc = {"epoch": 3, "instance": "vm-0", "held_s": 88.5, "phases": marks, **body}
    return {"pool": "gpu", "cold_start": {k: v for k, v in doc.items() if v != "-"}}


def test_a_gateway_cold_start_is_a_cold_start_report_at_its_publish_time():
    from yoyo_control.domain.facts import ColdStartReported

    fact = messages.decode_queue(msg(_cold()), CONFIG)
    assert isinstance(fact, ColdStartReported)
    assert (fact.pool, fact.epoch, fact.instance, fact.held_s, fact.at) == (
        "gpu",
        3,
        "vm-0",
        88.5,
        T0,
    )
    assert fact.phases["wake_at"] == T0 - 89 and fact.phases["ready_at"] is None
    assert set(fact.phases) == set(messages.COLD_START_MARKS)


@pytest.mark.parametrize(
    "payload",
    [
        {"pool": "gpu", "cold_start": None},
        {"pool": "gpu", "cold_start": [1]},
        _cold(instance="vm-9"),  # not the pool's
        _cold(instance="-"),
        _cold(epoch="-"),
        _cold(epoch=-1),
        _cold(epoch=10**30),
        _cold(epoch=1.5),
        _cold(held_s="-"),
        _cold(held_s=-1),
        _cold(held_s=1e308),
        _cold(held_s="NaN"),
        _cold(phases={"arrived_at": "tomorrow"}),
        _cold(phases={"arrived_at": 1e20}),
        _cold(phases={"bogus_at": T0}),
        _cold(phases="later"),
        _cold(extra=1),
        {**_cold(), "depth": 1},
    ],
)
def test_a_malformed_cold_start_is_invalid(payload):
    with pytest.raises(InvalidMessage, match="cold start"):
        messages.decode_queue(msg(payload), CONFIG)
