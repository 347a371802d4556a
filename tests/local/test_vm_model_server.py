"""How a local VM starts its model server (local/vm.py): the configured command with its
placeholders filled in, other braces untouched; a command that cannot run powers the VM
off with one line instead of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from yoyo_control.local import vm


def test_only_the_known_placeholders_are_filled_in(tmp_path: Path) -> None:
    spec = {
        "port_file": str(tmp_path / "port"),
        "model": "m",
        "api_key_file": "/k",
        "model_server": {"command": ["{python}", "--port={port}", "{model}", '{"x": 1}', "{key}"]},
    }
    argv = vm._server_argv(spec, "spec.json")
    port = (tmp_path / "port").read_text()
    assert argv == [sys.executable, f"--port={port}", "m", '{"x": 1}', "{key}"]
    assert 0 < int(port) < 65536


def test_the_default_is_the_simulated_vllm(tmp_path: Path) -> None:
    spec = {"port_file": str(tmp_path / "port"), "token_latency_s": 0.01, "boot_delay_s": 0}
    argv = vm._server_argv(spec, "spec.json")
    assert argv[1:3] == ["-m", "yoyo_control.local.inference"]
    assert not (tmp_path / "port").exists()  # that server writes it once it listens


def test_a_command_that_cannot_run_powers_the_vm_off_in_one_line(tmp_path: Path) -> None:
    spec = {
        "supervisor_pid": 1,
        "port_file": str(tmp_path / "port"),
        "agent": {},
        "model_server": {"command": [str(tmp_path / "no-such-server"), "--port", "{port}"]},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "yoyo_control.local.vm", "run", "--spec", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "cannot start" in done.stdout and "Traceback" not in done.stderr
