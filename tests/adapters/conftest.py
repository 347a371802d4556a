"""Fixtures for the adapter tests: a Compute Engine REST stub and adapters pointed at it.

Every stub started here is closed (and every client session with it) even when a test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from compute_stub import ComputeStub
from yoyo_control.adapters.compute_engine import ComputeEngine


@pytest.fixture
def stub() -> Iterator[ComputeStub]:
    with ComputeStub() as server:
        yield server


@pytest.fixture
def make_engine(stub: ComputeStub) -> Iterator[Callable[..., ComputeEngine]]:
    from google.auth.credentials import AnonymousCredentials

    built: list[ComputeEngine] = []

    def make(**overrides: Any) -> ComputeEngine:
        options: dict[str, Any] = {
            "client_options": {"api_endpoint": stub.endpoint},
            "transport": "rest",
            "credentials": AnonymousCredentials(),
            "poll_interval_s": 0.001,
            "operation_timeout_s": 10.0,
            "request_timeout_s": 5.0,
        }
        engine = ComputeEngine(stub.project, **{**options, **overrides})
        built.append(engine)
        return engine

    yield make
    for engine in built:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., ComputeEngine]) -> ComputeEngine:
    return make_engine()
