"""``yoyoctl schedule`` and ``yoyoctl cycle --now`` on both backends, through the Scheduler
port (issue 13, item 5): Cloud Scheduler's jobs (a fake client behind the real adapter)
and the local stack's own, whose cycle is published as its job would publish it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from yoyo_control import bootstrap, cli, names
from yoyo_control.adapters.cloud_scheduler import CloudScheduler

POOLS = {"gpu": {"zone": "z-a", "instances": ["gpu-0"], "cycle": {"cron": "0 2 * * *"}}}


def configure(monkeypatch: pytest.MonkeyPatch, **config: Any) -> None:
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps({"pools": POOLS, **config}))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else out, err


class FakeSchedulerClient:
    def __init__(self) -> None:
        self.ran: list[str] = []
        at = datetime(2027, 1, 1, 2, tzinfo=UTC)
        self.jobs = [
            SimpleNamespace(
                name=f"projects/p1/locations/r1/jobs/{short}",
                schedule="0 2 * * *",
                time_zone="Europe/Berlin",
                state=SimpleNamespace(name="ENABLED"),
                schedule_time=at,
                last_attempt_time=None,
            )
            for short in ("yoyo-cycle-gpu", "someone-elses-job")
        ]

    def list_jobs(self, parent: str) -> list[Any]:
        assert parent == "projects/p1/locations/r1"
        return self.jobs

    def run_job(self, name: str) -> None:
        self.ran.append(name)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> FakeSchedulerClient:
    configure(monkeypatch, backend="gcp", project="p1", region="r1")
    fake = FakeSchedulerClient()
    monkeypatch.setattr(CloudScheduler, "client", lambda self: fake)
    return fake


def test_gcp_schedule_lists_this_deployments_cloud_scheduler_jobs(cloud, capsys) -> None:
    code, doc, _ = run(capsys, "schedule")
    assert code == 0
    [job] = doc["jobs"]
    assert job["job"] == "yoyo-cycle-gpu" and job["state"] == "ENABLED"
    assert job["next"] == datetime(2027, 1, 1, 2, tzinfo=UTC).timestamp()
    assert job["last_attempt"] is None and job["time_zone"] == "Europe/Berlin"


def test_gcp_cycle_now_forces_the_pools_job(cloud, capsys) -> None:
    code, doc, _ = run(capsys, "cycle", "--now")
    assert code == 0
    assert cloud.ran == ["projects/p1/locations/r1/jobs/yoyo-cycle-gpu"]
    assert doc["job"] == cloud.ran[0] and doc["pool"] == "gpu"


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        self.sent.append((topic, json.loads(data)))
        return f"m-{len(self.sent)}"


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingPublisher:
    # Port 1: no stack answers, so the configuration is used as it is.
    configure(monkeypatch, backend="local", local={"state_dir": str(tmp_path), "port": 1})
    publisher = RecordingPublisher()
    monkeypatch.setattr(bootstrap, "build_publisher", lambda config: publisher)
    return publisher


def test_local_schedule_lists_the_cycle_and_the_tick(local, capsys) -> None:
    code, doc, _ = run(capsys, "schedule")
    assert code == 0
    assert [(j["job"], j["schedule"]) for j in doc["jobs"]] == [
        ("cycle-gpu", "0 2 * * *"),
        ("tick", "* * * * *"),
        ("batch", "* * * * *"),  # the batch controller: its own job, on the tick's schedule
    ]
    assert all(j["state"] == "ENABLED" and j["next"] for j in doc["jobs"])


def test_local_cycle_now_publishes_what_the_job_would(local, capsys) -> None:
    code, doc, _ = run(capsys, "cycle", "--now")
    assert code == 0
    assert local.sent == [("yoyo-" + names.TOPIC_CYCLE, {"pool": "gpu", "window": "30m"})]
    assert doc == {"pool": "gpu", "window": "30m", "message_id": "m-1", "next": doc["next"]}


def test_local_only_commands_say_why_not_on_gcp(cloud, capsys) -> None:
    code, _, err = run(capsys, "local", "refuse-zone", "z-a")
    assert (
        code == 1
        and err == "error: local refuse-zone acts on the embedded stack: the backend is gcp\n"
    )
