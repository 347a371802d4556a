"""Times as people read them (pure): every time in a reason or a status line goes here.

Invariant: seconds since the epoch in, ``YYYY-MM-DD HH:MM:SS UTC`` (or its ``HH:MM:SS``)
out; nothing in a reason a person reads is a raw epoch; a missing moment reads ``—``, a
missing relative time ``never``.
"""

from __future__ import annotations

from datetime import UTC, datetime

NO_TIME = "—"


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def stamp(at: float | None) -> str:
    """``utc(at)``, or ``—`` when there is no time."""
    return NO_TIME if at is None else utc(at)


def clock(at: float | None) -> str:
    """The time of day in UTC, ``HH:MM:SS``, or ``—`` when there is no time."""
    return NO_TIME if at is None else datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


def span(seconds: float) -> str:
    """A duration: ``45s``, ``5m03s``, ``2h07m``."""
    whole = int(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def relative(now: float, at: float | None) -> str:
    """``at`` seen from ``now``: ``in 5m03s``, ``45s ago``, or ``never``."""
    if at is None:
        return "never"
    if at > now:
        return f"in {span(at - now)}"
    return f"{span(now - at)} ago"
