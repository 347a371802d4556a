"""The gateway's answers decided before any VM is called, and its bounded JSON body reader.

Invariants: every error body is OpenAI-format, ``{"error": {"message", "type", "param",
"code"}}``; a body is read at most ``limit`` + 1 bytes (a larger one is 413, whatever
Content-Length claims); a JSON body must be an object.
"""

from __future__ import annotations

import json
import math
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

    def body(self) -> bytes:
        error = {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()

    def response(self) -> flask.Response:
        return flask.Response(
            self.body(), self.status, self.headers, content_type="application/json"
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
    return body, parse_json(body)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotFinite(f"the number {text[:40]} is out of range (not finite)")
    return number


def _no_constant(name: str) -> float:
    raise NotFinite(f"{name} is not a number JSON allows")


class NotFinite(ValueError):
    pass


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; numbers must be finite (1e400, NaN, Infinity: 400)."""
    try:
        doc = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except NotFinite as exc:
        raise Reply(400, str(exc), "invalid_request_error", "invalid_number") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, too deep, huge numbers…
        raise Reply(
            400, f"the body is not JSON: {exc}", "invalid_request_error", "invalid_json"
        ) from None
    if not isinstance(doc, dict):
        raise Reply(400, "the body must be a JSON object", "invalid_request_error", "invalid_body")
    return doc


def json_response(doc: Any, status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(doc), status, content_type="application/json")
