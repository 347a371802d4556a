"""The pool's work subscription over Pub/Sub's REST API: pull, extend, acknowledge.

Invariants: the same calls work against Google's Pub/Sub (``https://pubsub.googleapis.com``
with the VM's access token), the emulator and the local bus; HTTP errors and unreachable
endpoints raise OSError (the caller backs off and retries); a pulled message carries its
ack id, decoded data and attributes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import jsonhttp as http

GOOGLE_PUBSUB = "https://pubsub.googleapis.com"


@dataclass(frozen=True)
class Pulled:
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)


def google_token() -> Callable[[], str]:
    """Access tokens of the VM's service account (refreshed when they expire)."""
    import google.auth
    from google.auth.transport.requests import Request

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/pubsub"])

    def token() -> str:
        if not credentials.valid:
            credentials.refresh(Request())  # type: ignore[no-untyped-call]
        return str(credentials.token)

    return token


class WorkQueue:
    def __init__(
        self,
        base_url: str,
        project: str,
        subscription: str,
        token: Callable[[], str] | None = None,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        pull_timeout_s: float = 25.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project}/subscriptions/{subscription}"
        self.token = token
        self.timeout_s = timeout_s
        self.pull_timeout_s = pull_timeout_s  # a long poll's own bound (then: no message)
        self.headers = dict(headers or {})  # e.g. the local stack's secret header

    def _call(self, verb: str, doc: dict[str, object], timeout: float = 0.0) -> dict[str, Any]:
        headers = {**self.headers, "Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token()}"
        status, raw = http.request(
            "POST",
            f"{self.url}:{verb}",
            json.dumps(doc).encode(),
            headers,
            timeout or self.timeout_s,
        )
        if status != 200:
            raise OSError(f"pubsub {verb}: HTTP {status}: {raw[:200]!r}")
        answer = json.loads(raw) if raw.strip() else {}
        return answer if isinstance(answer, dict) else {}

    def pull(self, max_messages: int = 1) -> list[Pulled]:
        """A long poll: Pub/Sub holds the request a bounded time until a message comes
        (``returnImmediately`` is deprecated: "setting this field to true is discouraged
        because it adversely impacts the performance of Pull operations", PullRequest in
        cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions/pull). A
        pull that outlasts ``pull_timeout_s`` got nothing."""
        try:
            answer = self._call("pull", {"maxMessages": max_messages}, timeout=self.pull_timeout_s)
        except TimeoutError:
            return []
        pulled = []
        for item in answer.get("receivedMessages") or []:
            message = item.get("message") or {}
            try:
                data = base64.b64decode(message.get("data", ""), validate=True)
            except ValueError:
                data = b""
            pulled.append(
                Pulled(
                    str(item.get("ackId", "")),
                    str(message.get("messageId", "")),
                    data,
                    {str(k): str(v) for k, v in (message.get("attributes") or {}).items()},
                )
            )
        return pulled

    def extend(self, ack_id: str, seconds: int) -> None:
        self._call("modifyAckDeadline", {"ackIds": [ack_id], "ackDeadlineSeconds": seconds})

    def acknowledge(self, ack_id: str) -> None:
        self._call("acknowledge", {"ackIds": [ack_id]})
