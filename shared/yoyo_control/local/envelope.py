"""The CloudEvents Google delivers to gen2 functions, built locally (same shape, same headers).

Invariants:
- ``pubsub_event`` is the structured-mode JSON Eventarc delivers for a Pub/Sub message
  (fixtures/pubsub_cloudevent.json): ``data.message`` carries base64 ``data``,
  ``messageId``/``message_id``, ``publishTime``/``publish_time`` and ``attributes`` (only
  when the message has some), ``data.subscription`` names the subscription.
- ``firestore_written`` is the binary-mode event of a Firestore ``document.v1.written``
  trigger: ``Content-Type: application/protobuf`` and a serialised
  ``google.events.cloud.firestore.v1.DocumentEventData`` body, as Eventarc sends it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
FIRESTORE_WRITTEN_TYPE = "google.cloud.firestore.document.v1.written"


def rfc3339(at: float) -> str:
    """Pub/Sub's publishTime format: UTC, millisecond precision, trailing Z."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def pubsub_message(
    data: bytes, message_id: str, publish_time: float, attributes: Mapping[str, str]
) -> dict[str, Any]:
    """A Pub/Sub message as its REST API and push deliveries spell it."""
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode("ascii"),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": rfc3339(publish_time),
        "publish_time": rfc3339(publish_time),
    }
    if attributes:
        message["attributes"] = dict(attributes)
    return message


def pubsub_event(
    project: str,
    topic: str,
    subscription: str,
    message: Mapping[str, Any],
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the structured-mode CloudEvent for one Pub/Sub message."""
    event = {
        "specversion": "1.0",
        "id": message["messageId"],
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "type": PUBSUB_TYPE,
        "datacontenttype": "application/json",
        "time": message["publishTime"],
        "data": {
            "subscription": f"projects/{project}/subscriptions/{subscription}",
            "message": dict(message),
        },
    }
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    return headers, json.dumps(event).encode()


def _firestore_value(value: Any) -> Any:
    from google.events.cloud import firestore

    if value is None:
        return firestore.Value(null_value=0)
    if isinstance(value, bool):
        return firestore.Value(boolean_value=value)
    if isinstance(value, int):
        return firestore.Value(integer_value=value)
    if isinstance(value, float):
        return firestore.Value(double_value=value)
    if isinstance(value, Mapping):
        fields = {str(k): _firestore_value(v) for k, v in value.items()}
        return firestore.Value(map_value=firestore.MapValue(fields=fields))
    if isinstance(value, (list, tuple)):
        values = [_firestore_value(v) for v in value]
        return firestore.Value(array_value=firestore.ArrayValue(values=values))
    return firestore.Value(string_value=str(value))


def firestore_written(
    project: str,
    database: str,
    document: str,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    event_id: str,
    at: float,
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the binary-mode CloudEvent for a Firestore document write."""
    from google.events.cloud import firestore

    name = f"projects/{project}/databases/{database}/documents/{document}"

    def doc(fields: Mapping[str, Any] | None) -> Any:
        if fields is None:
            return None
        return firestore.Document(
            name=name, fields={k: _firestore_value(v) for k, v in fields.items()}
        )

    kwargs = {k: v for k, v in (("value", doc(new)), ("old_value", doc(old))) if v is not None}
    body = firestore.DocumentEventData.serialize(firestore.DocumentEventData(**kwargs))
    headers = {
        "Content-Type": "application/protobuf",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "ce-type": FIRESTORE_WRITTEN_TYPE,
        "ce-subject": f"documents/{document}",
        "ce-time": rfc3339(at),
        "ce-dataschema": "https://github.com/googleapis/google-cloudevents/blob/main/"
        "proto/google/events/cloud/firestore/v1/data.proto",
        "ce-project": project,
        "ce-database": database,
        "ce-namespace": "(default)",
        "ce-document": document,
        "ce-location": "local",
    }
    return headers, body
