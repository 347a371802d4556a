"""Fixtures of the store contract suite: one suite, run against every Store adapter.

Invariants:
- ``store_factory`` (and ``store``) is parametrized ``sqlite`` / ``firestore``; the
  Firestore emulator (``firestore_emulator``, tests/conftest.py) starts once per
  session, only when a ``[firestore]`` test runs, and its whole process group is
  stopped at session end (even after a failure or Ctrl-C).
- Each test gets a fresh namespace: a new SQLite file, or a new emulator project id.
- Without the emulator (binary or Java missing) the ``[firestore]`` tests FAIL with the
  reason, unless YOYO_SKIP_EMULATORS=1.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import emulators
from yoyo_control.adapters.sqlite_store import SqliteStore

_FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the figures tests record with ``record_property("figures", ...)``."""
    if report.when == "call":
        _FIGURES.extend(str(v) for k, v in report.user_properties if k == "figures")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("contract figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@dataclass
class StoreFactory:
    """Builds stores that share one namespace (like two function instances would)."""

    kind: str
    _make: Callable[..., Any]
    project: str = ""  # firestore: the emulator project holding this test's documents
    host: str = ""  # firestore: the emulator's host:port
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self, **options: Any) -> Any:
        return self._make(**options)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()


def _sqlite_factory(path: Path) -> StoreFactory:
    factory = StoreFactory("sqlite", lambda: None)

    def make(**options: Any) -> SqliteStore:
        store = SqliteStore(path, **options)
        factory._cleanups.append(store.close)
        return store

    factory._make = make
    return factory


def _firestore_factory(emulator: emulators.Emulator) -> StoreFactory:
    from yoyo_control.adapters.firestore_store import FirestoreStore

    project = f"yoyo-test-{uuid.uuid4().hex[:12]}"
    factory = StoreFactory("firestore", lambda: None, project=project, host=emulator.host)

    def make(**options: Any) -> FirestoreStore:
        client = emulators.firestore_client(emulator.host, project)
        factory._cleanups.append(client.close)
        return FirestoreStore(project, client=client, **options)

    factory._make = make
    return factory


@pytest.fixture(
    params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)],
)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "sqlite":
        factory = _sqlite_factory(tmp_path / "store.sqlite3")
    else:
        factory = _firestore_factory(request.getfixturevalue("firestore_emulator"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def firestore_factory(firestore_emulator: emulators.Emulator) -> Iterator[StoreFactory]:
    """FirestoreStores on a fresh emulator project (for Firestore-only tests)."""
    factory = _firestore_factory(firestore_emulator)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    return store_factory()
