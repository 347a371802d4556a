"""Cloud Storage behind the ``Storage`` port, through ``google-cloud-storage``.

Invariants: one bucket, keys are object names (checked like the local adapter's);
an upload is one request (atomic: readers see the old or the new object);
429/5xx/timeouts raise TemporaryError; no client or connection before the first call;
``STORAGE_EMULATOR_HOST`` (read by the client) points it at an emulator in tests.
- ``signed_url`` makes a V4 signed GET URL (``SignedUrls``): with a key the credentials
  hold (a service-account key file), or else through IAM's signBlob for the credentials'
  own service account (Cloud Run's and Compute Engine's credentials hold no private key;
  the identity then needs ``iam.serviceAccounts.signBlob`` on itself:
  https://cloud.google.com/storage/docs/access-control/signing-urls-with-helpers and
  https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob).
  A failure to sign is a TemporaryError naming that permission.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.cloud import storage  # type: ignore[attr-defined]  # no type information

from ..errors import TemporaryError
from .local_storage import check_key

# A streamed write's buffer: a multiple of 256 KiB, as resumable uploads require
# (google/cloud/storage/fileio.py CHUNK_SIZE_MULTIPLE; Google's "Perform resumable
# uploads": cloud.google.com/storage/docs/performing-resumable-uploads).
STREAM_CHUNK = 1024 * 1024

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

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A resumable upload in STREAM_CHUNK pieces (``blob.open("wb")``: BlobWriter
        buffers one chunk; its default is 40 MiB, google/cloud/storage/fileio.py). A block
        that raises still closes the writer (BlobWriter commits on close, and on garbage
        collection), so the partial object is deleted at once: the finalize that failed
        is retried and writes it whole."""
        blob = self.bucket.blob(check_key(key))
        try:
            stream = blob.open("wb", chunk_size=STREAM_CHUNK, ignore_flush=True)
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage write {key}: {exc}") from exc
        try:
            yield stream
        except BaseException:
            with contextlib.suppress(Exception):
                stream.close()
                self.delete(key)
            raise
        try:
            stream.close()
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage write {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(check_key(key)).delete()
        except gexc.NotFound:
            pass
        except _TRANSIENT as exc:
            raise TemporaryError(f"cloud storage delete {key}: {exc}") from exc

    def signed_url(self, key: str, expires_s: int, filename: str) -> str:
        blob = self.bucket.blob(check_key(key))
        credentials = self._client._credentials
        iam: dict[str, str] = {}
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:200] or "download"
        try:
            if not isinstance(credentials, google.auth.credentials.Signing):
                # no private key here: IAM signs for the credentials' own service account
                email = getattr(credentials, "service_account_email", "")
                if not credentials.valid or email in ("", "default"):
                    credentials.refresh(google.auth.transport.requests.Request())
                email = str(credentials.service_account_email)
                iam = {"service_account_email": email, "access_token": str(credentials.token)}
            url: str = blob.generate_signed_url(
                version="v4",
                expiration=datetime.timedelta(seconds=expires_s),
                method="GET",
                response_disposition=f'attachment; filename="{safe_name}"',
                **iam,
            )
        except (google.auth.exceptions.GoogleAuthError, *_TRANSIENT) as exc:
            raise TemporaryError(
                f"cloud storage: no signed URL for {key} ({exc}); the gateway's identity "
                "needs iam.serviceAccounts.signBlob on itself"
            ) from exc
        return url
