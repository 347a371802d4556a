"""An emulated Cloud Storage JSON API (the ``gcp-storage-emulator`` package) for tests.

Invariants:
- Started through the one launcher (yoyo_control.local.emulators): 127.0.0.1 only, its
  own process group, output to a log file, ``stop()`` ends the whole group, also at
  interpreter exit.
- In memory: nothing is written to disk; a new bucket name per test isolates tests.
- ``storage_client(host)`` is the real ``google.cloud.storage.Client`` pointed at the
  emulator with anonymous credentials (as ``STORAGE_EMULATOR_HOST`` would).
- Nothing here imports pytest.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from emulators import Emulator, EmulatorStartError, EmulatorUnavailable, free_port, http_ok, launch


def _binary() -> str:
    local = Path(sys.executable).with_name("gcp-storage-emulator")
    found = str(local) if local.is_file() else shutil.which("gcp-storage-emulator")
    if not found:
        raise EmulatorUnavailable(
            "gcp-storage-emulator is not installed: pip install 'gcp-storage-emulator>=2024.8'"
        )
    return found


def start_storage(timeout_s: float = 30.0, attempts: int = 3) -> Emulator:
    """Start the Cloud Storage emulator on a free port and wait until it answers HTTP."""
    binary = _binary()
    for attempt in range(attempts):
        port = free_port()
        host = f"127.0.0.1:{port}"
        argv = [binary, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "-q"]
        try:
            return launch(
                "storage", argv, host, timeout_s, ready=lambda e: http_ok(e.url + "/storage/v1/b")
            )
        except EmulatorStartError as exc:
            if not exc.exited or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def storage_client(host: str, project: str = "test-project") -> Any:
    """A real google.cloud.storage.Client talking to the emulator at ``host``."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://{host}"},
    )
