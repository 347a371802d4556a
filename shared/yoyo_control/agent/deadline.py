"""Calls with a total deadline, so no read can stall the agent's loop.

A socket timeout bounds each wait for a byte, not a whole answer (a server trickling one
byte a second never times out), and a store client's own deadline may be minutes. The
agent therefore runs every read and publish through a ``Deadline``: the call runs on a
daemon thread and the loop waits for it at most ``timeout_s``.

Invariants: at most one call per ``Deadline`` is in flight — while an earlier call has
not returned, a new one fails at once (no pile of stuck threads); a late answer is
dropped; the call's own exception is re-raised in the caller; a stuck call never keeps
the process alive (daemon thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._in_flight = False

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._in_flight:
                raise TimeoutError(f"{self.what}: the previous call has not returned yet")
            self._in_flight = True
        done = threading.Event()
        outcome: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(fn())
            except BaseException as exc:  # handed to the caller
                failure.append(exc)
            finally:
                with self._lock:
                    self._in_flight = False
                done.set()

        threading.Thread(target=run, name=f"agent-{self.what}", daemon=True).start()
        if not done.wait(self.timeout_s):
            raise TimeoutError(f"{self.what}: no answer within {self.timeout_s:g}s")
        if failure:
            raise failure[0]
        return outcome[0]
