"""Google emulators for test suites: start on a free 127.0.0.1 port, wait, stop for good.

Invariants:
- An emulator listens on 127.0.0.1 only and runs in its own session (process group);
  ``stop()`` ends the whole group (the launcher script and its JVM), escalating from
  SIGTERM to SIGKILL, is idempotent, and also runs at interpreter exit. If the test
  process dies without either (SIGKILL, a crash), a small watchdog process holding a
  pipe from it ends the group.
- Output goes to a log file, never a pipe (a full pipe would stall the emulator); a
  failed start raises with the log's tail.
- A missing binary or Java raises EmulatorUnavailable with what to install; callers
  fail on it unless YOYO_SKIP_EMULATORS=1 (``skip_requested()``), so a machine that has
  the emulators never silently skips them.
- Nothing here imports pytest: any suite (contract, e2e, bench) can use it.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SKIP_ENV = "YOYO_SKIP_EMULATORS"
SDK_ROOT = Path("/usr/lib/google-cloud-sdk")
FIRESTORE_BIN_ENV = "YOYO_FIRESTORE_EMULATOR"  # optional override of the launcher path
FIRESTORE_BIN = SDK_ROOT / "platform/cloud-firestore-emulator/cloud_firestore_emulator"


class EmulatorUnavailable(RuntimeError):
    """The emulator (or the Java it needs) is not installed here."""


class EmulatorStartError(RuntimeError):
    """The emulator did not come up; ``exited`` if its process ended (e.g. port taken)."""

    def __init__(self, message: str, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV) == "1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the emulator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Runs beside each emulator: when the test process dies without stopping it (SIGKILL,
# a crash), the pipe closes with nothing written and the watchdog ends the group.
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
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 5.0, keep_log: bool = False) -> None:
        """End the emulator's whole process group; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
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
        if self._log is not None:
            self._log.close()
            self._log = None
        if not keep_log:
            self.log_path.unlink(missing_ok=True)

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


def _require_java() -> None:
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java:
        raise EmulatorUnavailable(
            "Java is not installed (the Google emulators need Java 17+): "
            f"apt-get install openjdk-17-jre-headless, or set {SKIP_ENV}=1 to skip"
        )


def _launch(name: str, argv: list[str], host: str, ready: Any, timeout_s: float) -> Emulator:
    fd, path = tempfile.mkstemp(prefix=f"yoyo-{name}-", suffix=".log")
    log = os.fdopen(fd, "wb")
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
    emulator = Emulator(name, host, process, Path(path), log, watchdog)
    atexit.register(emulator.stop)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready(emulator):
            if process.poll() is not None:
                raise EmulatorStartError(
                    f"{name} emulator exited with {process.returncode}:\n{emulator.log_tail()}",
                    exited=True,
                )
            if time.monotonic() > deadline:
                raise EmulatorStartError(
                    f"{name} emulator not ready after {timeout_s:.0f}s:\n{emulator.log_tail()}",
                    exited=False,
                )
            time.sleep(0.1)
    except BaseException:
        emulator.stop(keep_log=True)  # the error message carries its tail; keep the rest
        raise
    return emulator


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# --- Firestore -----------------------------------------------------------------------


def firestore_binary() -> Path:
    path = Path(os.environ.get(FIRESTORE_BIN_ENV) or FIRESTORE_BIN)
    if not path.is_file():
        raise EmulatorUnavailable(
            f"Firestore emulator not found at {path}: install the Debian package "
            "google-cloud-cli-firestore-emulator (or `gcloud components install "
            f"cloud-firestore-emulator`), set {FIRESTORE_BIN_ENV}, or set {SKIP_ENV}=1 to skip"
        )
    return path


def start_firestore(timeout_s: float = 60.0, attempts: int = 3) -> Emulator:
    """Start the Firestore emulator on a free port and wait until it answers HTTP."""
    binary = firestore_binary()
    _require_java()
    for attempt in range(attempts):
        host = f"127.0.0.1:{free_port()}"
        argv = [str(binary), "start", "--host=127.0.0.1", f"--port={host.split(':')[1]}"]
        try:
            return _launch("firestore", argv, host, lambda e: _http_ok(e.url + "/"), timeout_s)
        except EmulatorStartError as exc:
            if not exc.exited or attempt == attempts - 1:  # exited: the port may be taken
                raise
    raise AssertionError("unreachable")


def reset_firestore(host: str, project: str, database: str = "(default)") -> None:
    """Delete every document of ``project`` in the emulator (its REST reset endpoint)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/{database}/documents"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10):
        pass


@contextlib.contextmanager
def firestore_env(host: str) -> Iterator[None]:
    """FIRESTORE_EMULATOR_HOST set to ``host`` while a client is built, restored after.

    The Firestore client reads the variable once, in its constructor; restoring it keeps
    other suites (bootstrap.build_store looks at it) unaffected.
    """
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


def firestore_client(host: str, project: str, database: str = "(default)") -> Any:
    """A google.cloud.firestore.Client talking to the emulator at ``host``."""
    from google.cloud import firestore

    with firestore_env(host):
        return firestore.Client(project=project, database=database)


# --- Pub/Sub -------------------------------------------------------------------------
# start_pubsub() lives in tests/pubsub_emulator.py, built on _launch(), _require_java(),
# free_port() and EmulatorStartError above (keep their signatures stable).
