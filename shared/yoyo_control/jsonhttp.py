"""Tiny JSON-over-HTTP client helpers (stdlib only, so a VM's agent and worker start fast).

Invariants: never raises on an HTTP status (callers read ``status``); connection errors
and timeouts raise ``OSError``; bodies are bytes in, (status, bytes) out.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    status, _, raw = exchange(method, url, body, headers, timeout)
    return status, raw


def exchange(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """``request``, with the answer's headers (names in lower case)."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _lower(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def post_json(
    url: str, doc: Any, timeout: float = 10.0, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    status, raw = request("POST", url, json.dumps(doc).encode(), all_headers, timeout)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def get(
    url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    return request("GET", url, headers=headers, timeout=timeout)
