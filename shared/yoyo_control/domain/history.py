"""A pool's history (pure): advice that outlives a run, for the keep-alive and the pre-warm.

What it keeps (``PoolState.history``, a small field of the pool document):
- ``classes``: idle gaps by class — the time of week the gap began (weekday or weekend ×
  six-hour block of the local day, 8 classes) — as decayed counts over coarse bins
  (``BINS``), flat (class-major: Firestore stores no array inside an array); each new
  gap multiplies its class's older counts by ``1 - 1/MEMORY``;
- ``firsts``: the times (UTC minutes) of the first requests after a long idle (a gap of at
  least ``LONG_IDLE_S``), the newest ``MAX_FIRSTS``, none older than ``HORIZON_DAYS``;
- ``since``: when the history began (UTC minutes): days before it are not evidence;
- the pre-warm budget spent today (``prewarm_day``, ``prewarm_s``, ``prewarm_at``):
  charged by domain/prewarm.py in the same transaction as the lease it grants.

Invariants: pure (no clock, no I/O); bounded — at most 8 × len(BINS) counts and
MAX_FIRSTS firsts, about 1 KiB as a document; ``record`` and ``sanitize`` never mutate
their input; ``sanitize`` turns any decoded value (a document from an older or newer
version, a corrupt or huge one) into a valid bounded History or the empty one — the
history is advice: losing it, or part of it, only costs predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

VERSION = 1
# Upper edges of the gap bins (seconds); a gap falls in the first bin whose edge exceeds it.
BINS: tuple[float, ...] = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, math.inf)
CLASSES = 8  # weekday/weekend × four six-hour blocks of the local day
MEMORY = 32.0  # gaps per class: each new one decays the class's older counts
MAX_FIRSTS = 64
HORIZON_DAYS = 28  # firsts older than this are dropped; prediction looks this far back
LONG_IDLE_S = 3600.0  # a first request after a gap at least this long is remembered
_NEGLIGIBLE = 1e-3


@dataclass(frozen=True)
class History:
    version: int = VERSION
    since: int | None = None  # UTC minute when the history began
    classes: tuple[float, ...] = ()  # CLASSES × len(BINS) decayed counts, class-major
    firsts: tuple[int, ...] = ()  # UTC minutes of first requests after a long idle
    prewarm_day: str = ""  # local date of the budget spent below
    prewarm_s: float = 0.0  # pre-warm lease-seconds granted that day
    prewarm_at: float | None = None  # when the last pre-warm lease was granted

    def gaps_seen(self) -> float:
        return sum(self.classes)

    def rows(self) -> list[tuple[float, ...]]:
        """The counts of each class, in class order (empty: none recorded)."""
        n = len(BINS)
        return [self.classes[i * n : (i + 1) * n] for i in range(len(self.classes) // n)]


EMPTY = History()


def local(at: float, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):
        zone = ZoneInfo("UTC")
    return datetime.fromtimestamp(at, UTC).astimezone(zone)


def class_of(at: float, timezone: str) -> int:
    """The time-of-week class of a moment: 0–3 weekday blocks, 4–7 weekend blocks."""
    when = local(at, timezone)
    return (4 if when.weekday() >= 5 else 0) + when.hour // 6


def bin_of(gap_s: float) -> int:
    for i, edge in enumerate(BINS):
        if gap_s < edge:
            return i
    return len(BINS) - 1


def record(
    history: History, began: float, ended: float, timezone: str, memory: float = MEMORY
) -> History:
    """The history after an idle gap from ``began`` to ``ended`` (the request that ended it)."""
    gap = ended - began
    if not (math.isfinite(began) and math.isfinite(ended)) or gap < 0 or abs(ended) > 1e11:
        return history
    history = sanitize(history)
    cls = class_of(began, timezone)
    keep = 1.0 - 1.0 / max(1.0, memory)
    rows = [list(r) for r in history.rows()] or [[0.0] * len(BINS) for _ in range(CLASSES)]
    row = [0.0 if c * keep < _NEGLIGIBLE else round(c * keep, 4) for c in rows[cls]]
    row[bin_of(gap)] += 1.0
    rows[cls] = row
    flat = tuple(c for r in rows for c in r)
    minute = int(ended // 60)
    firsts = history.firsts
    if gap >= LONG_IDLE_S:
        firsts = (*firsts, minute)
    oldest = minute - HORIZON_DAYS * 1440
    firsts = tuple(f for f in firsts if f >= oldest)[-MAX_FIRSTS:]
    since = history.since if history.since is not None else int(began // 60)
    return replace(history, since=since, classes=flat, firsts=firsts)


def start(history: History, at: float) -> History:
    """A history that begins observing at ``at`` (a pool's first decision)."""
    history = sanitize(history)
    if history.since is not None or not math.isfinite(at) or abs(at) > 1e11:
        return history
    return replace(history, since=int(at // 60))


def sanitize(value: object) -> History:
    """A valid, bounded History from whatever was decoded (else the empty one)."""
    if not isinstance(value, History) or value.version != VERSION:
        return EMPTY
    try:
        classes: tuple[float, ...] = ()
        if len(value.classes) == CLASSES * len(BINS):
            counts = tuple(float(c) for c in value.classes)
            if all(math.isfinite(c) and 0 <= c <= 1e6 for c in counts):
                classes = counts
        firsts = tuple(int(f) for f in value.firsts[-MAX_FIRSTS:] if _minute(f))
        since = int(value.since) if value.since is not None and _minute(value.since) else None
        spent = float(value.prewarm_s)
        spent = spent if math.isfinite(spent) and 0 <= spent <= 86400 * 1000 else 0.0
        at = value.prewarm_at
        at = float(at) if isinstance(at, (int, float)) and math.isfinite(at) else None
        day = value.prewarm_day if isinstance(value.prewarm_day, str) else ""
    except (TypeError, ValueError, OverflowError):
        return EMPTY
    return History(VERSION, since, classes, tuple(sorted(firsts)), day[:10], spent, at)


def _minute(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 1e10
    )


def describe(history: History, timezone: str) -> list[str]:
    """The learned pattern in a few lines, as ``yoyoctl status`` shows it."""
    h = sanitize(history)
    if h.since is None:
        return ["no history yet"]
    names = [f"{kind} {h:02d}-{h + 6:02d}" for kind in ("wkday", "wkend") for h in (0, 6, 12, 18)]
    lines = [f"history since {local(h.since * 60, timezone):%Y-%m-%d %H:%M %Z}"]
    for name, row in zip(names, h.rows(), strict=False):
        total = sum(row)
        if total < 0.5:
            continue
        short = sum(c for c, edge in zip(row, BINS, strict=True) if edge <= 900.0)
        lines.append(f"gaps {name}: {total:.1f} (≤15 min: {100 * short / total:.0f}%)")
    if h.firsts:
        times = [local(f * 60, timezone).strftime("%a %H:%M") for f in sorted(h.firsts)[-6:]]
        lines.append(f"first requests after a long idle ({len(h.firsts)}): " + ", ".join(times))
    return lines
