"""The agent cannot be stalled, and steps of the wall clock change none of its intervals
(issue 12, case 6).

Agents are built by the agent's own composition root (``agent.__main__.build``) from a
configuration file's contents, and run their real loop on a thread; the power-off
command is a real command that leaves a marker file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emulators
from fakes import RecordingPublisher
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.agent.__main__ import build
from yoyo_control.agent.config import parse_agent_config
from yoyo_control.agent.loop import Agent
from yoyo_control.agent.policy import Metrics
from yoyo_control.domain.model import KillSwitch, Lease, PoolState

POOL, INSTANCE = "gpu", "vm-0"


def agent_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    marker = tmp_path / "powered-off"
    return {
        "pool": POOL,
        "instance": INSTANCE,
        "project": "local-project",
        "boot_id": "b1",
        "heartbeat_interval_s": 3,
        "idle_shutdown_s": 3600,
        "deadman_grace_s": 900,
        "metadata_url": "",
        "pubsub_url": "http://127.0.0.1:9/unreachable",
        "sqlite_path": str(tmp_path / "yoyo.sqlite3"),
        "metrics_url": "http://127.0.0.1:9/metrics",
        "poll_s": 0.1,
        "poweroff_command": [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
        **overrides,
    }


@contextlib.contextmanager
def running(agent: Agent) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop, 0.1), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def powered_off(tmp_path: Path, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (tmp_path / "powered-off").exists():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def trickling_metrics() -> Iterator[str]:
    """An HTTP endpoint that answers one byte a second, for a minute (until torn down)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    done = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nvllm:num_requests_running 0\n" * 3

    def trickle(conn: socket.socket) -> None:
        with conn:
            for byte in answer[:60]:
                if done.wait(1.0):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/metrics"
    finally:
        done.set()
        server.close()


def test_a_trickling_metrics_endpoint_does_not_hold_off_the_kill_switch(
    tmp_path: Path, trickling_metrics: str
) -> None:
    store = SqliteStore(tmp_path / "yoyo.sqlite3")
    store.transact(lambda tx: tx.save_kill(KillSwitch(True, "test", "tester", time.time())))
    agent = build(parse_agent_config(agent_config(tmp_path, metrics_url=trickling_metrics)))
    with running(agent):
        # The step reads the store (engaged), then the metrics: before the deadlines, that
        # read took a minute and the power-off waited for it.
        assert powered_off(tmp_path, within_s=15), "no power-off: the loop is stalled"


@pytest.fixture
def frozen_firestore() -> Iterator[str]:
    """A Firestore emulator that stops answering (SIGSTOP) once the test says so."""
    if emulators.skip_requested():
        pytest.skip("YOYO_SKIP_EMULATORS=1")
    emulator = emulators.start_firestore()
    try:
        yield emulator.host
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(emulator.process.pid, signal.SIGCONT)
        emulator.stop()


def test_a_frozen_store_does_not_hold_off_the_idle_backstop(
    tmp_path: Path, frozen_firestore: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", frozen_firestore)
    config = agent_config(tmp_path, sqlite_path="", idle_shutdown_s=2)
    agent = build(parse_agent_config(config))
    for pid in emulators_pids(frozen_firestore):
        os.kill(pid, signal.SIGSTOP)
    with running(agent):
        assert powered_off(tmp_path, within_s=20), "no power-off: the loop waits on the store"


def emulators_pids(host: str) -> list[int]:
    port = host.split(":")[1]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (
                    f"--port={port}"
                    in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ):
                    found.append(int(entry.name))
    return found


def busy_leased_agent(tmp_path: Path, **overrides: Any) -> Agent:
    """An agent whose pool holds a valid lease and whose server reports work."""
    store = SqliteStore(tmp_path / "yoyo.sqlite3")
    now = time.time()
    lease = Lease("operator", ("start",), 1, now, now + 1800, now + 28_800)
    store.transact(lambda tx: tx.save_pool(PoolState(pool=POOL, lease=lease, updated_at=now)))
    agent = build(parse_agent_config(agent_config(tmp_path, **overrides)))
    agent.read_metrics = lambda: Metrics(running=2)
    return agent


def test_a_wall_clock_step_forward_does_not_power_off_a_busy_vm_with_a_valid_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = busy_leased_agent(tmp_path)
    assert agent.step().poweroff is None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 3600)  # NTP steps the clock
    agent._store_read_at = None  # read the lease again
    verdict = agent.step()
    assert verdict.poweroff is None, verdict.poweroff


def test_a_wall_clock_step_back_does_not_silence_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = busy_leased_agent(tmp_path, heartbeat_interval_s=0.3)
    recorder = RecordingPublisher()
    agent.publisher = recorder
    agent.step()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    time.sleep(0.35)
    agent.step()
    assert len(recorder.data) == 2, "the heartbeat after the step back was not sent"
