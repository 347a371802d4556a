"""Cold starts, written and read back from the event log (pure): phases and a histogram.

Invariants: a cold start is one ``cold-start`` event (one per lease epoch, written by the
gateway when the first held request of that wake is answered); its ``phases`` are epoch
seconds, any of which may be missing (None); a phase's duration is reported only when
both of its ends are known.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.model import PoolState
from ..ports import Event
from .routing import Target

# (phase, its start mark, its end mark): wake recorded → VM RUNNING → agent ready →
# request forwarded → first byte.
PHASES = (
    ("wake→running", "wake_at", "running_at"),
    ("running→ready", "running_at", "ready_at"),
    ("ready→forwarded", "ready_at", "forwarded_at"),
    ("forwarded→first byte", "forwarded_at", "first_byte_at"),
)
HISTOGRAM_EDGES_S = (1.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)


@dataclass(frozen=True)
class ColdStart:
    at: float
    instance: str
    held_s: float
    phases: tuple[tuple[str, float | None], ...]

    def line(self) -> str:
        return summary(self.instance, self.held_s, dict(self.phases))


def summary(instance: str, held_s: float, phases: Mapping[str, float | None]) -> str:
    """One line: "held 92.1s on vm-0 (wake→running 30.0s, running→ready 61.7s, …)"."""
    parts = [f"{name} {d:.1f}s" for name, d in phases.items() if d is not None]
    return f"held {held_s:.1f}s on {instance}" + (f" ({', '.join(parts)})" if parts else "")


def cold_starts(events: Iterable[Any]) -> list[ColdStart]:
    """The cold starts among ``events`` (ports.Event), oldest first."""
    found = []
    for event in events:
        if event.kind != "cold-start":
            continue
        marks = event.data.get("phases") or {}
        phases = tuple(
            (name, _span(marks.get(start), marks.get(end))) for name, start, end in PHASES
        )
        held = event.data.get("held_s")
        found.append(
            ColdStart(
                at=event.at,
                instance=str(event.data.get("instance", "?")),
                held_s=float(held) if isinstance(held, (int, float)) else 0.0,
                phases=phases,
            )
        )
    return sorted(found, key=lambda c: c.at)


def histogram(
    held: Sequence[float], edges: Sequence[float] = HISTOGRAM_EDGES_S
) -> list[tuple[str, int]]:
    """Counts of ``held`` seconds per bucket: "<1s", "1–10s", …, "≥600s"."""
    labels = [f"<{edges[0]:g}s"]
    labels += [f"{lo:g}–{hi:g}s" for lo, hi in itertools.pairwise(edges)]
    labels.append(f"≥{edges[-1]:g}s")
    counts = [0] * len(labels)
    for value in held:
        counts[sum(value >= edge for edge in edges)] += 1
    return list(zip(labels, counts, strict=True))


def cold_start_event(
    state: PoolState, target: Target, arrived: float, forwarded: float, first_byte: float
) -> Event:
    """The event of the cold start a held request waited for (one id per lease epoch)."""
    lease = state.lease
    instance = state.instances.get(target.instance)
    phases = {
        "arrived_at": arrived,
        "wake_at": lease.granted_at if lease else None,
        "running_at": instance.running_since if instance else None,
        "ready_at": target.ready_since,
        "forwarded_at": forwarded,
        "first_byte_at": first_byte,
    }
    waited = forwarded - arrived
    return Event(
        id=f"cold-start:{state.pool}:{lease.epoch if lease else 0}",
        kind="cold-start",
        at=first_byte,
        pool=state.pool,
        reason=f"cold start: request held {waited:.1f}s, served by {target.instance}",
        data={
            "instance": target.instance,
            "held_s": waited,
            "epoch": lease.epoch if lease else 0,
            "phases": phases,
        },
    )


def _span(start: object, end: object) -> float | None:
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return max(0.0, float(end) - float(start))
    return None
