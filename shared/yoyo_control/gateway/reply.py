"""The gateway's answers decided before any VM is called, and its bounded JSON body reader.

Invariants: every error body is OpenAI-format, ``{"error": {"message", "type", "param",
"code"}}``; a body is read at most ``limit`` + 1 bytes (a larger one is 413, whatever
Content-Length claims); a JSON body must be an object.
"""

from __future__ import annotations

import json
from typing import Any

import flask


class Reply(Exception):
    """An answer decided before any VM was called (an error, as OpenAI formats them)."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        code: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.headers = status, kind, code, headers or {}
        self.param = param

    def response(self) -> flask.Response:
        error = {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}
        return flask.Response(
            json.dumps({"error": error}), self.status, self.headers, content_type="application/json"
        )


def too_large(limit: int, setting: str = "gateway.max_body_bytes") -> Reply:
    return Reply(
        413,
        f"the request body is larger than {limit} bytes ({setting})",
        "invalid_request_error",
        "request_too_large",
    )


def read_json(request: flask.Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The body (at most ``limit`` bytes) and the JSON object it holds, else a Reply."""
    if (request.content_length or 0) > limit:
        raise too_large(limit)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not UTF-8, too deep, huge numbers…
        raise Reply(
            400, f"the body is not JSON: {exc}", "invalid_request_error", "invalid_json"
        ) from None
    if not isinstance(doc, dict):
        raise Reply(400, "the body must be a JSON object", "invalid_request_error", "invalid_body")
    return body, doc


def json_response(doc: Any, status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(doc), status, content_type="application/json")
