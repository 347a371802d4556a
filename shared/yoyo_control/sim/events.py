"""The simulator's virtual time: a clock that only moves when the next event runs.

Invariants: events run in (time, insertion) order, each with the clock set to its time;
an event may schedule others (never in the past: those run "now"); nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from ..adapters.clock import ManualClock


class EventQueue:
    def __init__(self, start: float) -> None:
        self.clock = ManualClock(start)
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.processed = 0

    def now(self) -> float:
        return self.clock.now()

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (max(when, self.now()), next(self._seq), fn, args))

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.at(self.now() + max(0.0, delay), fn, *args)

    def run_until(self, end: float) -> None:
        """Run every event scheduled before ``end``; the clock ends at ``end``."""
        while self._heap and self._heap[0][0] < end:
            when, _, fn, args = heapq.heappop(self._heap)
            self.clock.set(when)
            fn(*args)
            self.processed += 1
        self.clock.set(max(end, self.now()))
