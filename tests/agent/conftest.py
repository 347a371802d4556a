"""Fixtures for the agent's tests: a local VM (real processes) with no control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.local.compute import InstanceTable, LocalCompute, Row
from yoyo_control.local.supervisor import Supervisor


@dataclass
class LoneVm:
    """One local VM run by a Supervisor; no functions, no bus, no scheduler."""

    state_dir: Path
    store: SqliteStore
    compute: LocalCompute
    supervisor: Supervisor
    agent: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self) -> str:
        with self.lock:
            return "\n".join(self.lines)


@pytest.fixture
def lone_vm(tmp_path: Path) -> Iterator[LoneVm]:
    state_dir = tmp_path / "state"
    table = InstanceTable(state_dir / "compute.sqlite3")
    table.register("gpu", "local", "vm-0")
    store = SqliteStore(state_dir / "yoyo.sqlite3")
    agent: dict[str, Any] = {
        "project": "local-project",
        "heartbeat_topic": "yoyo-heartbeat",
        "heartbeat_interval_s": 0.3,
        "idle_shutdown_s": 3600,
        "deadman_grace_s": 3600,
        "poweroff_command": [sys.executable, "-m", "yoyo_control.local.vm", "poweroff"],
        "metadata_url": "",
        "pubsub_url": "http://127.0.0.1:9/unreachable",  # the control plane is down
        "sqlite_path": str(state_dir / "yoyo.sqlite3"),
        "poll_s": 0.2,
        "poweroff_retry_s": 5,
    }
    vm: LoneVm | None = None

    def spec(row: Row, boot_id: str) -> dict[str, Any]:
        return {
            "project": "local-project",
            "boot_delay_s": 0.0,
            "token_latency_s": 0.5,
            "agent": {**agent, "pool": row.pool, "instance": row.name, "boot_id": boot_id},
        }

    def sink(instance: str, line: str) -> None:
        assert vm is not None
        with vm.lock:
            vm.lines.append(line)

    supervisor = Supervisor(table, state_dir, spec, sink=sink, poll_s=0.05)
    vm = LoneVm(state_dir, store, LocalCompute(table, op_timeout_s=20), supervisor, agent)
    supervisor.start()
    try:
        yield vm
    finally:
        supervisor.stop()
        # Belt and braces: nothing of this VM may survive the test.
        pids = state_dir / "vms" / "vm-0" / "pids"
        if pids.exists():
            for pid in pids.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
