"""``/v1/files`` and ``/v1/batches`` in-process over raw HTTP: the real gateway, BatchService,
SQLite store and local Storage; a recording publisher (no worker runs here: the whole
flow with the ``openai`` client and a real worker is tests/local/test_batch_api_stack.py).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
from werkzeug.test import EnvironBuilder

from fakes import RecordingPublisher
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.batch.controller import BatchController
from yoyo_control.batch.files import FileNotFound
from yoyo_control.batch.service import BatchService
from yoyo_control.config import parse_config
from yoyo_control.gateway.app import Gateway
from yoyo_control.gateway.auth import KeyRing, digest
from yoyo_control.gateway.batches import BatchApi

KEY = "sk-test-key"


def line(custom_id: str, model: str = "chat-m", url: str = "/v1/chat/completions") -> str:
    body = {"model": model, "messages": [{"role": "user", "content": custom_id}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


class Api:
    def __init__(self, tmp_path: Path, **gateway: Any) -> None:
        config = parse_config(
            {
                "pools": {
                    "chat": {"instances": ["vm-0"], "model": "chat-m"},
                    "embed": {"instances": ["vm-1"], "model": "embed-m"},
                },
                "gateway": {"max_body_bytes": 4096, "max_file_bytes": 20_000, **gateway},
            }
        )
        self.clock = ManualClock()
        self.storage = LocalStorage(tmp_path / "objects")
        self.store = SqliteStore(tmp_path / "yoyo.sqlite3")
        self.publisher = RecordingPublisher()
        batches = BatchService(self.store, self.storage, self.publisher, self.clock, config)
        self.batch_api = BatchApi(batches, config.gateway)
        gateway_ = Gateway(
            config,
            self.store,
            lambda fact: None,
            HttpUpstream("unused", read_timeout_s=1),
            KeyRing([digest(KEY)]),
            self.clock,
            batch_api=self.batch_api,
        )
        app = flask.Flask("batch-api-test")
        app.add_url_rule(
            "/v1/<path:rest>",
            "gw",
            lambda rest: gateway_(flask.request),
            methods=["GET", "POST", "DELETE"],
        )
        self.client = app.test_client()

    def call(self, method: str, path: str, key: str = KEY, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.client.open(f"/v1{path}", method=method, headers=headers, **kw)

    def upload(self, data: bytes, purpose: str = "batch", **kw: Any) -> Any:
        form = {"purpose": purpose, "file": (io.BytesIO(data), "in.jsonl")}
        return self.call("POST", "/files", data=form, content_type="multipart/form-data", **kw)

    def create(self, **doc: Any) -> Any:
        return self.call("POST", "/batches", json={"completion_window": "24h", **doc})


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data
    doc = response.get_json()
    assert set(doc["error"]) == {"message", "type", "param", "code"}, doc
    return dict(doc["error"])


@pytest.fixture
def api(tmp_path: Path) -> Callable[..., Api]:
    return lambda **gateway: Api(tmp_path, **gateway)


def test_upload_create_get_list_cancel_and_read_the_batchs_files(api) -> None:
    a = api()
    uploaded = a.upload(jsonl(line("a"), line("b"), line("c")))
    assert uploaded.status_code == 200, uploaded.data
    file = uploaded.get_json()
    assert file["object"] == "file" and file["purpose"] == "batch" and file["bytes"] > 0
    assert a.call("GET", f"/files/{file['id']}").get_json() == file
    content = a.call("GET", f"/files/{file['id']}/content")
    assert content.data == jsonl(line("a"), line("b"), line("c"))
    assert [f["id"] for f in a.call("GET", "/files").get_json()["data"]] == [file["id"]]

    created = a.create(
        input_file_id=file["id"], endpoint="/v1/chat/completions", metadata={"job": "t"}
    )
    assert created.status_code == 200, created.data
    batch = created.get_json()
    assert batch["object"] == "batch" and batch["status"] == "in_progress"
    assert batch["pool"] == "chat" and batch["input_file_id"] == file["id"]
    assert batch["metadata"] == {"job": "t"} and batch["request_counts"]["total"] == 3
    assert a.call("GET", f"/batches/{batch['id']}").get_json()["id"] == batch["id"]

    a.clock.advance(1)
    second = a.create(input_file_id=file["id"], endpoint="/v1/chat/completions").get_json()
    page = a.call("GET", "/batches?limit=1").get_json()
    assert [b["id"] for b in page["data"]] == [second["id"]] and page["has_more"] is True
    rest = a.call("GET", f"/batches?limit=1&after={second['id']}").get_json()
    assert [b["id"] for b in rest["data"]] == [batch["id"]] and rest["has_more"] is False

    cancelling = a.call("POST", f"/batches/{batch['id']}/cancel").get_json()
    assert cancelling["status"] == "cancelling"  # as OpenAI's; the batch controller ends it
    BatchController(a.batch_api.batches, None).run()
    cancelled = a.call("GET", f"/batches/{batch['id']}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["output_file_id"]
    errors = a.call("GET", f"/files/{cancelled['error_file_id']}/content").data
    assert sorted(json.loads(x)["custom_id"] for x in errors.splitlines()) == ["a", "b", "c"]
    output = a.call("GET", f"/files/{cancelled['output_file_id']}")
    assert output.get_json()["purpose"] == "batch_output" and output.get_json()["bytes"] == 0
    assert a.call("GET", f"/files/{cancelled['input_file_id']}").get_json() == file


def test_the_pool_follows_the_lines_model(api) -> None:
    a = api()
    embed = line("e", model="embed-m", url="/v1/embeddings")
    file_id = a.upload(jsonl(embed)).get_json()["id"]
    batch = a.create(input_file_id=file_id, endpoint="/v1/embeddings").get_json()
    assert batch["pool"] == "embed"
    mixed = a.upload(jsonl(line("a"), line("b", model="embed-m")))
    assert "line 2: model 'embed-m' is served by pool 'embed'" in error_of(mixed, 400)["message"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jsonl(line("a"), "{broken"), "line 2: not valid JSON"),
        (jsonl(line("a"), line("a")), "line 2: custom_id 'a' repeats line 1"),
        (jsonl(line("a", url="/v1/images")), "line 1: url '/v1/images'"),
        (jsonl(line("a", model="nope")), "line 1: model 'nope' is not served"),
        (b"", "the file holds no requests"),
    ],
)
def test_a_bad_upload_is_400_naming_the_line_and_nothing_is_stored(
    api, data: bytes, message: str
) -> None:
    a = api()
    error = error_of(a.upload(data), 400)
    assert error["message"].startswith(message) and error["param"] == "file", error
    assert error["code"] == "invalid_batch_input"
    assert a.storage.list("") == []


def test_bad_requests_are_400_and_store_nothing(api) -> None:
    a = api()
    assert "purpose" in error_of(a.upload(jsonl(line("a")), purpose="fine-tune"), 400)["message"]
    no_file = a.call("POST", "/files", data={"purpose": "batch"})
    assert error_of(no_file, 400)["param"] == "file"
    assert a.storage.list("") == []
    file_id = a.upload(jsonl(line("a"))).get_json()["id"]
    for doc, words in [
        ({"input_file_id": file_id, "endpoint": "/v1/embeddings"}, "differs from the input's url"),
        ({"input_file_id": file_id}, "'endpoint' is required"),
        ({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "x": 1}, "unknown field"),
        (
            {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": {"k": 1}},
            "metadata",
        ),
    ]:
        assert words in error_of(a.create(**doc), 400)["message"]
    window = a.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="1h"
    )
    assert "completion_window" in error_of(window, 400)["message"]
    assert error_of(a.call("GET", "/batches?limit=0"), 400)["param"] == "limit"
    assert a.call("GET", "/batches").get_json()["data"] == []
    assert a.publisher.data == []


def test_unknown_ids_are_404(api) -> None:
    a = api()
    missing = "file-" + "0" * 32
    for path in [
        f"/files/{missing}",
        f"/files/{missing}/content",
        "/files/file-../content",
        "/files/yoyo.sqlite3/content",
        f"/files/file-batch_{'0' * 32}-output/content",
        "/batches/batch_" + "0" * 32,
        "/batches/nope",
    ]:
        assert error_of(a.call("GET", path), 404)["code"] == "not_found", path
    with pytest.raises(FileNotFound):  # a trailing newline is part of no id
        a.batch_api.files.get(missing + "\n")
    create = a.create(input_file_id=missing, endpoint="/v1/chat/completions")
    assert error_of(create, 404)["message"] == f"no file {missing!r}"
    assert error_of(a.call("POST", "/batches/batch_" + "0" * 32 + "/cancel"), 404)


def test_no_key_is_401_and_a_wrong_method_405(api) -> None:
    a = api()
    for method, path in [("GET", "/files"), ("POST", "/files"), ("POST", "/batches")]:
        assert error_of(a.call(method, path, key=""), 401)["code"] == "invalid_api_key"
    assert error_of(a.upload(jsonl(line("a")), key="wrong"), 401)
    assert a.storage.list("") == []
    assert error_of(a.call("DELETE", "/batches"), 405)["code"] == "method_not_allowed"


def test_an_upload_over_max_file_bytes_is_413_and_other_bodies_keep_max_body_bytes(api) -> None:
    a = api(max_file_bytes=5000)
    big = jsonl(*(line(f"c{i}") for i in range(80)))
    assert len(big) > 5000
    error = error_of(a.upload(big), 413)
    assert "gateway.max_file_bytes" in error["message"]
    form = {"purpose": "batch", "file": (io.BytesIO(big), "in.jsonl")}
    environ = EnvironBuilder(path="/v1/files", method="POST", data=form).get_environ()
    del environ["CONTENT_LENGTH"]  # a body of unknown length (chunked) is bounded too
    environ.update({"wsgi.input_terminated": True, "HTTP_AUTHORIZATION": f"Bearer {KEY}"})
    assert "gateway.max_file_bytes" in error_of(a.client.open(environ), 413)["message"]
    assert a.storage.list("") == []
    small = jsonl(*(line(f"c{i}") for i in range(30)))  # over max_body_bytes, under max_file
    assert len(small) > 4096 and a.upload(small).status_code == 200
    padded = a.create(input_file_id="x" * 5000, endpoint="/v1/chat/completions")
    assert "gateway.max_body_bytes" in error_of(padded, 413)["message"]


def test_delete_removes_an_upload_but_not_a_batchs_file(api) -> None:
    a = api()
    file_id = a.upload(jsonl(line("a"))).get_json()["id"]
    batch = a.create(input_file_id=file_id, endpoint="/v1/chat/completions").get_json()
    deleted = a.call("DELETE", f"/files/{file_id}").get_json()
    assert deleted == {"id": file_id, "object": "file", "deleted": True}
    assert error_of(a.call("GET", f"/files/{file_id}"), 404)
    assert a.call("GET", "/files").get_json()["data"] == []
    own = f"file-{batch['id']}-input"
    assert error_of(a.call("DELETE", f"/files/{own}"), 400)
    assert a.call("GET", f"/files/{own}/content").data == jsonl(line("a"))


def test_a_batch_from_an_upload_reads_the_upload_it_is_stored_once(api) -> None:
    """Issue 23: the upload was stored, read back and stored again as the batch's input."""
    a = api()
    file_id = a.upload(jsonl(line("a"), line("b"))).get_json()["id"]
    batch = a.create(input_file_id=file_id, endpoint="/v1/chat/completions").get_json()
    record = a.batch_api.batches.store.get_batch(batch["id"])
    assert record.input_key == f"files/{file_id}/content.jsonl"
    assert a.storage.list(f"batches/{batch['id']}/") == []  # no second copy
