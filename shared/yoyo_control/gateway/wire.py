"""The gateway's word to the control plane, as messages on the queue topic (pure encoders
and a small publishing adapter).

Why: the gateway is the public endpoint; in the cloud its service account may read
Firestore and publish to ``PREFIX-queue`` and ``PREFIX-work``, never write Firestore
(terraform/iam.tf). So what it has to tell the control plane — a wake, its load, a cold
start it measured — is published to the queue topic, and the queue function
(functions/main.py ``on_queue`` → messages.decode_queue → Service.handle) records it,
exactly as it records a producer's queue depth. The local stack composes the same
(bootstrap.build_gateway): its bus delivers the message to the same entry point.

Invariants:
- A wake is ``{"pool", "wake": <wake id>}``: the decoder gives the fact the wake id as
  its message id, so every gateway instance that reads the same pool state still makes
  ONE wake (routing.wake_id), however many publish it.
- A load report is ``{"pool", "in_flight", "held"}`` (domain/scaling.load_report).
- A cold start is ``{"pool", "cold_start": {"epoch", "instance", "held_s", "phases"}}``;
  the control plane records one ``cold-start`` event per pool and lease epoch.
- ``publish`` failures leave as the publisher raises them (TemporaryError /
  PermanentError): the caller (gateway/forward.py) logs them and tries again later; a
  request is never failed by them.
"""

from __future__ import annotations

import json
from typing import Any

from .. import names
from ..config import Config
from ..domain.facts import Fact, LoadReported, RunRequested
from ..domain.model import Holder
from ..ports import Event, Publisher


def encode_fact(fact: Fact) -> bytes:
    """The queue message of a fact the gateway makes (a wake or a load report)."""
    if isinstance(fact, RunRequested) and fact.holder == Holder.WAKE:
        return _json({"pool": fact.pool, "wake": fact.message_id})
    if isinstance(fact, LoadReported):
        return _json({"pool": fact.pool, "in_flight": fact.in_flight, "held": fact.held})
    raise TypeError(f"the gateway does not send {type(fact).__name__} facts")


def encode_cold_start(event: Event) -> bytes:
    """The queue message of a ``cold-start`` event (gateway/coldstarts.cold_start_event)."""
    if event.kind != "cold-start":
        raise TypeError(f"the gateway does not send {event.kind!r} events")
    data = event.data
    body = {
        "epoch": data.get("epoch", 0),
        "instance": data.get("instance"),
        "held_s": data.get("held_s"),
        "phases": data.get("phases") or {},
    }
    return _json({"pool": event.pool, "cold_start": body})


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class QueueWire:
    """``handle(fact)`` and ``record(event)`` for the gateway, published to the queue topic."""

    def __init__(self, publisher: Publisher, config: Config) -> None:
        self.publisher = publisher
        self.topic = config.topic(names.TOPIC_QUEUE)

    def handle(self, fact: Fact) -> str:
        return self.publisher.publish(self.topic, encode_fact(fact))

    def record(self, event: Event) -> str:
        return self.publisher.publish(self.topic, encode_cold_start(event))
