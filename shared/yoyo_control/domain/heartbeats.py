"""Heartbeat bookkeeping (pure): which report wins, and which ones matter.

Invariants: a heartbeat from an older boot or with an older ``sent_at`` than the stored
one never replaces it (reordered delivery is harmless); ``last_busy_at`` carries over
so the idle rule sees the last time the instance had work, and ``ready_since`` (when the
boot was first heard ready) carries over within a boot.
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
    same_boot = previous is not None and previous.boot_id == new.boot_id
    was_ready = previous.ready_since if same_boot and previous is not None else None
    ready_since = (was_ready or new.received_at) if new.ready else None
    return replace(new, last_busy_at=last_busy, ready_since=ready_since)


def matters(previous: Heartbeat | None, new: Heartbeat) -> bool:
    """True when the heartbeat changes something the reconciler acts on."""
    if previous is None or previous.boot_id != new.boot_id:
        return True
    return is_busy(previous) != is_busy(new) or previous.ready != new.ready
