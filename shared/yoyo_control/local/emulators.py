"""Google's Firestore and Pub/Sub emulators: the one launcher, for ``yoyoctl local up
--emulators`` and for the test suites (tests/emulators.py adds only what tests need).

Invariants:
- An emulator listens on 127.0.0.1 on a free port, in its own session (process group),
  with its output in a log file (never a pipe: a full pipe would stall it) in its own
  temporary directory (with the Pub/Sub emulator's data).
- ``stop()`` ends the whole group (the launcher script and its JVM), escalating from
  SIGTERM to SIGKILL, removes that directory, is idempotent and also runs at interpreter
  exit. If the process that started it dies without either (SIGKILL, a crash), a small
  watchdog process holding a pipe from it ends the group.
- A missing emulator or Java raises EmulatorUnavailable (a ConfigError) saying what to
  install; a failed start raises EmulatorStartError (a ConfigError) with the log's tail,
  after stopping what it started; a start whose process exited (the port taken between
  choosing and binding it) is tried again on another port.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

SDK_ROOT = Path(os.environ.get("YOYO_GCLOUD_SDK_ROOT", "/usr/lib/google-cloud-sdk"))
FIRESTORE = SDK_ROOT / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
PUBSUB = SDK_ROOT / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
FIRESTORE_BIN_ENV = "YOYO_FIRESTORE_EMULATOR"  # optional override of the launcher path
PUBSUB_BIN_ENV = "YOYO_PUBSUB_EMULATOR"


class EmulatorUnavailable(ConfigError):
    """The emulator (or the Java it needs) is not installed here."""


class EmulatorStartError(ConfigError):
    """The emulator did not come up; ``exited`` if its process ended (e.g. port taken)."""

    def __init__(self, message: str, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the emulator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Runs beside each emulator: when the process that started it dies without stopping it
# (SIGKILL, a crash), the pipe closes with nothing written and the watchdog ends the group.
_WATCHDOG = """
import os, signal, sys, time
if sys.stdin.read() == "":
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(int(sys.argv[1]), sig)
        except ProcessLookupError:
            break
        time.sleep(3)
"""


@dataclass
class Emulator:
    """A running emulator: ``host`` is "127.0.0.1:PORT" (the *_EMULATOR_HOST value)."""

    name: str
    host: str
    process: subprocess.Popen[bytes]
    work_dir: Path  # the log and any data; removed by stop()
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "emulator.log"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 5.0) -> None:
        """End the emulator's whole process group; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _group_alive(pgid, self.process):
                time.sleep(0.05)
            if not _group_alive(pgid, self.process):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        if self._watchdog is not None:  # stand down: a word, then EOF
            with contextlib.suppress(OSError):
                assert self._watchdog.stdin is not None
                self._watchdog.stdin.write(b"stopped")
                self._watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=grace_s)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int, leader: subprocess.Popen[bytes]) -> bool:
    leader.poll()  # reap the leader so it does not linger as a zombie group member
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_java() -> None:
    if not (os.environ.get("JAVA") or shutil.which("java")):
        raise EmulatorUnavailable(
            "the emulators need Java 17+: apt-get install openjdk-17-jre-headless"
        )


def binary(path: Path, override_env: str, package: str, component: str) -> Path:
    """The emulator's launcher (``override_env`` may name another); EmulatorUnavailable
    saying what to install when it is missing."""
    found = Path(os.environ.get(override_env) or path)
    if not found.is_file():
        raise EmulatorUnavailable(
            f"{found} not found: install the Debian package {package} (or `gcloud "
            f"components install {component}`), or set {override_env}"
        )
    return found


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _answers(emulator: Emulator) -> bool:
    return http_ok(emulator.url + "/")


def launch(
    name: str,
    argv: list[str],
    host: str,
    timeout_s: float,
    work_dir: Path | None = None,
    ready: Callable[[Emulator], bool] = _answers,
) -> Emulator:
    """Run ``argv`` as emulator ``name`` and wait until ``ready`` (its root answers 200)."""
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix=f"yoyo-{name}-"))
    with open(work_dir / "emulator.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(process.pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    emulator = Emulator(name, host, process, work_dir, watchdog)
    atexit.register(emulator.stop)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready(emulator):
            exited = process.poll() is not None
            if exited or time.monotonic() > deadline:
                why = (
                    f"exited with {process.returncode}"
                    if exited
                    else f"not ready in {timeout_s:.0f}s"
                )
                raise EmulatorStartError(
                    f"the {name} emulator did not start ({why}):\n{emulator.log_tail()}", exited
                )
            time.sleep(0.1)
    except BaseException:
        emulator.stop()  # the error message carries the log's tail
        raise
    return emulator


def start(
    name: str, argv_at: Callable[[int, Path], list[str]], timeout_s: float, attempts: int
) -> Emulator:
    """Launch ``argv_at(port, work_dir)`` on a free port, on another one if it exited."""
    for attempt in range(attempts):
        port = free_port()
        work_dir = Path(tempfile.mkdtemp(prefix=f"yoyo-{name}-"))
        try:
            return launch(name, argv_at(port, work_dir), f"127.0.0.1:{port}", timeout_s, work_dir)
        except EmulatorStartError as exc:
            if not exc.exited or attempt == attempts - 1:  # exited: the port may be taken
                raise
    raise AssertionError("unreachable")


def start_firestore(timeout_s: float = 60.0, attempts: int = 3) -> Emulator:
    path = binary(
        FIRESTORE,
        FIRESTORE_BIN_ENV,
        "google-cloud-cli-firestore-emulator",
        "cloud-firestore-emulator",
    )
    require_java()
    return start(
        "firestore",
        lambda port, _: [str(path), "start", "--host=127.0.0.1", f"--port={port}"],
        timeout_s,
        attempts,
    )


def start_pubsub(timeout_s: float = 60.0, attempts: int = 3) -> Emulator:
    path = binary(PUBSUB, PUBSUB_BIN_ENV, "google-cloud-cli-pubsub-emulator", "pubsub-emulator")
    require_java()
    return start(
        "pubsub",
        lambda port, work: [str(path), "--host=127.0.0.1", f"--port={port}", f"--dir={work}/data"],
        timeout_s,
        attempts,
    )
