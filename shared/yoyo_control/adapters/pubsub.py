"""Pub/Sub publisher: the ``Publisher`` port on google-cloud-pubsub (used by the agent and CLI).

Invariants:
- No client and no connection before the first publish; the client is built once, under a
  lock, and honours PUBSUB_EMULATOR_HOST (the library then uses the emulator without
  credentials).
- ``topic`` is a short name ("yoyo-control") resolved in ``project``, or a full path
  ("projects/p/topics/t") used as is.
- ``publish`` returns only once the server accepted the message (its message id), within
  ``timeout_s``. Failures leave as TemporaryError (unavailable, deadline, 429/5xx, our
  own timeout: retrying may succeed — note the message may still be published later,
  delivery is at least once) or PermanentError (topic missing, permission, invalid).
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from ..errors import PermanentError, TemporaryError

_PERMANENT = ("NotFound", "PermissionDenied", "InvalidArgument", "Unauthenticated", "Forbidden")


class PubSubPublisher:
    def __init__(self, project: str, client: Any = None, timeout_s: float = 30.0) -> None:
        self.project = project
        self.timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # untyped

                self._client = pubsub_v1.PublisherClient()
            return self._client

    def topic_path(self, topic: str) -> str:
        if topic.startswith("projects/"):
            return topic
        if not topic or "/" in topic:
            raise PermanentError(f"invalid topic name {topic!r}")
        return f"projects/{self.project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        path = self.topic_path(topic)
        bad = sorted(k for k, v in attributes.items() if not isinstance(v, str))
        if bad:
            raise PermanentError(f"publish to {path}: attribute values must be strings: {bad}")
        try:
            future = self.client().publish(path, bytes(data), **attributes)
            return str(future.result(timeout=self.timeout_s))
        except concurrent.futures.TimeoutError:
            raise TemporaryError(
                f"publish to {path}: no answer within {self.timeout_s:g}s"
            ) from None
        except Exception as exc:
            raise _classify(path, exc) from exc

    def close(self) -> None:
        """Flush pending messages and stop the client this publisher created."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.stop()


def _classify(path: str, exc: Exception) -> TemporaryError | PermanentError:
    """The one place a publish failure becomes Temporary or Permanent."""
    detail = f"publish to {path}: {type(exc).__name__}: {exc}"
    if isinstance(exc, (TemporaryError, PermanentError)):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    code = getattr(exc, "code", None)
    if isinstance(exc, (ValueError, TypeError)):  # the message itself is unacceptable
        return PermanentError(detail)
    if names & set(_PERMANENT) or code in (400, 401, 403, 404):
        return PermanentError(detail)
    return TemporaryError(detail)
