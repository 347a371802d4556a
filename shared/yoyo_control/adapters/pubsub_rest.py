"""Pub/Sub over its REST API with plain HTTP: publish, and the secret header of the local bus.

What the VM side uses where Google's client library is not wanted: the local stack's bus
and Google's Pub/Sub emulator both speak this REST subset, so the agent publishes its
heartbeats and the worker pulls its work the same way against either. The local stack's
bus refuses a state-changing request without its per-stack secret (local/guard.py); the
secret is read from a file the stack writes and sent as ``SECRET_HEADER``.

Invariants: an unreachable endpoint or a non-200 answer is a TemporaryError (the caller
retries); an answer without a message id is one too (not a Pub/Sub endpoint); a missing
secret file reads as no secret (the request is then refused by a guarded bus, never sent
with a guessed one).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .. import jsonhttp as http
from ..errors import TemporaryError

SECRET_HEADER = "X-Yoyo-Stack-Secret"


def read_secret_file(path: str | Path) -> str:
    """The secret in ``path`` ("" when there is none)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def secret_headers(secret: str) -> dict[str, str]:
    return {SECRET_HEADER: secret} if secret else {}


class RestPublisher:
    """ports.Publisher over the Pub/Sub REST API (the local bus, or the Pub/Sub emulator)."""

    def __init__(
        self,
        base_url: str,
        project: str,
        timeout: float = 10.0,
        secret: str = "",
        unreachable_hint: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.timeout = timeout
        self.headers = secret_headers(secret)
        self.hint = unreachable_hint  # appended to the error when nothing answers

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        message: dict[str, Any] = {"data": base64.b64encode(data).decode("ascii")}
        if attributes:
            message["attributes"] = attributes
        url = f"{self.base_url}/v1/projects/{self.project}/topics/{topic}:publish"
        try:
            status, doc = http.post_json(url, {"messages": [message]}, self.timeout, self.headers)
        except OSError as exc:
            hint = f"; {self.hint}" if self.hint else ""
            raise TemporaryError(f"{self.base_url} is not reachable ({exc}){hint}") from exc
        if status != 200:
            raise TemporaryError(f"publish to {topic} failed: HTTP {status}: {doc}")
        ids = doc.get("messageIds") if isinstance(doc, dict) else None
        if not isinstance(ids, list) or not ids:
            raise TemporaryError(
                f"{self.base_url} is not a Pub/Sub publish endpoint (it answered "
                f"{str(doc)[:80]!r}); is the local stack running with this configuration?"
            )
        return str(ids[0])
