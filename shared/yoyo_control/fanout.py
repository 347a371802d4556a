"""Bounded fan-out: one call per item, at most ``limit`` at once, every item tried.

Invariants:
- Every item is called exactly once, even when others raise; the results come back in
  the items' order, an item's ``Exception`` as its result (the caller decides what a
  failure means).
- A ``BaseException`` that is not an ``Exception`` (the process dying, an interrupt) is
  never swallowed: from threads it is raised once every call has ended; in the
  caller's thread, at once (the items after it are not called).
- ``limit`` 1 (or one item) runs the calls in the caller's thread, in order: the same
  steps every time, as before there was a fan-out.
- No thread outlives the call: the pool is shut down before it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def each(items: Sequence[K], fn: Callable[[K], V], limit: int) -> list[V | Exception]:
    """``fn(item)`` for every item, at most ``limit`` at once."""
    if limit <= 1 or len(items) <= 1:
        return [_call(fn, item) for item in items]
    with ThreadPoolExecutor(max_workers=min(limit, len(items)), thread_name_prefix="fanout") as ex:
        futures = [ex.submit(fn, item) for item in items]
        ended = [f.exception() for f in futures]  # waits for every call
    dying = next((e for e in ended if e is not None and not isinstance(e, Exception)), None)
    if dying is not None:
        raise dying
    return [
        e if isinstance(e, Exception) else f.result() for f, e in zip(futures, ended, strict=True)
    ]


def _call(fn: Callable[[K], V], item: K) -> V | Exception:
    try:
        return fn(item)
    except Exception as exc:
        return exc
