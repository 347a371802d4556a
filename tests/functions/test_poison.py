"""Bad input is logged, recorded as rejected and acknowledged; only transient failures raise.

Every case posts a real envelope and asserts: HTTP 200 (acknowledged, so Pub/Sub does not
redeliver), the event log holds a ``rejected`` entry with a precise reason for that
message id, no fact was recorded and Compute was not called.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from yoyo_control import bootstrap, messages, names
from yoyo_control.errors import ConfigError, PermanentError, TemporaryError

ON = names.ENTRY_POINTS
BIG = b'{"pool": "default", "pad": "' + b"a" * (messages.MAX_DATA_BYTES + 10) + b'"}'
HB = {
    "pool": "default",
    "instance": "yoyo-default-0",
    "boot_id": "b-1",
    "sent_at": "2026-11-23T04:06:10Z",
    "busy": False,
    "running": 0,
    "waiting": 0,
}
BUDGET_ATTRS = {"budgetId": "de72f49d-779b-4945-a127-4d6ce8def0bb", "schemaVersion": "1.0"}
OVER = {"costAmount": 152.37, "budgetAmount": 150.0, "currencyCode": "USD"}

# (topic, payload: JSON value or raw bytes, attributes, expected fragment of the reason)
CASES: list[tuple[str, Any, dict[str, str] | None, str]] = [
    ("cycle", b"", None, "empty message"),
    ("cycle", b"   \n", None, "empty message"),
    ("cycle", b"\xff\xfe\x00", None, "not UTF-8"),
    ("cycle", b"{not json", None, "not JSON"),
    ("cycle", b'{"pool": "default", "window": NaN}', None, "not JSON"),
    ("cycle", b"[" * 5000 + b"]" * 5000, None, "not JSON"),
    ("cycle", [1, 2], None, "expected a JSON object, got list"),
    ("cycle", "default", None, "expected a JSON object, got str"),
    ("cycle", {"window": "30m"}, None, "'pool' is required"),
    ("cycle", {"pool": "nope"}, None, "unknown pool 'nope'"),
    ("cycle", {"pool": 5}, None, "'pool' must be a non-empty string"),
    ("cycle", {"pool": "default", "window": "soon"}, None, "not a duration"),
    ("cycle", {"pool": "default", "window": -5}, None, "out of range"),
    ("cycle", {"pool": "default", "window": 0}, None, "must be at least 1s"),
    ("cycle", {"pool": "default", "window": 0.001}, None, "must be at least 1s"),
    ("cycle", {"pool": "default", "window": True}, None, "expected a duration"),
    ("cycle", {"pool": "default", "windw": "30m"}, None, "unknown key(s) ['windw']"),
    ("cycle", BIG, None, "larger than 65536 bytes"),
    ("queue", {"incident": {"state": "open"}}, None, "no yoyo_pool"),
    ("queue", {"incident": {"state": "firing"}}, None, "state must be 'open' or 'closed'"),
    ("queue", {"incident": "x"}, None, "expected a JSON object, got str"),
    (
        "queue",
        {"incident": {"state": "open", "policy_user_labels": {"yoyo_pool": "gpu-9"}}},
        None,
        "unknown pool 'gpu-9'",
    ),
    ("queue", {"pool": "default", "depth": -1}, None, "out of range"),
    ("queue", {"pool": "default", "depth": "many"}, None, "expected a whole number"),
    ("queue", {"pool": "default", "depth": True}, None, "expected a whole number"),
    ("queue", {"pool": "default", "depth": 2.5}, None, "expected a whole number"),
    ("queue", {"pool": "default"}, None, "'depth' is required"),
    ("queue", {"pool": "default", "depth": 3, "extra": 1}, None, "unknown key(s) ['extra']"),
    ("budget", OVER, None, "attribute 'budgetId' is missing"),
    ("budget", OVER, {"schemaVersion": "1.0"}, "attribute 'budgetId' is missing"),
    ("budget", {**OVER, "costAmount": "lots"}, BUDGET_ATTRS, "'lots' is not a number"),
    ("budget", {"budgetAmount": 150.0}, BUDGET_ATTRS, "'costAmount' is required"),
    ("budget", {**OVER, "costAmount": -1}, BUDGET_ATTRS, "finite number >= 0"),
    ("budget", {**OVER, "alertThresholdExceeded": [1]}, BUDGET_ATTRS, "expected a number"),
    ("budget", b"", BUDGET_ATTRS, "empty message"),
    ("heartbeat", {k: v for k, v in HB.items() if k != "sent_at"}, None, "'sent_at' is required"),
    ("heartbeat", {**HB, "instance": "vm-x"}, None, "instance 'vm-x' is not in pool"),
    ("heartbeat", {**HB, "busy": "yes"}, None, "busy must be true or false"),
    ("heartbeat", {**HB, "ready": 1}, None, "ready must be true or false"),
    ("heartbeat", {**HB, "running": -1}, None, "out of range"),
    ("heartbeat", {**HB, "sent_at": "2027-01-01T00:00:00Z"}, None, "after its publish time"),
    ("heartbeat", {**HB, "sent_at": "tomorrow"}, None, "not an RFC 3339 time"),
    ("heartbeat", {**HB, "sent_at": 1e300}, None, "out of range"),
    ("heartbeat", {**HB, "last_request_at": {}}, None, "expected a time"),
    ("heartbeat", {k: v for k, v in HB.items() if k != "boot_id"}, None, "'boot_id' is required"),
    ("heartbeat", {**HB, "pool": "gpu-9"}, None, "unknown pool 'gpu-9'"),
    ("control", {"command": "reboot"}, None, "unknown command 'reboot'"),
    ("control", {}, None, "unknown command None"),
    ("control", {"command": ["kill"]}, None, "unknown command ['kill']"),
    ("control", {"command": "start"}, None, "'pool' is required"),
    ("control", {"command": "start", "pool": "default", "for": "forever"}, None, "not a duration"),
    ("control", {"command": "unkill", "reason": "x"}, None, "unknown key(s) ['reason']"),
    ("control", {"command": "stop", "pool": "nope"}, None, "unknown pool 'nope'"),
    ("control", {"command": "stop", "pool": "default", "by": ""}, None, "'by' must be a non-empty"),
    (
        "control",
        {"command": "stop", "pool": "default", "reason": "x" * 600},
        None,
        "longer than 500",
    ),
]


@pytest.mark.parametrize(("topic", "data", "attributes", "why"), CASES)
def test_bad_payloads_are_rejected_and_acknowledged(
    world, call, envelope, topic, data, attributes, why
):
    event = envelope(data, message_id="bad-1", attributes=attributes)
    response = call(ON[topic], event)
    assert response.status_code == 200
    assert why in world.rejected()["bad-1"]
    assert world.facts() == [] and world.compute.calls == []


def broken(envelope, **changes: Any) -> dict[str, Any]:
    event = envelope({"pool": "default"}, message_id="bad-2")
    event["data"]["message"].update(changes)
    return event


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"data": "!!not base64!!"}, "not valid base64"),
        ({"data": 5}, "must be a base64 string"),
        ({"attributes": ["a"]}, "attributes must map strings to strings"),
        ({"attributes": {"a": 1}}, "attributes must map strings to strings"),
        ({"publishTime": "garbage", "publish_time": None}, "not an RFC 3339 time"),
        ({"publishTime": True}, "expected a time"),
        ({"data": "A" * (messages.MAX_DATA_BYTES * 2)}, "larger than 65536 bytes"),
    ],
)
def test_broken_envelopes_are_rejected_and_acknowledged(world, call, envelope, changes, why):
    response = call(ON["cycle"], broken(envelope, **changes))
    assert response.status_code == 200
    assert why in world.rejected()["bad-2"]


def test_an_envelope_without_a_message_is_rejected(world, call, envelope):
    event = envelope({}, message_id="bad-3")
    event["data"] = {"subscription": "s", "message": "hello"}
    assert call(ON["tick"], event).status_code == 200
    assert "data.message: expected a JSON object" in world.rejected()["bad-3"]


def test_an_unsafe_message_id_is_replaced_not_trusted(world, call, envelope):
    event = envelope({"pool": "nope"}, message_id="../../etc/passwd")
    assert call(ON["cycle"], event).status_code == 200
    [rejected] = world.events("rejected")
    assert "no usable message id" in rejected.reason and "passwd" in rejected.reason
    assert rejected.message_id == "" and "/" not in rejected.id


def test_a_duplicated_bad_message_is_recorded_once(world, call, envelope):
    event = envelope({"command": "reboot"}, message_id="bad-4")
    assert call(ON["control"], event).status_code == 200
    assert call(ON["control"], event).status_code == 200
    assert len(world.events("rejected")) == 1


KILL_DOC = "projects/my-project/databases/(default)/documents/yoyo_control/kill_switch"


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("application/protobuf", b"\x0a\xff\xff\xff", "not a DocumentEventData protobuf"),
        ("application/json", b'{"value": 5}', "not a DocumentEventData"),
        ("application/json", b"[1]", "expected DocumentEventData, got list"),
        ("application/protobuf", b"", "no event data"),
        (
            "application/json",
            json.dumps(
                {"value": {"name": KILL_DOC.replace("yoyo_control", "xyoyo_control")}}
            ).encode(),
            "not the yoyo_control/kill_switch document",
        ),
    ],
)
def test_bad_kill_switch_writes_are_rejected_and_acknowledged(world, app, content_type, body, why):
    headers = {
        "Content-Type": content_type,
        "ce-specversion": "1.0",
        "ce-id": "fs-bad",
        "ce-source": "//firestore.googleapis.com/projects/my-project/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-subject": "documents/yoyo_control/kill_switch",
        "ce-time": "2026-11-23T04:06:14.109Z",
    }
    response = app(names.ENTRY_KILL_SWITCH_WRITTEN).post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert why in world.rejected()["fs-bad"]


# --- the error-kind mapping (functions/main.py::_deliver) -----------------------------


def test_a_decoder_bug_is_acknowledged_not_redelivered(world, call, envelope, monkeypatch):
    def buggy(_message, _config):
        raise KeyError("oops")

    monkeypatch.setitem(messages.DECODERS, names.TOPIC_CYCLE, buggy)
    assert call(ON["cycle"], envelope({"pool": "default"}, message_id="bug-1")).status_code == 200
    assert "undecodable message (KeyError" in world.rejected()["bug-1"]


def test_a_bad_message_is_acknowledged_even_when_the_store_is_down(
    world, call, envelope, monkeypatch
):
    def down(_fn):
        raise TemporaryError("firestore unavailable")

    monkeypatch.setattr(world.store, "transact", down)
    assert call(ON["cycle"], envelope({"pool": "nope"}, message_id="bad-5")).status_code == 200


def test_an_unexpected_service_failure_is_redelivered(world, call, envelope, monkeypatch):
    def crash(_fact):
        raise RuntimeError("firestore client bug")

    monkeypatch.setattr(world.service, "handle", crash)
    assert call(ON["cycle"], envelope({"pool": "default"})).status_code == 500


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PermanentError("QUOTA_EXCEEDED"), 200),
        (ConfigError("unknown pool 'x'"), 200),
        (TemporaryError("429"), 500),
    ],
)
def test_error_kinds_from_the_service(world, call, envelope, monkeypatch, error, status):
    def fail(_fact):
        raise error

    monkeypatch.setattr(world.service, "handle", fail)
    response = call(ON["control"], envelope({"command": "kill"}, message_id="kind-1"))
    assert response.status_code == status
    if status == 200:
        assert str(error) in world.rejected()["kind-1"]
    else:
        assert world.rejected() == {}


def test_a_broken_deployment_is_redelivered_not_dropped(world, call, envelope, monkeypatch):
    monkeypatch.setenv("YOYO_CONFIG", '{"pools": {}}')
    bootstrap.reset()
    assert call(ON["tick"], envelope({})).status_code == 500
