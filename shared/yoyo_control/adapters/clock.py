"""Clocks: the system clock, a monotonic one for the VM agent, and a manual one for tests
and the simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, value: float) -> None:
        with self._lock:
            self._now = value


class MonotonicClock:
    """Wall time read once, then carried forward by the monotonic clock.

    For the VM agent: its intervals (heartbeats, the idle backstop, the dead-man grace)
    must not stretch or shrink when the VM's wall clock is stepped. A step after the
    agent started changes nothing it measures; ``wall`` and ``monotonic`` are injectable
    for tests.
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._origin = wall() - monotonic()

    def now(self) -> float:
        return self._origin + self._monotonic()
