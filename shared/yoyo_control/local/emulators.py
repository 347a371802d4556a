"""Google's Firestore and Pub/Sub emulators, started for ``yoyoctl local up --emulators``.

(Test suites may reuse this launcher: production code cannot import tests/.)

Invariants: each emulator listens on 127.0.0.1 on a free port, in its own session
(process group), with its output in a log file (never a pipe) in its own temporary
directory (with the Pub/Sub emulator's data); ``stop()`` ends the whole group (SIGTERM,
then SIGKILL), removes that directory, is idempotent and also runs at interpreter exit
(a failed start stops too, after reading the log's tail); a missing
emulator or Java is a ConfigError saying what to install; a failed start raises with the
log's tail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import jsonhttp as http
from ..errors import ConfigError

SDK_ROOT = Path(os.environ.get("YOYO_GCLOUD_SDK_ROOT", "/usr/lib/google-cloud-sdk"))
FIRESTORE = SDK_ROOT / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
PUBSUB = SDK_ROOT / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Emulator:
    name: str
    host_port: str  # the *_EMULATOR_HOST value
    process: subprocess.Popen[bytes]
    work_dir: Path  # the log and any data; removed by stop()

    @property
    def log_path(self) -> Path:
        return self.work_dir / "emulator.log"

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 5.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the JVM child of the script
            break
        shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.stop)


def _require(binary: Path, package: str) -> None:
    if not binary.is_file():
        raise ConfigError(
            f"{binary} not found: install the Debian package {package} (or run without --emulators)"
        )
    if not (os.environ.get("JAVA") or shutil.which("java")):
        raise ConfigError("the emulators need Java 17+: apt-get install openjdk-17-jre-headless")


def _launch(
    name: str, argv: list[str], host_port: str, timeout_s: float, work_dir: Path | None = None
) -> Emulator:
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix=f"yoyo-{name}-"))
    with open(work_dir / "emulator.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator = Emulator(name, host_port, process, work_dir)
    atexit.register(emulator.stop)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if http.get(f"http://{host_port}/", timeout=1.0)[0] == 200:
                return emulator
        if process.poll() is not None or time.monotonic() > deadline:
            tail = emulator.log_tail()
            emulator.stop()
            raise ConfigError(f"the {name} emulator did not start:\n{tail}")
        time.sleep(0.2)


def start_firestore(project: str, timeout_s: float = 60.0) -> Emulator:
    _require(FIRESTORE, "google-cloud-cli-firestore-emulator")
    port = free_port()
    argv = [str(FIRESTORE), "start", "--host=127.0.0.1", f"--port={port}"]
    return _launch("firestore", argv, f"127.0.0.1:{port}", timeout_s)


def start_pubsub(project: str, timeout_s: float = 60.0) -> Emulator:
    _require(PUBSUB, "google-cloud-cli-pubsub-emulator")
    port = free_port()
    work_dir = Path(tempfile.mkdtemp(prefix="yoyo-pubsub-"))
    argv = [str(PUBSUB), "--host=127.0.0.1", f"--port={port}", f"--dir={work_dir / 'data'}"]
    return _launch("pubsub", argv, f"127.0.0.1:{port}", timeout_s, work_dir)
