"""A kill-switch write is decoded by its CloudEvent content type, never by its first byte.

Firestore triggers deliver DocumentEventData as application/protobuf; the JSON form
(application/json) is what tests and some local tools send. A protobuf whose first
bytes happen to look like JSON (a 123-byte ``value`` makes its length byte 0x7B, "{",
right after the 0x0A tag) must still be read as protobuf and engage the switch.
"""

from __future__ import annotations

from typing import Any

import pytest

from yoyo_control import messages, names
from yoyo_control.errors import InvalidMessage

DOC = f"projects/my-project/databases/(default)/documents/{names.KILL_SWITCH_PATH}"


def _document_of_value_length(length: int) -> bytes:
    """A DocumentEventData whose ``value`` (field 1) serialises to exactly ``length`` bytes."""
    from google.events.cloud import firestore

    def build(reason: str) -> bytes:
        value = firestore.Document(
            name=DOC,
            fields={
                "engaged": firestore.Value(boolean_value=True),
                "reason": firestore.Value(string_value=reason),
            },
        )
        return firestore.DocumentEventData.serialize(firestore.DocumentEventData(value=value))

    for size in range(200):
        body = build("x" * size)
        if body[0] == 0x0A and body[1] == length and len(body) == length + 2:
            return body
    raise AssertionError(f"no document with a {length}-byte value")


def _event(body: bytes | dict[str, Any], content_type: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "fs-123",
        "time": "2026-11-23T04:06:14.109Z",
        "type": "google.cloud.firestore.document.v1.written",
        "subject": f"documents/{names.KILL_SWITCH_PATH}",
        "data": body,
    }
    if content_type is not None:
        event["datacontenttype"] = content_type
    return event


def test_a_123_byte_protobuf_value_is_read_as_protobuf() -> None:
    body = _document_of_value_length(123)
    assert body[1:2] == b"{"  # what first-byte sniffing mistook for JSON
    fact = messages.decode_kill_switch_written(_event(body, "application/protobuf"))
    assert fact.kill.engaged is True


def test_the_same_document_arrives_through_the_function(world, app) -> None:
    body = _document_of_value_length(123)
    headers = {
        "Content-Type": "application/protobuf",
        "ce-specversion": "1.0",
        "ce-id": "fs-123",
        "ce-source": "//firestore.googleapis.com/projects/my-project/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-subject": f"documents/{names.KILL_SWITCH_PATH}",
        "ce-time": "2026-11-23T04:06:14.109Z",
    }
    response = app(names.ENTRY_KILL_SWITCH_WRITTEN).post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert "fs-123" not in world.rejected()
    [fact] = [e for e in world.events("fact") if e.message_id == "fs-123"]
    assert fact.data["kill"]["engaged"] is True


def test_json_text_is_read_as_json() -> None:
    body = (
        b'{"value": {"name": "' + DOC.encode() + b'", '
        b'"fields": {"engaged": {"booleanValue": true}}}}'
    )
    for content_type in ("application/json", "application/json; charset=utf-8", None):
        fact = messages.decode_kill_switch_written(_event(body, content_type))
        assert fact.kill.engaged is True, content_type


def test_protobuf_sent_as_json_is_rejected_with_the_reason() -> None:
    body = _document_of_value_length(123)
    with pytest.raises(InvalidMessage, match="not DocumentEventData JSON"):
        messages.decode_kill_switch_written(_event(body, "application/json"))


def test_an_unknown_content_type_is_rejected_with_the_reason() -> None:
    with pytest.raises(InvalidMessage, match="content type 'text/plain'"):
        messages.decode_kill_switch_written(_event(b"engaged", "text/plain"))
