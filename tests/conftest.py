"""Session-wide test options. Suites keep their own fixtures in their folder's conftest,
but for the one several suites share: ``firestore_emulator``.

``--slow`` runs the long variants (marked ``slow``); without it they are skipped.
``firestore_emulator`` starts Google's Firestore emulator once per session, only when a
test asks for it, and stops its whole process group at session end; without the
emulator (binary or Java missing) those tests FAIL with the reason, unless
YOYO_SKIP_EMULATORS=1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import emulators


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="run long variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[emulators.Emulator]:
    yield from emulators.session(emulators.start_firestore, "Firestore")
