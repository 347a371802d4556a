"""This gateway instance's load per pool, reported to the control plane (issue 27).

Invariants: whenever a pool's count of requests this instance has in flight + holds
changes, ``scaling.load_report`` says whether it is worth a ``LoadReported`` (a
half-target step crossed, held starting or ending, the load ending, or every 30 s under
load); this instance sends at most one per pool per ``LOAD_GAP_S``, and one at a time (so
they are published in order): a report due sooner is sent when the gap ends, with the
counts of that moment. A failed send is tried again after the gap, the same way (so at
most one send per pool per gap, failed or not). ``handle`` is how the gateway tells the
control plane (gateway/wire.py: published to the queue topic).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from .. import logs
from ..config import Config
from ..domain import scaling
from ..domain.facts import Fact, LoadReported
from ..ports import Clock

LOAD_GAP_S = 1.0  # at most one load report per pool per this, per gateway instance


class LoadReporter:
    def __init__(self, config: Config, handle: Callable[[Fact], Any], clock: Clock) -> None:
        self.config, self.handle, self.clock = config, handle, clock
        self.reporter = uuid.uuid4().hex[:12]  # this instance, in its load reports' ids
        self._report_seq = itertools.count()
        self.pool_in_flight: dict[str, int] = {}
        self.pool_held: dict[str, int] = {}
        self._reported: dict[str, tuple[int, int, float]] = {}  # pool → last report
        self._sent_at: dict[str, float] = {}  # pool → when its last report was sent
        self._deferred: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()  # pools with a report being sent

    def change(self, pool: str, in_flight: int = 0, held: int = 0) -> None:
        """The pool's counts moved by these deltas: report when it is worth it."""
        self.pool_in_flight[pool] = self.pool_in_flight.get(pool, 0) + in_flight
        self.pool_held[pool] = self.pool_held.get(pool, 0) + held
        self._load_changed(pool)

    def _load_changed(self, pool: str, deferred: bool = False) -> None:
        """Report the pool's load when it is worth it (module docstring), within the gap."""
        if deferred:
            self._deferred.pop(pool, None)
        elif pool in self._deferred:
            return  # a report is already due at the end of the gap
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream closed outside the loop: the next change reports
            return
        now = self.clock.now()
        in_flight, held = self.pool_in_flight.get(pool, 0), self.pool_held.get(pool, 0)
        policy = self.config.policy(pool)
        if not scaling.report_due(self._reported.get(pool), in_flight, held, now, policy.target):
            return
        wait = self._sent_at.get(pool, -LOAD_GAP_S) + LOAD_GAP_S - now
        if pool in self._busy or (not deferred and wait > 0):  # one send at a time, in order
            delay = LOAD_GAP_S if pool in self._busy else min(wait, LOAD_GAP_S)
            self._deferred[pool] = loop.call_later(delay, self._load_changed, pool, True)
            return
        fact = scaling.load_report(
            pool, self._reported.get(pool), in_flight, held, now, policy.target,
            reporter=self.reporter, seq=next(self._report_seq),
        )  # fmt: skip
        if fact is None:
            return
        previous = self._reported.get(pool)
        self._reported[pool], self._sent_at[pool] = (in_flight, held, now), now
        self._busy.add(pool)
        task = loop.create_task(self._send_load(fact, previous))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_load(self, fact: LoadReported, previous: tuple[int, int, float] | None) -> None:
        pool = fact.pool
        try:
            await asyncio.to_thread(self.handle, fact)
        except Exception as exc:  # tried again after the gap, with the counts of then
            if previous is None:
                self._reported.pop(pool, None)
            else:
                self._reported[pool] = previous
            logs.warning(f"gateway: load report not sent ({exc}); retrying", pool=pool)
            if pool not in self._deferred:
                loop = asyncio.get_running_loop()
                self._deferred[pool] = loop.call_later(LOAD_GAP_S, self._load_changed, pool, True)
        finally:
            self._busy.discard(pool)
