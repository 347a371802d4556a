"""The local scheduler: Cloud Scheduler's jobs, fired from the same cron expressions.

Jobs: one cycle job per pool (``config.cycles[pool].cron`` in its time zone, publishing
``{"pool": P, "window": "30m"}`` to the cycle topic, as terraform/scheduler.tf does), the
batch controller's (``{}`` to its own topic, on the tick's schedule: terraform/batch.tf) and
the tick (``config.tick_cron`` in UTC, or every ``local.tick_interval_s`` seconds when
that is > 0, publishing ``{}``). A tick is also published at start-up so a restarted
stack converges at once.

Invariants: each job fires at most once per scheduled time (a late wake-up fires once,
not once per missed minute); a failed publish is logged and the job keeps its schedule.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import logs, names, schedule
from ..config import Config, Cycle
from ..messages import duration_text
from ..ports import CycleRun, Publisher, ScheduledJob


@dataclass
class Job:
    name: str
    topic: str
    payload: bytes
    next_at: Callable[[float], float]  # the first fire time strictly after t
    schedule: str  # as an operator reads it: the cron expression, or "every 0.5s"
    time_zone: str = "Etc/UTC"


def _cycle_payload(pool: str, window_s: float) -> dict[str, str]:
    return {"pool": pool, "window": duration_text(window_s)}


def _cron(expr: str, zone: str) -> Callable[[float], float]:
    spec = schedule.parse(expr)
    return lambda t: schedule.next_fire(spec, t, zone)


def jobs(config: Config) -> list[Job]:
    out: list[Job] = []
    for pool, cycle in config.cycles.items():
        out.append(
            Job(
                f"cycle-{pool}",
                config.topic(names.TOPIC_CYCLE),
                json.dumps(_cycle_payload(pool, cycle.window_s)).encode(),
                _cron(cycle.cron, cycle.time_zone),
                cycle.cron,
                cycle.time_zone,
            )
        )
    interval = float(config.local.tick_interval_s)
    if interval > 0:
        tick_next: Callable[[float], float] = lambda t: t + interval  # noqa: E731
        every = f"every {interval:g}s"
    else:
        tick_next = _cron(config.tick_cron, "Etc/UTC")
        every = config.tick_cron
    out.append(Job("tick", config.topic(names.TOPIC_TICK), b"{}", tick_next, every))
    # The batch controller: its own job and topic, on the tick's schedule (never in it).
    out.append(Job("batch", config.topic(names.TOPIC_BATCH), b"{}", tick_next, every))
    return out


class Scheduler:
    """The jobs' thread (``start``/``stop``), and the ``Scheduler`` port over the same jobs
    (``list_jobs``, ``run_cycle``: ``yoyoctl schedule`` and ``yoyoctl cycle --now``)."""

    def __init__(
        self, config: Config, publisher: Publisher, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.jobs = jobs(config)
        self.publisher = publisher
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def list_jobs(self, now: float) -> list[ScheduledJob]:
        return [
            ScheduledJob(job.name, job.schedule, job.time_zone, "ENABLED", job.next_at(now))
            for job in self.jobs
        ]

    def run_cycle(self, pool: str) -> CycleRun:
        """Publish the pool's cycle now (with its cycle's window, or the default one)."""
        window_s = self.config.cycles.get(pool, Cycle()).window_s
        payload = _cycle_payload(pool, window_s)
        data = json.dumps(payload).encode()
        mid = self.publisher.publish(self.config.topic(names.TOPIC_CYCLE), data)
        return CycleRun(pool, window=payload["window"], message_id=str(mid))

    def fire(self, job: Job) -> None:
        try:
            self.publisher.publish(job.topic, job.payload)
        except Exception as exc:
            logs.warning(f"scheduler: {job.name} not published: {exc}", topic=job.topic)

    def start(self, tick_now: bool = True) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(tick_now,), name="scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self, tick_now: bool) -> None:
        now = self.clock()
        due = {job.name: job.next_at(now) for job in self.jobs}
        if tick_now:
            for job in self.jobs:
                if job.name == "tick":
                    self.fire(job)
        while not self._stop.is_set():
            now = self.clock()
            for job in self.jobs:
                if due[job.name] <= now:
                    self.fire(job)
                    due[job.name] = job.next_at(now)
            wait = min(due.values()) - self.clock()
            self._stop.wait(min(max(wait, 0.01), 1.0))
