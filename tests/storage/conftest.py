"""Fixtures of the storage contract suite: one suite, run against every Storage adapter.

Invariants: ``storage`` is parametrized ``local`` / ``gcs``; the Cloud Storage emulator
starts once per session, only when a ``[gcs]`` test runs, and is stopped at session end;
each test gets a fresh directory or a fresh bucket. Without the emulator the ``[gcs]``
tests FAIL with the reason, unless YOYO_SKIP_EMULATORS=1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emulators
import storage_emulator
from yoyo_control.adapters.cloud_storage import CloudStorage
from yoyo_control.adapters.local_storage import LocalStorage


@pytest.fixture(scope="session")
def storage_emulator_host() -> Iterator[str]:
    for emulator in emulators.session(storage_emulator.start_storage, "Cloud Storage"):
        yield emulator.host


def make_cloud_storage(host: str) -> CloudStorage:
    client = storage_emulator.storage_client(host)
    bucket = client.create_bucket(f"yoyo-test-{uuid.uuid4().hex[:12]}")
    return CloudStorage(bucket.name, client=client)


@pytest.fixture(params=["local", "gcs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    return make_cloud_storage(request.getfixturevalue("storage_emulator_host"))
