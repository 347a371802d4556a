"""The local stack as a subprocess (``yoyoctl local up``), driven only through ``yoyoctl``.

Invariants: each stack has its own state dir and port under tmp_path and runs in its own
session, so teardown can end its whole process tree even when a test failed; the test
configuration uses short timeouts so the whole file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators import free_port
from polling import eventually

YOYOCTL = str(Path(sys.executable).with_name("yoyoctl"))


def stack_config(state_dir: Path, port: int) -> dict[str, Any]:
    return {
        "backend": "local",
        "project": "local-project",
        "budget": {"budget_ids": ["local-budget"]},
        "local": {
            "state_dir": str(state_dir),
            "port": port,
            "tick_interval_s": 0.5,
            "boot_delay_s": 0.5,
            "heartbeat_interval_s": 0.5,
            "idle_shutdown_s": 120,
            "deadman_grace_s": 120,
            "token_latency_s": 0.01,
        },
        "pools": {
            "default": {
                "zone": "local",
                "instances": ["vm-0"],
                "hourly_price_usd": 0.35,
                "idle_timeout_s": 4,
                "heartbeat_gap_s": 10,
                "boot_grace_s": 10,
                "lease_s": 30,
                "action_retry_s": 5,
                "restart_backoff_s": 1,
                "cycle": {"cron": "0 2 * * *", "window_s": 120},
            }
        },
    }


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions ``text`` (the stack's state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    state_dir: Path
    env: dict[str, str]
    log_path: Path

    def yoyoctl(self, *args: str, check: bool = True, timeout: float = 60) -> Any:
        """Run ``yoyoctl ARGS --json`` and return its parsed output."""
        result = subprocess.run(
            [YOYOCTL, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"yoyoctl {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return json.loads(result.stdout) if result.returncode == 0 else result

    def status(self) -> dict[str, Any]:
        return self.yoyoctl("status")["pools"][0]

    def vm(self) -> str:
        return str(self.status()["instances"][0]["vm"])

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            eventually(predicate, what, timeout, every_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-60:])

    def leftover_processes(self) -> list[int]:
        return processes_mentioning(str(self.state_dir))

    def interrupt(self, timeout: float = 20) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill_everything(self) -> None:
        """Teardown: whatever a failed test left, end it (the stack's session, its VMs)."""
        if self.process.poll() is None:
            try:
                self.interrupt(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        for pid in processes_mentioning(str(self.state_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


Configure = Callable[[dict[str, Any]], None]


def start_stack(tmp: Path, configure: Configure | None = None, **overrides: Any) -> Stack:
    """A running ``yoyoctl local up`` on ``stack_config``: ``overrides`` replace top-level
    configuration keys, then ``configure`` (when given) changes the configuration."""
    state_dir = tmp / "state"
    config_path = tmp / "config.json"
    config = {**stack_config(state_dir, free_port()), **overrides}
    if configure is not None:
        configure(config)
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOYO_")}
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    env.pop("PUBSUB_EMULATOR_HOST", None)
    env["YOYO_CONFIG_FILE"] = str(config_path)
    log_path = tmp / "local-up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [YOYOCTL, "local", "up"],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(process, state_dir, env, log_path)
    runtime = state_dir / "local-up.json"
    deadline = time.monotonic() + 30
    while not runtime.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stack.kill_everything()
            raise AssertionError(f"yoyoctl local up did not start:\n{stack.log()}")
        time.sleep(0.05)
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        s.kill_everything()


@pytest.fixture(scope="module")
def batch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose dead workers' shards come back within 10 s (tests/local/test_batch_stack)."""

    def serves_the_examples_model(config: dict[str, Any]) -> None:
        config["pools"]["default"]["model"] = "yoyo-local/simulated"  # examples/batch.jsonl

    s = start_stack(
        tmp_path_factory.mktemp("batch"),
        serves_the_examples_model,
        batch={"shard_lines": 50, "concurrency": 8, "ack_deadline_s": 10},
    )
    try:
        yield s
    finally:
        s.kill_everything()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path)
    try:
        yield s
    finally:
        s.kill_everything()


@pytest.fixture
def emulator_stack(tmp_path: Path) -> Iterator[tuple[Stack, int]]:
    """``yoyoctl local up --emulators`` under a YOYO_CONFIG (environment) whose state_dir is
    relative, started in ``tmp_path/first-terminal``; (stack, port), not waited for."""
    import emulators

    if emulators.skip_requested():
        pytest.skip("YOYO_SKIP_EMULATORS=1")
    first, second = tmp_path / "first-terminal", tmp_path / "second-terminal"
    first.mkdir()
    second.mkdir()
    port = free_port()
    config = stack_config(Path("state"), port)  # relative: each terminal resolves it alone
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOYO_")}
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        env.pop(name, None)
    env["YOYO_CONFIG"] = json.dumps(config)
    log_path = tmp_path / "local-up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [YOYOCTL, "local", "up", "--emulators"],
            env=env,
            cwd=first,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(process, first / "state", env, log_path)
    try:
        yield stack, port
    finally:
        stack.kill_everything()


@pytest.fixture
def configured_stack(tmp_path: Path) -> Iterator[Callable[[Configure], Stack]]:
    """A stack of its own on a changed configuration: ``configured_stack(configure)``."""
    started: list[Stack] = []

    def make(configure: Configure) -> Stack:
        started.append(start_stack(tmp_path, configure))
        return started[-1]

    try:
        yield make
    finally:
        for s in started:
            s.kill_everything()
