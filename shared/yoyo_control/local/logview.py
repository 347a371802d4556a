"""Readable log lines for the foreground ``local up``: the JSON records, reformatted.

Invariants: a routine record (a tick or heartbeat that changed nothing) is not shown;
a line that is a JSON log record becomes ``HH:MM:SS SEVERITY [labels] message
key=value…``; any other line passes through unchanged; writing never raises.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import Any, TextIO

_LABELS = "logging.googleapis.com/labels"


_ROUTINE = frozenset({"Tick", "heartbeat recorded", "stale heartbeat ignored"})


def routine(record: dict[str, Any]) -> bool:
    """A record that says nothing new (a tick or heartbeat that changed nothing)."""
    return (
        record.get("severity") == "INFO"
        and record.get("message") in _ROUTINE
        and not record.get("actions")
    )


def pretty(line: str, prefix: str = "") -> str | None:
    """The readable line, or None for a routine record (not shown)."""
    try:
        record = json.loads(line)
    except ValueError:
        return f"{prefix}{line}"
    if not isinstance(record, dict) or "message" not in record:
        return f"{prefix}{line}"
    if routine(record):
        return None
    for key, empty in (("duplicate", False), ("actions", [])):
        if record.get(key) == empty:
            record.pop(key)
    labels: dict[str, Any] = record.pop(_LABELS, {}) or {}
    severity = str(record.pop("severity", "INFO"))
    message = str(record.pop("message"))
    where = "/".join(str(labels[k]) for k in ("pool", "instance") if k in labels)
    extra = " ".join(
        f"{k}={v}" for k, v in {**labels, **record}.items() if k not in ("pool", "instance")
    )
    stamp = time.strftime("%H:%M:%S")
    return f"{stamp} {severity:<7} {prefix}{f'[{where}] ' if where else ''}{message}" + (
        f"  ({extra})" if extra else ""
    )


class PrettyStream:
    """A text stream for logs.set_stream that prints readable lines to ``out``."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._buffer = ""

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            while "\n" in self._buffer:
                line, self._buffer = self._buffer.split("\n", 1)
                self.line(line)
        return len(text)

    def line(self, line: str, prefix: str = "") -> None:
        with contextlib.suppress(Exception):
            text = pretty(line, prefix)
            if text is not None:
                print(text, file=self.out, flush=True)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self.out.flush()
