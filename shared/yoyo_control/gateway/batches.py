"""``/v1/files`` and ``/v1/batches``: OpenAI's Files and Batch API over BatchService.

Thin wrappers: every rule lives in BatchService (validation, pools, states) and Files
(ids, storage); this module only reads HTTP and renders OpenAI's objects.

Invariants:
- Reached only after the gateway's bearer-key check; every error is a Reply
  (OpenAI-format): bad input 400 (a bad line named by its number), unknown id 404,
  wrong method 405, an upload body over ``gateway.max_file_bytes`` (any other body over
  ``gateway.max_body_bytes``) 413. A refused request stores nothing.
- A batch's pool is the one serving its lines' ``model`` (as the gateway routes a request).
  Its input is read whole, so only a file of purpose ``batch`` no larger than
  ``gateway.max_file_bytes`` is taken (400 otherwise, before anything is read or stored).
- Lists are newest first, paged by ``limit`` and ``after`` (an id), with ``has_more``;
  ``GET /v1/files`` also takes ``order`` (asc|desc) and ``purpose``, and lists every
  file ``GET /v1/files/<id>`` finds (a finished batch's output and error files too).
- Every object answered follows OpenAI's published OpenAPI schema (tests/gateway/openapi):
  a null is sent only where the schema allows one (a batch's ``metadata``); an empty
  file list has ``first_id``/``last_id`` "" (required strings there), an empty batch list
  none (optional there).
- ``GET /v1/files/<id>/content`` streams a file up to ``gateway.stream_file_bytes``; a
  larger one, where Storage signs URLs, is a 302 to a V4 signed URL valid for
  ``gateway.file_url_s`` (Cloud Run functions stream at most 10 MB; the ``openai``
  client follows the redirect and drops its key on the way to another host).
"""

from __future__ import annotations

from typing import Any

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from .. import logs
from ..batch.files import PURPOSE, FileNotFound, Files
from ..batch.service import BatchNotFound, BatchService
from ..config import GatewaySettings
from ..domain.batch import Batch, BatchInputError, to_openai
from ..errors import TemporaryError
from .reply import Reply, json_response, read_json, too_large

# output_expires_after is accepted and checked as OpenAI's schema says; a batch's files
# live as long as the bucket keeps them (terraform: batch.retention_days)
_CREATE_KEYS = {
    "input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after",
}  # fmt: skip
_EXPIRES_S = (3600, 2_592_000)  # OpenAI's BatchFileExpirationAfter.seconds range
_NULLABLE = {"metadata"}  # the batch object's only field OpenAI's schema lets be null


class BatchApi:
    def __init__(self, batches: BatchService, settings: GatewaySettings) -> None:
        self.batches, self.files, self.settings = batches, Files(batches), settings

    def __call__(self, request: flask.Request, path: str) -> flask.Response:
        """Serve ``path`` (``/files…`` or ``/batches…``, the /v1 prefix removed)."""
        try:
            return self._route(request, path.strip("/").split("/"))
        except BatchInputError as exc:
            param = "file" if path == "/files" else None
            code = "invalid_batch_input"
            raise Reply(400, str(exc), "invalid_request_error", code, None, param) from None
        except (FileNotFound, BatchNotFound) as exc:
            raise Reply(404, str(exc), "invalid_request_error", "not_found") from None

    def _route(self, request: flask.Request, parts: list[str]) -> flask.Response:
        method = request.method
        match parts:
            case ["files"]:
                _allow(method, "GET", "POST")
                return self._upload(request) if method == "POST" else self._list_files(request)
            case ["files", file_id]:
                _allow(method, "GET", "DELETE")
                if method == "DELETE":
                    return json_response(_invalid(self.files.delete, file_id))
                return json_response(self.files.get(file_id))
            case ["files", file_id, "content"]:
                _allow(method, "GET")
                return self._content(file_id)
            case ["batches"]:
                _allow(method, "GET", "POST")
                return self._create(request) if method == "POST" else self._list_batches(request)
            case ["batches", batch_id]:
                _allow(method, "GET")
                return json_response(_batch(self.batches.get(batch_id)))
            case ["batches", batch_id, "cancel"]:
                _allow(method, "POST")
                return json_response(_batch(self.batches.cancel(batch_id)))
        raise Reply(404, f"no route {request.path}", "invalid_request_error", "unknown_url")

    def _upload(self, request: flask.Request) -> flask.Response:
        limit = self.settings.max_file_bytes
        if (request.content_length or 0) > limit:
            raise too_large(limit, "gateway.max_file_bytes")
        request.max_content_length = limit  # also bounds a body without Content-Length
        try:
            upload, purpose = request.files.get("file"), request.form.get("purpose")
        except RequestEntityTooLarge:
            raise too_large(limit, "gateway.max_file_bytes") from None
        if upload is None or purpose is None:
            raise Reply(
                400,
                "send multipart/form-data with 'file' (the JSONL) and 'purpose' ('batch')",
                "invalid_request_error",
                "missing_field",
                param="file" if upload is None else "purpose",
            )
        doc = _invalid(self.files.create, upload.read(), upload.filename or "upload.jsonl", purpose)
        return json_response(doc)

    def _content(self, file_id: str) -> flask.Response:
        """The bytes, streamed; a large file by a signed URL where Storage makes one."""
        size = self.files.size(file_id)
        if size > self.settings.stream_file_bytes:
            try:
                url = self.files.signed_url(file_id, self.settings.file_url_s)
            except TemporaryError as exc:
                logs.error(f"gateway: {exc}")
                raise Reply(
                    503,
                    f"the file's download link could not be made ({exc}); retry",
                    "service_unavailable",
                    "signed_url_failed",
                    {"Retry-After": "5"},
                ) from None
            if url is not None:
                return flask.Response(b"", 302, {"Location": url, "Cache-Control": "no-store"})
        headers = {"Content-Length": str(size)}
        return flask.Response(
            self.files.content(file_id), 200, headers, content_type="application/jsonl"
        )

    def _list_files(self, request: flask.Request) -> flask.Response:
        limit = _limit(request, 10_000, 10_000)
        order = request.args.get("order", "desc")
        if order not in ("asc", "desc"):
            raise Reply(
                400, "order must be 'asc' or 'desc'", "invalid_request_error",
                "invalid_order", None, "order",
            )  # fmt: skip
        after, purpose = request.args.get("after"), request.args.get("purpose")
        docs = self.files.list(after, limit + 1, "asc" if order == "asc" else "desc", purpose)
        return _page(docs, limit, empty_id="")

    def _create(self, request: flask.Request) -> flask.Response:
        _, doc = read_json(request, self.settings.max_body_bytes)
        unknown = sorted(set(doc) - _CREATE_KEYS)
        if unknown:
            raise Reply(
                400,
                f"unknown field(s) {unknown}; accepted: {sorted(_CREATE_KEYS)}",
                "invalid_request_error",
                "invalid_body",
                param=unknown[0],
            )
        for name in ("input_file_id", "endpoint"):
            if not isinstance(doc.get(name), str):
                raise Reply(
                    400, f"'{name}' is required (a string)", "invalid_request_error",
                    "missing_field", param=name,
                )  # fmt: skip
        _check_expires_after(doc.get("output_expires_after"))
        window, metadata = doc.get("completion_window", "24h"), doc.get("metadata") or {}
        if not isinstance(window, str) or not isinstance(metadata, dict):
            raise Reply(
                400,
                "'completion_window' must be a string and 'metadata' an object",
                "invalid_request_error",
                "invalid_body",
            )
        file_id = doc["input_file_id"]
        self._check_input(file_id)
        data = b"".join(self.files.content(file_id))
        batch = self.batches.submit(data, None, window, metadata, doc["endpoint"], file_id)
        return json_response(_batch(batch))

    def _check_input(self, file_id: str) -> None:
        """The create reads its input whole: only a batch input (purpose ``batch``) no
        larger than an upload may be (a CLI-submitted input or an output can be far
        larger than the instance is sized for)."""
        file = self.files.get(file_id)
        if file["purpose"] != PURPOSE:
            raise Reply(
                400,
                f"{file_id} is a file of purpose {file['purpose']!r}; a batch's input is a"
                f" file of purpose {PURPOSE!r}",
                "invalid_request_error",
                "invalid_input_file",
                param="input_file_id",
            )
        if file["bytes"] > self.settings.max_file_bytes:
            raise Reply(
                400,
                f"{file_id} is {file['bytes']} bytes; a batch made here reads at most"
                f" gateway.max_file_bytes ({self.settings.max_file_bytes}): submit it with"
                " yoyoctl batch submit",
                "invalid_request_error",
                "file_too_large",
                param="input_file_id",
            )

    def _list_batches(self, request: flask.Request) -> flask.Response:
        limit = _limit(request, 20, 100)
        batches = self.batches.list(after=request.args.get("after"), limit=limit + 1)
        return _page([_batch(b) for b in batches], limit, empty_id=None)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise Reply(
            405, f"use {' or '.join(allowed)} here", "invalid_request_error", "method_not_allowed"
        )


def _invalid(call: Any, *args: Any) -> Any:
    """``call(*args)``, a ValueError (not a bad line: a bad request) as a 400."""
    try:
        return call(*args)
    except BatchInputError:
        raise
    except ValueError as exc:
        raise Reply(400, str(exc), "invalid_request_error", "invalid_request") from None


def _limit(request: flask.Request, default: int, most: int) -> int:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise Reply(
            400, f"limit must be 1..{most}", "invalid_request_error", "invalid_limit", None, "limit"
        )
    return int(raw)


def _page(data: list[dict[str, Any]], limit: int, empty_id: str | None) -> flask.Response:
    """OpenAI's cursor page of ``data`` (fetched with one item more than ``limit``); an
    empty page's ``first_id``/``last_id`` are ``empty_id``, or absent if it is None."""
    shown = data[:limit]
    page: dict[str, Any] = {"object": "list", "data": shown}
    if shown:
        page.update(first_id=shown[0]["id"], last_id=shown[-1]["id"])
    elif empty_id is not None:
        page.update(first_id=empty_id, last_id=empty_id)
    page["has_more"] = len(data) > limit
    return json_response(page)


def _batch(batch: Batch) -> dict[str, Any]:
    """OpenAI's batch object as its schema types it: a field not set yet is absent, not
    null (the ``openai`` client reads both as None)."""
    return {k: v for k, v in to_openai(batch).items() if v is not None or k in _NULLABLE}


def _check_expires_after(policy: object) -> None:
    """``output_expires_after`` as OpenAI's BatchFileExpirationAfter: absent, or
    ``{"anchor": "created_at", "seconds": 3600..2592000}``."""
    if policy is None:
        return
    low, high = _EXPIRES_S
    seconds = policy.get("seconds") if isinstance(policy, dict) else None
    if not (
        isinstance(policy, dict)
        and set(policy) == {"anchor", "seconds"}
        and policy["anchor"] == "created_at"
        and type(seconds) is int  # not a bool, not 3600.0
        and low <= seconds <= high
    ):
        raise Reply(
            400,
            f"output_expires_after must be {{'anchor': 'created_at', 'seconds': {low}..{high}}}",
            "invalid_request_error",
            "invalid_body",
            param="output_expires_after",
        )
