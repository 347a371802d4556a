"""The gateway over a store it may only read (its account in the cloud: roles/datastore.
viewer, terraform/iam.tf): what works, and what answers a 503 that says why.

Only the batch API writes from the gateway (batch records); without Terraform's
``gateway_store_writes`` its writes are refused, and the client is told it is no use
retrying (``x-should-retry: false``, code ``store_write_denied``), not "retry in 5 s".
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from asgi_serving import Client, Server, asgi_app
from fakes import ReadOnlyStore, RecordingPublisher
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.batch.service import BatchService
from yoyo_control.config import parse_config
from yoyo_control.gateway.app import Gateway
from yoyo_control.gateway.auth import KeyRing, digest
from yoyo_control.gateway.batches import BatchApi

KEY = "sk-ro"
CONFIG = parse_config({"pools": {"chat": {"instances": ["vm-0"], "model": "chat-m"}}})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[Client, ReadOnlyStore]]:
    clock = ManualClock()
    store = ReadOnlyStore(SqliteStore(tmp_path / "yoyo.sqlite3"))
    storage = LocalStorage(tmp_path / "objects")
    batches = BatchService(store, storage, RecordingPublisher(), clock, CONFIG)  # type: ignore[arg-type]
    gateway = Gateway(
        CONFIG,
        store,  # type: ignore[arg-type]
        lambda fact: None,
        HttpUpstream("unused", read_timeout_s=1),
        KeyRing([digest(KEY)]),
        clock,
        record=lambda event: None,
        batch_api=BatchApi(batches, CONFIG.gateway),
    )
    server = Server(asgi_app(gateway))
    c = Client(server.url)
    yield c, store
    c.close()
    server.stop()


def test_files_work_and_a_batch_create_is_a_503_that_says_not_to_retry(client) -> None:
    c, store = client
    auth = {"Authorization": f"Bearer {KEY}"}
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "chat-m", "messages": [{"role": "user", "content": "hi"}]},
    }
    form = {"purpose": "batch", "file": (io.BytesIO(json.dumps(line).encode() + b"\n"), "in.jsonl")}
    uploaded = c.open(
        "/v1/files", "POST", headers=auth, data=form, content_type="multipart/form-data"
    )
    assert uploaded.status_code == 200, uploaded.data  # Storage only: no store write
    assert store.refused == []
    file_id = uploaded.get_json()["id"]
    assert c.get("/v1/batches", headers=auth).status_code == 200  # reads pass
    created = c.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
              "completion_window": "24h"},
        headers=auth,
    )  # fmt: skip
    assert created.status_code == 503, created.data
    error = created.get_json()["error"]
    assert error["code"] == "store_write_denied" and "gateway_store_writes" in error["message"]
    assert created.headers["x-should-retry"] == "false"
    assert "Retry-After" not in created.headers
    assert store.refused == ["update_batch"]
