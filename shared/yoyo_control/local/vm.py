"""A local "VM": the leader of its own process group, standing in for systemd on a GPU VM.

``python -m yoyo_control.local.vm run --spec FILE`` starts the units a real VM runs:
the model server (the configured command, ``local.model_server.command``, else the
simulated vLLM), the real VM agent and the real batch worker
(yoyo-worker, when the stack gives the VM a work queue), restarts either if it dies
(``Restart=always``), and ends both when it is told to stop.
``python -m yoyo_control.local.vm poweroff`` is the agent's power-off command locally:
it signals the caller's whole process group, i.e. the VM it runs in.

Invariants:
- Every process of a VM is in the VM's process group (the supervisor started the leader
  with a new session); ending the group ends the VM, and the leader's exit is what the
  supervisor observes as TERMINATED.
- The VM ends itself when its supervisor (the ``local up`` process) disappears, so a
  crashed stack leaves no VM behind.
- Child pids are written to ``pids`` in the VM's directory (tests check the process tree).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STOP_GRACE_S = 3.0


def _spawn(argv: list[str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _inference_argv(spec: dict[str, Any], spec_path: str) -> list[str]:
    """The simulated vLLM (the default model server); it writes its port to port_file."""
    return [
        sys.executable,
        "-m",
        "yoyo_control.local.inference",
        "--spec",
        spec_path,
        "--port-file",
        spec["port_file"],
        "--token-latency-s",
        str(spec["token_latency_s"]),
        "--boot-delay-s",
        str(spec["boot_delay_s"]),
        "--model",
        spec.get("model", "yoyo-local/simulated"),
        "--api-key-file",
        spec.get("api_key_file", ""),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_argv(spec: dict[str, Any], spec_path: str) -> list[str]:
    """The model server's argv: the configured command (its port chosen here and written
    to port_file at once), else the simulated vLLM."""
    command = (spec.get("model_server") or {}).get("command") or []
    if not command:
        return _inference_argv(spec, spec_path)
    port = _free_port()
    Path(spec["port_file"]).write_text(str(port))
    values = {
        "{python}": sys.executable,
        "{port}": str(port),
        "{model}": spec.get("model", ""),
        "{api_key_file}": spec.get("api_key_file", ""),
    }
    argv = []
    for word in command:  # only these placeholders: other braces (JSON, say) stay as given
        for placeholder, value in values.items():
            word = str(word).replace(placeholder, value)
        argv.append(word)
    return argv


def _agent_config(spec: dict[str, Any], port: str) -> dict[str, Any]:
    """The agent's configuration: the stack's, and how to read this VM's model server."""
    server = spec.get("model_server") or {}
    config = dict(spec["agent"])
    config["metrics_url"] = f"http://127.0.0.1:{port}{server.get('metrics_path', '/metrics')}"
    config["address"] = f"127.0.0.1:{port}"
    for key in ("metric_running", "metric_waiting", "metric_finished"):
        if server.get(key):
            config[key] = server[key]
    return config


def _worker_config(spec: dict[str, Any], server_port: str) -> dict[str, Any] | None:
    """yoyo-worker's configuration on this VM; None when the stack gives it no queue."""
    if not (spec.get("work_subscription") and spec.get("storage_dir")):
        return None
    return {
        "project": spec["project"],
        "subscription": spec["work_subscription"],
        "pubsub_url": spec.get("pubsub_url", ""),
        "server_url": f"http://127.0.0.1:{server_port}",
        "storage_dir": spec["storage_dir"],
        "bus_secret_file": spec.get("bus_secret_file", ""),
        "api_key_file": spec.get("api_key_file", ""),
        **spec.get("worker", {}),
    }


def run(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    vm_dir = Path(spec_path).parent
    supervisor = int(spec["supervisor_pid"])
    stopping = False

    def on_term(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    port_file = Path(spec["port_file"])
    port_file.unlink(missing_ok=True)
    log = sys.stdout
    children: dict[str, subprocess.Popen[bytes]] = {}
    server_argv = _server_argv(spec, spec_path)
    try:
        children["inference"] = _spawn(server_argv, log)
    except OSError as exc:  # a configured command that cannot run: the VM powers off
        print(f"vm: the model server {server_argv[0]!r} cannot start: {exc}", flush=True)
        return 1
    deadline = time.monotonic() + 30
    while not port_file.exists() and time.monotonic() < deadline and not stopping:
        time.sleep(0.02)
    agent_cfg = dict(spec["agent"])
    if port_file.exists():
        agent_cfg = _agent_config(spec, port_file.read_text().strip())
    agent_path = vm_dir / "agent.json"
    agent_path.write_text(json.dumps(agent_cfg, indent=2))
    agent_argv = [sys.executable, "-m", "yoyo_control.agent", "--config", str(agent_path)]
    argv = {"inference": server_argv, "agent": agent_argv}
    worker_cfg = _worker_config(spec, port_file.read_text().strip()) if port_file.exists() else None
    if worker_cfg is not None:
        worker_path = vm_dir / "worker.json"
        worker_path.write_text(json.dumps(worker_cfg, indent=2))
        argv["worker"] = [sys.executable, "-m", "yoyo_control.worker", "--config", str(worker_path)]
    if not stopping:
        for name in ("agent", "worker"):
            if name in argv:
                children[name] = _spawn(argv[name], log)

    def write_pids() -> None:
        pids = [os.getpid(), *(c.pid for c in children.values())]
        (vm_dir / "pids").write_text(" ".join(str(p) for p in pids))

    write_pids()
    while not stopping:
        if os.getppid() != supervisor:  # the supervisor is gone: so is the machine
            break
        for name, child in list(children.items()):
            if child.poll() is not None and not stopping:
                time.sleep(0.5)  # RestartSec
                children[name] = _spawn(argv[name], log)
                write_pids()
        time.sleep(0.1)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children.values():
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0


def poweroff() -> int:
    """Power off the VM this command runs in: signal its whole process group."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # report success to the caller
    os.killpg(os.getpgrp(), signal.SIGTERM)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yoyo_control.local.vm")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--spec", required=True)
    sub.add_parser("poweroff")
    args = parser.parse_args(argv)
    if args.command == "poweroff":
        return poweroff()
    return run(args.spec)


if __name__ == "__main__":
    sys.exit(main())
