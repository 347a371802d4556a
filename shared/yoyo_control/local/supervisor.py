"""The Supervisor: the local "hypervisor" that makes VM processes match the instance table.

Each pass (every ``poll_s``):
- STAGING with no process → start the VM (a new session: its own process group) → RUNNING;
- STOPPING → SIGTERM the VM's process group, SIGKILL after ``stop_grace_s`` → TERMINATED;
- RUNNING whose leader exited (the agent powered it off, or it crashed) → TERMINATED.

Invariants: a VM process is only ever started here; on start-up, VMs left by an earlier
run (pids in the table whose command line is a local VM of this state dir) are killed and
marked TERMINATED; ``stop()`` ends every VM (group) it started and waits for them, so
nothing outlives ``local up``. VM output (agent and inference logs) goes to the stack's
log through ``sink``, one line at a time, prefixed by the instance.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import logs
from .compute import InstanceTable, Row


@dataclass
class _Vm:
    process: subprocess.Popen[bytes]
    boot_id: str
    term_sent_at: float | None = None


class Supervisor:
    def __init__(
        self,
        table: InstanceTable,
        state_dir: Path,
        vm_spec: Callable[[Row, str], dict[str, Any]],
        sink: Callable[[str, str], None] | None = None,
        poll_s: float = 0.05,
        stop_grace_s: float = 3.0,
    ) -> None:
        self.table = table
        self.state_dir = Path(state_dir).resolve()
        self.vm_spec = vm_spec
        self.sink = sink
        self.poll_s = poll_s
        self.stop_grace_s = stop_grace_s
        self.vms: dict[str, _Vm] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.reap_leftovers()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for vm in list(self.vms.values()):
            self._signal(vm, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        for name, vm in list(self.vms.items()):
            try:
                vm.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(vm, signal.SIGKILL)
                vm.process.wait()
            self._signal(vm, signal.SIGKILL)  # any straggler of the group
            self.table.update(
                name, status="TERMINATED", pid=None, port=None, note="local stack stopped"
            )
            del self.vms[name]
        for reader in self._readers:
            reader.join(2)

    def reap_leftovers(self) -> None:
        """Kill VMs an earlier (crashed) run left behind; mark them TERMINATED."""
        for row in self.table.rows():
            if row.pid and _is_our_vm(row.pid, self.state_dir):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(row.pid, signal.SIGKILL)
            if row.status != "TERMINATED" or row.pid:
                self.table.update(
                    row.name, status="TERMINATED", pid=None, port=None, note="reaped at start-up"
                )

    # --- the reconcile loop ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pass_once()
            except Exception as exc:  # keep supervising whatever one pass hit
                logs.error(f"supervisor: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_s)

    def pass_once(self) -> None:
        for row in self.table.rows():
            vm = self.vms.get(row.name)
            alive = vm is not None and vm.process.poll() is None
            if row.status == "STAGING" and not alive:
                self._boot(row)
            elif row.status == "STOPPING":
                self._halt(row, vm)
            elif row.status == "RUNNING" and vm is not None and not alive:
                code = vm.process.returncode
                del self.vms[row.name]
                self.table.update(
                    row.name,
                    status="TERMINATED",
                    pid=None,
                    port=None,
                    note=f"powered off (exit {code})",
                )
                logs.info(
                    f"{row.name}: the VM powered off; observed TERMINATED",
                    pool=row.pool,
                    instance=row.name,
                )
            elif row.status == "RUNNING" and vm is not None and row.port is None:
                port_file = self.state_dir / "vms" / row.name / "port"
                with contextlib.suppress(OSError, ValueError):
                    self.table.update(row.name, port=int(port_file.read_text()))

    def _boot(self, row: Row) -> None:
        vm_dir = self.state_dir / "vms" / row.name
        vm_dir.mkdir(parents=True, exist_ok=True)
        boot_id = uuid.uuid4().hex
        spec = self.vm_spec(row, boot_id)
        spec.update(
            instance=row.name,
            pool=row.pool,
            supervisor_pid=os.getpid(),
            port_file=str(vm_dir / "port"),
        )
        spec_path = vm_dir / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        (vm_dir / "port").unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "yoyo_control.local.vm", "run", "--spec", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the VM
        )
        self.vms[row.name] = _Vm(process, boot_id)
        self.table.update(
            row.name,
            status="RUNNING",
            pid=process.pid,
            port=None,
            boot_id=boot_id,
            started_at=time.time(),
            note="booting",
        )
        logs.info(
            f"{row.name}: VM started (pid {process.pid}, boot {boot_id[:8]})",
            pool=row.pool,
            instance=row.name,
        )
        reader = threading.Thread(
            target=self._pump, args=(row.name, process), name=f"log-{row.name}", daemon=True
        )
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]

    def _halt(self, row: Row, vm: _Vm | None) -> None:
        if vm is None or vm.process.poll() is not None:
            if vm is not None:
                self._signal(vm, signal.SIGKILL)
                del self.vms[row.name]
            self.table.update(row.name, status="TERMINATED", pid=None, port=None, note="stopped")
            logs.info(f"{row.name}: VM stopped; TERMINATED", pool=row.pool, instance=row.name)
            return
        now = time.monotonic()
        if vm.term_sent_at is None:
            vm.term_sent_at = now
            self._signal(vm, signal.SIGTERM)
        elif now - vm.term_sent_at > self.stop_grace_s:
            self._signal(vm, signal.SIGKILL)

    @staticmethod
    def _signal(vm: _Vm, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(vm.process.pid, sig)

    def _pump(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            if self.sink is not None:
                self.sink(name, raw.decode("utf-8", "replace").rstrip("\n"))
        process.stdout.close()


def _is_our_vm(pid: int, state_dir: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "yoyo_control.local.vm" in cmdline and str(state_dir.resolve()) in cmdline
