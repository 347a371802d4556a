"""Waiting in tests: poll a condition until it holds, bounded (a liveness timeout, never a
timing assertion).

Invariant: ``eventually`` returns the condition's first truthy value, or raises
AssertionError naming what never happened and how long it waited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T], what: str, timeout_s: float = 60.0, every_s: float = 0.05
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)
