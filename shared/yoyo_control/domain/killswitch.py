"""Reading the kill switch from a document a person may have written by hand (pure).

Invariants: a console write is never refused; a missing or null ``engaged`` (or no
document) is off; anything that is not clearly "no" is ON (lifting the switch must be
explicit, so doubt engages it); ``at`` becomes seconds since the epoch or None.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .model import KillSwitch
from .timetext import utc

FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0", "", "disengaged", "none", "null"})


def kill_from_fields(fields: Mapping[str, Any] | None) -> KillSwitch:
    if not fields:
        return KillSwitch()
    return KillSwitch(
        engaged=engaged(fields.get("engaged")),
        reason=_text(fields.get("reason"), 500),
        by=_text(fields.get("by"), 100),
        at=seconds(fields.get("at")),
    )


def engaged(raw: Any) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)):
        return raw != 0
    if isinstance(raw, str):
        return raw.strip().lower() not in FALSE_WORDS  # "true", "yes", "on", unknown text
    return True  # a map, an array, a timestamp…: not a "no", so the switch wins


def seconds(raw: Any) -> float | None:
    """A timestamp (datetime, number, numeric or ISO 8601 string) as epoch seconds."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, datetime):
        return (raw if raw.tzinfo else raw.replace(tzinfo=UTC)).timestamp()
    if isinstance(raw, (int, float)):
        value = float(raw)
        return value if math.isfinite(value) else None
    if isinstance(raw, str):
        text = raw.strip()
        with contextlib.suppress(ValueError):
            value = float(text)
            return value if math.isfinite(value) else None
        with contextlib.suppress(ValueError):
            return seconds(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return None


def _text(raw: Any, limit: int) -> str:
    return "" if raw is None else (raw if isinstance(raw, str) else str(raw))[:limit]


def describe(kill: KillSwitch, with_time: bool = True) -> str:
    """One line on the switch that says what is known and nothing that is not.

    A console write may set only ``engaged``: then there is no author, time or reason to
    show, and the line says so instead of printing placeholders.
    """
    if not kill.engaged:
        return "kill switch off"
    return "kill switch engaged" + _details(kill, with_time)


def banner(kill: KillSwitch) -> str:
    """``describe`` for a headline: the engaged switch in capitals."""
    return "KILL SWITCH ENGAGED" + _details(kill, True) if kill.engaged else "kill switch: off"


def _details(kill: KillSwitch, with_time: bool) -> str:
    text = f" by {kill.by}" if kill.by else ""
    if with_time and kill.at is not None:
        text += f" at {utc(kill.at)}"
    return text + (f": {kill.reason}" if kill.reason else " (no reason given)")
