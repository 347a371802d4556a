"""The agent's stop paths on a real local VM, each alone, with the control plane stopped.

The VM (agent + simulated inference server, one process group) is started through the
Compute port; nothing but the agent can stop it here. The assertion is on the Compute
port's observed status: the VM's process group ended and the instance reads TERMINATED.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from polling import eventually
from yoyo_control.adapters.model_server import read as read_metrics
from yoyo_control.domain.model import KillSwitch
from yoyo_control.local.inference import SENTENCE

ZONE = "local"


def wait_for(predicate, timeout: float, what: str) -> None:
    eventually(predicate, what, timeout)


def status(vm) -> str:
    return vm.compute.get(ZONE, "vm-0").status


def test_with_the_control_plane_stopped_an_idle_vm_powers_itself_off(lone_vm) -> None:
    lone_vm.agent["idle_shutdown_s"] = 1.0
    lone_vm.compute.start(ZONE, "vm-0", "req-idle-1")
    assert status(lone_vm) == "RUNNING"
    wait_for(lambda: status(lone_vm) == "TERMINATED", 20, "the idle VM to power off")
    assert "idle backstop" in lone_vm.log()
    assert "kill switch" not in lone_vm.log()
    pids = (lone_vm.state_dir / "vms" / "vm-0" / "pids").read_text().split()
    assert pids and all(not Path(f"/proc/{p}").exists() for p in pids)


# The simulated server decodes one word of its sentence per token_latency_s (0.5 s in
# conftest.py): a request for the whole sentence takes this long to finish.
FINISHES_AFTER_S = len(SENTENCE) * 0.5


def _busy_request(endpoint: str, done: threading.Event, outcome: dict[str, Any]) -> None:
    body = json.dumps({"prompt": "long job", "max_tokens": 200}).encode()
    req = urllib.request.Request(
        f"{endpoint}/v1/completions", body, {"Content-Type": "application/json"}
    )
    started = time.monotonic()
    try:
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
        outcome["ended"] = f"finished: {answer['choices'][0]['finish_reason']}"
    except (OSError, ValueError) as exc:  # the VM went away under the request
        outcome["ended"] = f"failed: {exc!r}"
    finally:
        outcome["after_s"] = time.monotonic() - started
        done.set()


def test_with_the_kill_switch_engaged_a_busy_vm_powers_itself_off(lone_vm) -> None:
    lone_vm.compute.start(ZONE, "vm-0", "req-kill-1")
    port_file = lone_vm.state_dir / "vms" / "vm-0" / "port"
    wait_for(port_file.exists, 20, "the inference server to listen")
    endpoint = f"http://127.0.0.1:{port_file.read_text().strip()}"
    done = threading.Event()
    outcome: dict[str, Any] = {}
    threading.Thread(target=_busy_request, args=(endpoint, done, outcome), daemon=True).start()

    def busy() -> bool:
        metrics = read_metrics(f"{endpoint}/metrics")
        return metrics is not None and metrics.running > 0

    wait_for(busy, 10, "the VM to be busy")
    lone_vm.store.transact(lambda tx: tx.save_kill(KillSwitch(True, "test", "tester", 1.0)))
    wait_for(lambda: status(lone_vm) == "TERMINATED", 20, "the busy VM to power off")
    assert "kill switch engaged by tester: test" in lone_vm.log()
    assert done.wait(10)
    # The in-flight request ended with the VM, not by finishing: no answer came, and it
    # ended before a complete answer could have.
    assert outcome["ended"].startswith("failed:"), outcome
    assert outcome["after_s"] < FINISHES_AFTER_S, outcome
