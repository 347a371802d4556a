"""Google emulators for test suites: the launcher is yoyo_control.local.emulators (the one
``yoyoctl local up --emulators`` uses); this adds what tests need around it.

Invariants:
- A missing binary or Java raises EmulatorUnavailable with what to install; callers
  fail on it unless YOYO_SKIP_EMULATORS=1 (``skip_requested()``), so a machine that has
  the emulators never silently skips them (``session`` does this for fixtures).
- Nothing here imports pytest at import time: any suite (contract, e2e, bench) can use it.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from yoyo_control.local.emulators import (
    Emulator,
    EmulatorStartError,
    EmulatorUnavailable,
    free_port,
    http_ok,
    launch,
    start_firestore,
    start_pubsub,
)

__all__ = [
    "Emulator",
    "EmulatorStartError",
    "EmulatorUnavailable",
    "free_port",
    "http_ok",
    "launch",
    "start_firestore",
    "start_pubsub",
]

SKIP_ENV = "YOYO_SKIP_EMULATORS"


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV) == "1"


def session(start: Callable[[], Emulator], what: str) -> Iterator[Emulator]:
    """A fixture's body: skip when YOYO_SKIP_EMULATORS=1, fail with the reason when the
    emulator is not installed, yield it running, stop it after."""
    import pytest

    if skip_requested():
        pytest.skip(f"{SKIP_ENV}=1: {what} emulator tests skipped")
    unavailable = ""
    try:
        emulator = start()
    except EmulatorUnavailable as exc:
        unavailable = f"{exc} (or set {SKIP_ENV}=1 to skip)"
    if unavailable:
        pytest.fail(unavailable, pytrace=False)
    try:
        yield emulator
    finally:
        emulator.stop()


# --- Firestore -----------------------------------------------------------------------


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
