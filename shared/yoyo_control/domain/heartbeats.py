"""Heartbeat bookkeeping (pure): which report wins, and which ones matter.

Invariants: a heartbeat from an older boot or with an older ``sent_at`` than the stored
one never replaces it (reordered delivery is harmless); ``last_busy_at`` carries over
so the idle rule sees the last time the instance had work.
"""

from __future__ import annotations

from dataclasses import replace

from .model import Heartbeat


def is_busy(hb: Heartbeat) -> bool:
    return hb.busy or hb.running > 0 or hb.waiting > 0


def merge(previous: Heartbeat | None, new: Heartbeat) -> Heartbeat | None:
    """What to store for ``new`` given ``previous``; None if ``new`` is stale."""
    if previous is not None and new.sent_at <= previous.sent_at:
        return None
    carried = previous.last_busy_at if previous is not None else None
    last_busy = new.received_at if is_busy(new) else carried
    return replace(new, last_busy_at=last_busy)


def matters(previous: Heartbeat | None, new: Heartbeat) -> bool:
    """True when the heartbeat changes something the reconciler acts on."""
    if previous is None or previous.boot_id != new.boot_id:
        return True
    return is_busy(previous) != is_busy(new)
