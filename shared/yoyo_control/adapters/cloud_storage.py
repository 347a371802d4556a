"""Cloud Storage behind the ``Storage`` port, through ``google-cloud-storage``.

Invariants: one bucket, keys are object names (checked like the local adapter's);
an upload is one request (atomic: readers see the old or the new object);
429/5xx/timeouts raise TemporaryError; no client or connection before the first call;
``STORAGE_EMULATOR_HOST`` (read by the client) points it at an emulator in tests.
"""

from __future__ import annotations

import threading
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage  # type: ignore[attr-defined]  # no type information

from ..errors import TemporaryError
from .local_storage import check_key

_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    ConnectionError,
    TimeoutError,
)


class CloudStorage:
    def __init__(self, bucket: str, project: str | None = None, client: Any = None) -> None:
        self.bucket_name = bucket
        self.project = project
        self._client = client
        self._lock = threading.Lock()

    @property
    def bucket(self) -> storage.Bucket:
        with self._lock:
            if self._client is None:
                self._client = storage.Client(project=self.project)
            return self._client.bucket(self.bucket_name)

    def put(self, key: str, data: bytes) -> None:
        blob = self.bucket.blob(check_key(key))
        try:
            blob.upload_from_string(data)
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage put {key}: {exc}") from exc

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes | None:
        blob = self.bucket.blob(check_key(key))
        if end is not None and end <= start:
            return b"" if self.size(key) is not None else None
        try:
            # download_as_bytes takes an inclusive end
            data: bytes = blob.download_as_bytes(
                start=start or None, end=None if end is None else end - 1
            )
        except gexc.NotFound:
            return None
        except gexc.RequestRangeNotSatisfiable:
            return b""
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage get {key}: {exc}") from exc
        return data

    def size(self, key: str) -> int | None:
        try:
            blob = self.bucket.get_blob(check_key(key))
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage stat {key}: {exc}") from exc
        return None if blob is None or blob.size is None else int(blob.size)

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(b.name for b in self.bucket.list_blobs(prefix=prefix))
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage list {prefix}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(check_key(key)).delete()
        except gexc.NotFound:
            pass
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage delete {key}: {exc}") from exc
