"""Cloud Scheduler: the ``Scheduler`` port on google-cloud-scheduler (``yoyoctl schedule``
and ``yoyoctl cycle --now`` on Google Cloud).

Invariants: no client before the first call; only this deployment's jobs are listed —
those in ``project``/``region`` named ``<prefix>-…`` (terraform/scheduler.tf); a cycle
runs by forcing the pool's job (``<prefix>-cycle-<pool>``), so it publishes exactly what
the schedule would.
"""

from __future__ import annotations

from typing import Any

from ..ports import CycleRun, ScheduledJob


class CloudScheduler:
    def __init__(self, project: str, region: str, prefix: str, client: Any = None) -> None:
        self.parent = f"projects/{project}/locations/{region}"
        self.prefix = prefix
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            from google.cloud import scheduler_v1

            self._client = scheduler_v1.CloudSchedulerClient()
        return self._client

    def list_jobs(self, now: float) -> list[ScheduledJob]:
        jobs = []
        for job in self.client().list_jobs(parent=self.parent):
            short = job.name.rsplit("/", 1)[-1]
            if not short.startswith(f"{self.prefix}-"):
                continue
            jobs.append(
                ScheduledJob(
                    job=short,
                    schedule=job.schedule,
                    time_zone=job.time_zone,
                    state=job.state.name,
                    next_at=job.schedule_time.timestamp() if job.schedule_time else None,
                    last_attempt_at=(
                        job.last_attempt_time.timestamp() if job.last_attempt_time else None
                    ),
                )
            )
        return jobs

    def run_cycle(self, pool: str) -> CycleRun:
        name = f"{self.parent}/jobs/{self.prefix}-cycle-{pool}"
        self.client().run_job(name=name)
        return CycleRun(pool=pool, job=name)
