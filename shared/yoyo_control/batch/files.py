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
- Content is read in ranges of ``CHUNK`` bytes: a large output never sits in memory whole;
  where Storage can sign URLs (``SignedUrls``), ``signed_url`` hands out a short-lived
  link instead (the gateway answers large contents with it).
- ``list`` shows every file ``get`` finds: uploads (purpose ``batch``), each finished
  batch's output and error files (``batch_output``) and the input of a batch submitted
  without an upload (``batch``), ordered by (created_at, id), newest first unless asked;
  a batch's file whose object is missing is left out, never listed broken.
- File objects follow OpenAI's published schema: no null fields (``expires_at`` and
  ``status_details`` are integers/strings there, absent when unknown).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..domain.batch import BATCH_FILES, Batch, batch_file_id
from ..errors import YoyoError
from ..ports import SignedUrls
from . import work
from .service import BatchService

CHUNK = 4 * 1024 * 1024
PURPOSE = "batch"  # the only purpose of an upload: files uploaded here are batch inputs
OUTPUT_PURPOSE = "batch_output"  # a batch's output and error files
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
            return _shaped(json.loads(raw))
        batch_id, part = file_id.removeprefix("file-").rsplit("-", 1)
        batch = self.batches.store.get_batch(batch_id)
        size = self.storage.size(content) if batch is not None else None
        if size is None or batch is None:
            raise FileNotFound(f"no file {file_id!r}")
        return _batch_file(batch, part, size)

    def size(self, file_id: str) -> int:
        """The content's size in bytes (FileNotFound if there is no such file)."""
        key, meta = _keys(file_id)
        size = self.storage.size(key)
        if size is None or (meta and self.storage.size(meta) is None):
            raise FileNotFound(f"no file {file_id!r}")
        return size

    def content(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, CHUNK at a time (FileNotFound before the first, if none)."""
        key, _ = _keys(file_id)
        size = self.size(file_id)

        def chunks() -> Iterator[bytes]:
            for start in range(0, size, CHUNK):
                yield self.storage.get(key, start, min(start + CHUNK, size)) or b""

        return chunks()

    def signed_url(self, file_id: str, expires_s: int) -> str | None:
        """A link that downloads the content for ``expires_s`` seconds; None where Storage
        cannot make one (the embedded default). Call after ``size`` found the file."""
        if not isinstance(self.storage, SignedUrls):
            return None
        key, _ = _keys(file_id)
        return self.storage.signed_url(key, expires_s, f"{file_id}.jsonl")

    def list(
        self,
        after: str | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "desc",
        purpose: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every file (see the module's invariants) ordered by (created_at, id), newest
        first (``order="asc"``: oldest first), only ``purpose``'s if given; ``after`` a
        file id (OpenAI's cursor: the files that follow it in this order)."""
        # (created_at, id, the file object or how to make it): batch files are sized only
        # when they fall on the page asked for
        entries: list[tuple[int, str, dict[str, Any] | tuple[Batch, str]]] = []
        for key in self.storage.list(UPLOADS):
            raw = self.storage.get(key) if key.endswith("/file.json") else None
            if raw is not None:
                doc = _shaped(json.loads(raw))
                entries.append((doc["created_at"], doc["id"], doc))
        for batch in self.batches.store.list_batches():
            for part in _batch_parts(batch):
                file_id = batch_file_id(batch.id, part)
                entries.append((int(_created_at(batch, part)), file_id, (batch, part)))
        if purpose is not None:
            entries = [e for e in entries if _purpose_of(e[2]) == purpose]
        entries.sort(key=lambda e: (e[0], e[1]), reverse=order == "desc")
        if after is not None:
            ids = [e[1] for e in entries]
            if after not in ids:
                raise FileNotFound(f"no file {after[:80]!r} to list after")
            entries = entries[ids.index(after) + 1 :]
        docs: list[dict[str, Any]] = []
        for _, file_id, made in entries:
            if limit is not None and len(docs) >= limit:
                break
            if isinstance(made, dict):
                docs.append(made)
                continue
            size = self.storage.size(_keys(file_id)[0])
            if size is not None:
                docs.append(_batch_file(made[0], made[1], size))
        return docs

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
    }


def _shaped(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored file object without the null fields older versions wrote (OpenAI's schema
    types ``expires_at`` and ``status_details`` as integer and string, never null)."""
    return {k: v for k, v in doc.items() if v is not None}


def _batch_parts(batch: Batch) -> list[str]:
    """The batch's own files that are listed: its input when it was not an upload (an
    upload is listed as itself), its output and error files once written."""
    parts = [] if batch.input_file else ["input"]
    return parts + [
        p for p, key in (("output", batch.output_key), ("errors", batch.error_key)) if key
    ]


def _created_at(batch: Batch, part: str) -> float:
    if part == "input":
        return batch.created_at
    done = batch.completed_at or batch.failed_at or batch.cancelled_at or batch.expired_at
    return done or batch.finalizing_at or batch.created_at


def _batch_file(batch: Batch, part: str, size: int) -> dict[str, Any]:
    file_id = batch_file_id(batch.id, part)
    purpose = PURPOSE if part == "input" else OUTPUT_PURPOSE
    created = _created_at(batch, part)
    return _file(file_id, size, created, f"{batch.id}_{part}.jsonl", purpose)


def _purpose_of(made: dict[str, Any] | tuple[Batch, str]) -> str:
    if isinstance(made, dict):
        return str(made["purpose"])
    return PURPOSE if made[1] == "input" else OUTPUT_PURPOSE


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
