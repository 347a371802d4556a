"""Session-wide test options. Suites keep their own fixtures in their folder's conftest.

``--slow`` runs the long variants (marked ``slow``); without it they are skipped.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="run long variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
