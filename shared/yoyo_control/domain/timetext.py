"""Times as people read them (pure): every time in a reason or a status line goes here.

Invariant: seconds since the epoch in, ``YYYY-MM-DD HH:MM:SS UTC`` out; nothing in a
reason a person reads is a raw epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
