"""PubSubPublisher without a server: topic paths, attributes, and the error mapping.

The client is a stand-in with the real client's ``publish(topic, data, **attrs)`` →
future shape; the real client against the Pub/Sub emulator is in tests/e2e.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from yoyo_control.adapters.pubsub import PubSubPublisher
from yoyo_control.errors import PermanentError, TemporaryError


@dataclass
class FakeClient:
    """Answers each publish with the next outcome: a message id, or an exception to raise."""

    outcomes: list[Any] = field(default_factory=list)
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    stopped: bool = False

    def publish(self, topic: str, data: bytes, **attributes: str) -> concurrent.futures.Future:
        self.published.append((topic, data, attributes))
        future: concurrent.futures.Future = concurrent.futures.Future()
        outcome = self.outcomes.pop(0) if self.outcomes else "1"
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        elif outcome is not None:  # None: never answers
            future.set_result(outcome)
        return future

    def stop(self) -> None:
        self.stopped = True


def test_short_names_become_full_topic_paths():
    client = FakeClient(["42"])
    publisher = PubSubPublisher("my-project", client=client)
    assert publisher.publish("yoyo-heartbeat", b"{}", origin="agent") == "42"
    assert client.published == [
        ("projects/my-project/topics/yoyo-heartbeat", b"{}", {"origin": "agent"})
    ]
    assert publisher.topic_path("projects/x/topics/t") == "projects/x/topics/t"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (gexc.NotFound("topic not found"), PermanentError),
        (gexc.PermissionDenied("no"), PermanentError),
        (gexc.InvalidArgument("bad"), PermanentError),
        (gexc.ServiceUnavailable("down"), TemporaryError),
        (gexc.DeadlineExceeded("slow"), TemporaryError),
        (gexc.TooManyRequests("429"), TemporaryError),
        (gexc.InternalServerError("500"), TemporaryError),
        (ValueError("message too large"), PermanentError),
    ],
)
def test_failures_are_temporary_or_permanent(error, kind):
    publisher = PubSubPublisher("p", client=FakeClient([error]))
    with pytest.raises(kind, match="publish to projects/p/topics/t"):
        publisher.publish("t", b"x")


def test_no_answer_in_time_is_temporary():
    publisher = PubSubPublisher("p", client=FakeClient([None]), timeout_s=0.01)
    with pytest.raises(TemporaryError, match="no answer within"):
        publisher.publish("t", b"x")


def test_attribute_values_must_be_strings():
    client = FakeClient()
    with pytest.raises(PermanentError, match="attribute values must be strings"):
        PubSubPublisher("p", client=client).publish("t", b"x", n=1)  # type: ignore[arg-type]
    assert client.published == []


def test_an_injected_client_belongs_to_the_caller():
    client = FakeClient()
    PubSubPublisher("p", client=client).close()
    assert not client.stopped
