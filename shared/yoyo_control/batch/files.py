"""OpenAI's files, over the Storage port: uploaded batch inputs and every batch's own files.

Invariants:
- Two kinds of id, both mapped to Storage keys by ``_keys`` and nothing else:
  ``file-<32 hex>`` (an upload: ``files/<id>/content.jsonl`` and its file object
  ``files/<id>/file.json``) and ``file-<batch id>-input|output|errors`` (a batch's own
  objects, work.py's layout). Any other id is FileNotFound, never a Storage key.
- An upload is validated as batch input (BatchService.check: the line-numbered errors of
  ``yoyoctl batch submit``) before anything is stored; its content is written before its
  file object, so a file that is listed or found is whole. Delete removes the object
  first: a file is gone once it is no longer found.
- Content is read in ranges of ``CHUNK`` bytes: a large output never sits in memory whole.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..domain.batch import BATCH_FILES
from ..errors import YoyoError
from . import work
from .service import BatchService

CHUNK = 4 * 1024 * 1024
PURPOSE = "batch"  # the only purpose served: files here are batch inputs
UPLOADS = "files/"
_UPLOAD_ID = re.compile(r"file-[0-9a-f]{32}")  # fullmatch only
_BATCH_FILE_ID = re.compile(rf"file-(batch_[0-9a-f]{{32}})-({'|'.join(BATCH_FILES)})")


class FileNotFound(YoyoError):
    """No file has that id."""


class Files:
    def __init__(self, batches: BatchService) -> None:
        self.batches = batches
        self.storage = batches.storage

    def create(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Store an uploaded batch input; its OpenAI file object."""
        if purpose != PURPOSE:
            raise ValueError(f"purpose {purpose!r:.40} is not served; use {PURPOSE!r}")
        self.batches.check(data, None)
        file_id = f"file-{uuid.uuid4().hex}"
        content, meta = _keys(file_id)
        doc = _file(file_id, len(data), self.batches.clock.now(), filename[:255], purpose)
        self.storage.put(content, data)
        self.storage.put(meta, json.dumps(doc).encode())
        return doc

    def get(self, file_id: str) -> dict[str, Any]:
        """The file object (FileNotFound if there is none)."""
        content, meta = _keys(file_id)
        if meta:
            raw = self.storage.get(meta)
            if raw is None:
                raise FileNotFound(f"no file {file_id!r}")
            return dict(json.loads(raw))
        size = self.storage.size(content)
        batch_id, part = file_id.removeprefix("file-").rsplit("-", 1)
        batch = self.batches.store.get_batch(batch_id)
        if size is None or batch is None:
            raise FileNotFound(f"no file {file_id!r}")
        if part == "input":
            return _file(file_id, size, batch.created_at, f"{batch_id}_input.jsonl", PURPOSE)
        done = batch.completed_at or batch.cancelled_at or batch.expired_at or batch.created_at
        return _file(file_id, size, done, f"{batch_id}_{part}.jsonl", "batch_output")

    def content(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, CHUNK at a time (FileNotFound before the first, if none)."""
        key, meta = _keys(file_id)
        size = self.storage.size(key)
        if size is None or (meta and self.storage.size(meta) is None):
            raise FileNotFound(f"no file {file_id!r}")

        def chunks() -> Iterator[bytes]:
            for start in range(0, size, CHUNK):
                yield self.storage.get(key, start, min(start + CHUNK, size)) or b""

        return chunks()

    def list(self, after: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Uploaded files, newest first; ``after`` a file id (OpenAI's cursor)."""
        docs = []
        for key in self.storage.list(UPLOADS):
            raw = self.storage.get(key) if key.endswith("/file.json") else None
            if raw is not None:
                docs.append(json.loads(raw))
        docs.sort(key=lambda d: (d["created_at"], d["id"]), reverse=True)
        if after is not None:
            ids = [d["id"] for d in docs]
            if after not in ids:
                raise FileNotFound(f"no file {after!r} to list after")
            docs = docs[ids.index(after) + 1 :]
        return docs[:limit]

    def _keep_input(self, batch_id: str, upload: str) -> None:
        """Copy an upload a batch reads to the batch's own input key, then point the
        batch at it (the one case an input is stored twice: its upload is deleted)."""
        own = work.input_key(batch_id)
        if self.storage.size(own) is None:
            self.storage.put(own, self.storage.get(upload) or b"")
        self.batches.store.update_batch(batch_id, _moved(own))

    def delete(self, file_id: str) -> dict[str, Any]:
        """Remove an uploaded file (a batch's own files go with the batch's retention)."""
        content, meta = _keys(file_id)
        if not meta:
            raise ValueError(f"{file_id} belongs to its batch and cannot be deleted")
        self.get(file_id)
        for batch in self.batches.store.list_batches():
            if batch.input_key == content:  # the batch reads the upload (stored once):
                self._keep_input(batch.id, content)  # it gets its own copy first
        self.storage.delete(meta)
        self.storage.delete(content)
        return {"id": file_id, "object": "file", "deleted": True}


def _moved(key: str) -> Any:
    def change(current: Any) -> Any:
        return None if current is None else replace(current, input_key=key)

    return change


def _file(
    file_id: str, size: int, created_at: float, filename: str, purpose: str
) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(created_at),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _keys(file_id: str) -> tuple[str, str]:
    """(content key, file object key: "" for a batch's own file); FileNotFound if the id
    is neither kind."""
    if _UPLOAD_ID.fullmatch(file_id):
        return work.upload_key(file_id), f"{UPLOADS}{file_id}/file.json"
    match = _BATCH_FILE_ID.fullmatch(file_id)
    if match is None:
        raise FileNotFound(f"no file {file_id[:80]!r}")
    batch_id, part = match.groups()
    keys = {"input": work.input_key, "output": work.output_key, "errors": work.error_key}
    return keys[part](batch_id), ""
