"""``yoyoctl`` finds a running emulator stack from its configuration alone, and "up" means
ready (issue 12, case 10).

The stack runs ``yoyoctl local up --emulators`` under a YOYO_CONFIG (environment, not a
file) with its own relative ``state_dir`` and port, started in one directory; the
"second terminal" runs ``yoyoctl`` with the same YOYO_CONFIG from another directory, so
nothing but the configuration connects them. The start is published the moment
``/healthz`` first answers 200: published before the subscriptions exist, it would be
lost for good.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from emulators import free_port

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)
YOYOCTL = str(Path(sys.executable).with_name("yoyoctl"))


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_yoyoctl_finds_an_emulator_stack_from_its_configuration_and_up_means_ready(
    emulator_stack: tuple[Stack, int], tmp_path: Path
) -> None:
    stack, port = emulator_stack
    deadline = time.monotonic() + 120
    while healthz(port) != 200:
        assert stack.process.poll() is None, stack.log()
        assert time.monotonic() < deadline, f"the stack never became ready\n{stack.log()}"
        time.sleep(0.01)

    def second_terminal(*args: str) -> Any:
        done = subprocess.run(
            [YOYOCTL, *args, "--json"],
            env=stack.env,
            cwd=tmp_path / "second-terminal",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "Error" not in done.stderr, done.stderr
        return json.loads(done.stdout)

    second_terminal("start", "--for", "1m")

    def vm() -> str:
        return str(second_terminal("status")["pools"][0]["instances"][0]["vm"])

    stack.wait_for(lambda: vm() == "RUNNING", 30, "the started VM to run")
    assert "stack up" in stack.log()


def test_healthz_answers_ready_only_once_the_subscriptions_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yoyo_control import bootstrap
    from yoyo_control.config import parse_config
    from yoyo_control.local import stack as stackmod

    port = free_port()
    raw = {
        "backend": "local",
        "local": {"state_dir": str(tmp_path / "state"), "port": port, "tick_interval_s": 60},
        "pools": {"default": {"zone": "local", "instances": ["vm-0"]}},
    }
    for name in ("YOYO_CONFIG_FILE", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(raw))
    seen: list[int] = []
    wire = stackmod.Stack._wire_bus

    def wire_and_look(self: Any, broker: Any) -> None:
        seen.append(healthz(port))  # the server answers already; the subscriptions do not exist
        wire(self, broker)

    monkeypatch.setattr(stackmod.Stack, "_wire_bus", wire_and_look)
    stack = stackmod.Stack(parse_config(raw))
    try:
        stack.start()
        assert seen == [503], "healthz said ready before the subscriptions existed"
        assert healthz(port) == 200
    finally:
        stack.stop()
        bootstrap.reset()
