"""Structured JSON logs that Cloud Logging understands (one object per line on stdout).

Invariants: every record has ``severity`` and ``message``; labels (pool, message id,
rule) go under ``logging.googleapis.com/labels`` so they are indexed; logging never
raises.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, TextIO

_stream: TextIO | None = None


def set_stream(stream: TextIO | None) -> None:
    global _stream
    _stream = stream


def log(severity: str, message: str, **fields: Any) -> None:
    labels = {k: str(v) for k, v in fields.items() if k in _LABELS and v not in (None, "")}
    record: dict[str, Any] = {"severity": severity, "message": message}
    record.update({k: v for k, v in fields.items() if k not in _LABELS})
    if labels:
        record["logging.googleapis.com/labels"] = labels
    with contextlib.suppress(Exception):  # a log line must never take a handler down
        print(json.dumps(record, default=str), file=_stream or sys.stdout, flush=True)


_LABELS = {"pool", "message_id", "rule", "instance", "source", "topic"}


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
