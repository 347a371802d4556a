"""Google's Pub/Sub emulator for test suites: administered over REST.

Invariants:
- Started by the one launcher (``start_pubsub``, yoyo_control.local.emulators):
  127.0.0.1 only, its own process group, output to a log file, ``stop()`` ends the whole
  group (launcher script and JVM) even after a failed start, and at interpreter exit as
  a last resort. A missing emulator or Java raises EmulatorUnavailable.
- ``PubSubAdmin`` talks to the emulator's REST surface (the same paths as
  pubsub.googleapis.com/v1) with the standard library only; every call is bounded by a
  timeout and raises with the emulator's answer on an HTTP error.
- Nothing here imports pytest.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulators import start_pubsub

__all__ = ["PubSubAdmin", "PubSubError", "start_pubsub"]


class PubSubError(RuntimeError):
    """The emulator answered an admin call with an HTTP error."""


@dataclass(frozen=True)
class PubSubAdmin:
    """Topics, subscriptions and publishing on the emulator at ``host`` for ``project``."""

    host: str
    project: str
    timeout_s: float = 10.0

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{self.host}/v1/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise PubSubError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None
        return json.loads(text) if text.strip() else {}

    def create_topic(self, topic: str) -> str:
        path = self.topic_path(topic)
        self._call("PUT", path)
        return path

    def create_push_subscription(
        self, subscription: str, topic: str, endpoint: str, ack_deadline_s: int = 60
    ) -> str:
        path = self.subscription_path(subscription)
        body = {
            "topic": self.topic_path(topic),
            "pushConfig": {"pushEndpoint": endpoint},
            "ackDeadlineSeconds": ack_deadline_s,
        }
        self._call("PUT", path, body)
        return path

    def delete_subscription(self, path: str) -> None:
        """Delete a subscription (its path): nothing of it is pushed any more."""
        self._call("DELETE", path)

    def create_pull_subscription(self, subscription: str, topic: str) -> str:
        path = self.subscription_path(subscription)
        self._call("PUT", path, {"topic": self.topic_path(topic)})
        return path

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        message: dict[str, Any] = {"data": base64.b64encode(data).decode()}
        if attributes:
            message["attributes"] = attributes
        answer = self._call("POST", f"{self.topic_path(topic)}:publish", {"messages": [message]})
        return str(answer["messageIds"][0])

    def pull(self, subscription: str, max_messages: int = 10) -> list[dict[str, Any]]:
        """Pull and acknowledge; each message with its data base64-decoded into bytes."""
        path = self.subscription_path(subscription)
        answer = self._call(
            "POST", f"{path}:pull", {"maxMessages": max_messages, "returnImmediately": True}
        )
        received = answer.get("receivedMessages", [])
        if received:
            ids = [r["ackId"] for r in received]
            self._call("POST", f"{path}:acknowledge", {"ackIds": ids})
        out = []
        for r in received:
            message = dict(r["message"])
            message["data"] = base64.b64decode(message.get("data", ""))
            out.append(message)
        return out
