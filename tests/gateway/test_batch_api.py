"""``/v1/files`` and ``/v1/batches`` in-process over raw HTTP: the real gateway, BatchService,
SQLite store and local Storage; a recording publisher (no worker runs here: the whole
flow with the ``openai`` client and a real worker is tests/local/test_batch_api_stack.py).
"""

from __future__ import annotations

import datetime
import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder

import emulators
import storage_emulator
from asgi_serving import Client, Server, asgi_app
from fakes import RecordingPublisher
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.cloud_storage import CloudStorage
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.batch.controller import BatchController
from yoyo_control.batch.files import FileNotFound
from yoyo_control.batch.service import BatchService
from yoyo_control.config import parse_config
from yoyo_control.domain.model import KillSwitch
from yoyo_control.errors import ConfigError
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
    def __init__(self, tmp_path: Path, storage: Any = None, **gateway: Any) -> None:
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
        self.storage = storage or LocalStorage(tmp_path / "objects")
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
            record=lambda event: None,
            batch_api=self.batch_api,
        )
        self.server = Server(asgi_app(gateway_))  # stopped by the ``api`` fixture
        self.client = Client(self.server.url)

    def call(self, method: str, path: str, key: str = KEY, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.client.open(f"/v1{path}", method=method, headers=headers, **kw)

    def upload(self, data: bytes, purpose: str = "batch", **kw: Any) -> Any:
        form = {"purpose": purpose, "file": (io.BytesIO(data), "in.jsonl")}
        return self.call("POST", "/files", data=form, content_type="multipart/form-data", **kw)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel (the answer is ``cancelling``, as OpenAI's), let the batch controller end
        it, and read the batch back."""
        cancelling = self.call("POST", f"/batches/{batch_id}/cancel").get_json()
        assert cancelling["status"] == "cancelling", cancelling
        BatchController(self.batch_api.batches, None).run()
        done: dict[str, Any] = self.call("GET", f"/batches/{batch_id}").get_json()
        return done

    def create(self, **doc: Any) -> Any:
        return self.call("POST", "/batches", json={"completion_window": "24h", **doc})


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data
    doc = response.get_json()
    assert set(doc["error"]) == {"message", "type", "param", "code"}, doc
    return dict(doc["error"])


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def build(storage: Any = None, **gateway: Any) -> Api:
        made.append(Api(tmp_path, storage, **gateway))
        return made[-1]

    yield build
    for one in made:
        one.client.close()
        one.server.stop()


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
    body = environ["wsgi.input"].read()
    pieces = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
    # a body of unknown length (chunked, over HTTP) is bounded too
    chunked = a.client.request(
        "POST",
        "/v1/files",
        content=pieces,
        headers={"Content-Type": environ["CONTENT_TYPE"], "Authorization": f"Bearer {KEY}"},
    )
    assert "gateway.max_file_bytes" in error_of(chunked, 413)["message"]
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


# --- OpenAI's shapes (issue 24): the published OpenAPI document is the oracle -----------


def test_list_files_takes_order_and_purpose(api) -> None:
    a = api()
    older = a.upload(jsonl(line("a"))).get_json()["id"]
    a.clock.advance(5)
    newer = a.upload(jsonl(line("b"))).get_json()["id"]
    ids = lambda query: [f["id"] for f in a.call("GET", f"/files{query}").get_json()["data"]]  # noqa: E731
    assert ids("") == ids("?order=desc") == [newer, older]
    assert ids("?order=asc") == [older, newer]
    assert ids(f"?order=asc&after={older}") == [newer]
    assert ids("?order=asc&limit=1") == [older]
    assert ids("?purpose=batch") == [newer, older] and ids("?purpose=batch_output") == []
    assert error_of(a.call("GET", "/files?order=sideways"), 400)["param"] == "order"


def test_create_takes_output_expires_after_as_openai_types_it(api) -> None:
    a = api()
    file_id = a.upload(jsonl(line("a"))).get_json()["id"]
    doc = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    policy = {"anchor": "created_at", "seconds": 3600}
    created = a.create(**doc, output_expires_after=policy)
    assert created.status_code == 200, created.data
    for bad in [
        {"anchor": "created_at", "seconds": 3599},
        {"anchor": "created_at", "seconds": 2_592_001},
        {"anchor": "created_at", "seconds": True},
        {"anchor": "created_at", "seconds": 3600.0},
        {"anchor": "completed_at", "seconds": 3600},
        {"anchor": "created_at"},
        {"anchor": "created_at", "seconds": 3600, "x": 1},
        "1h",
    ]:
        error = error_of(a.create(**doc, output_expires_after=bad), 400)
        assert error["param"] == "output_expires_after", bad
    assert len(a.call("GET", "/batches").get_json()["data"]) == 1


def test_a_finished_batchs_output_and_error_files_are_listed(api) -> None:
    a = api()
    upload = a.upload(jsonl(line("a"), line("b"))).get_json()
    batch = a.create(input_file_id=upload["id"], endpoint="/v1/chat/completions").get_json()
    assert [f["id"] for f in a.call("GET", "/files").get_json()["data"]] == [upload["id"]]
    a.clock.advance(10)
    done = a.cancel(batch["id"])
    listed = {f["id"]: f for f in a.call("GET", "/files").get_json()["data"]}
    assert set(listed) == {upload["id"], done["output_file_id"], done["error_file_id"]}
    for file_id in (done["output_file_id"], done["error_file_id"]):
        assert listed[file_id] == a.call("GET", f"/files/{file_id}").get_json()
        assert listed[file_id]["purpose"] == "batch_output"
    outputs = a.call("GET", "/files?purpose=batch_output&order=asc").get_json()["data"]
    assert {f["id"] for f in outputs} == {done["output_file_id"], done["error_file_id"]}
    # a batch submitted without an upload (yoyoctl batch submit) lists its input file
    direct = a.batch_api.batches.submit(jsonl(line("c")), None)
    inputs = a.call("GET", "/files?purpose=batch").get_json()["data"]
    assert [f["id"] for f in inputs] == [f"file-{direct.id}-input", upload["id"]]
    first = a.call("GET", "/files?limit=1").get_json()
    assert first["has_more"] is True and first["first_id"] == first["last_id"]
    after = a.call("GET", f"/files?after={first['last_id']}").get_json()["data"]
    assert len(after) == 3 and first["last_id"] not in {f["id"] for f in after}


def test_every_answer_of_the_gateways_own_follows_openais_document(api) -> None:
    """Files, file list (empty and not), file delete, batch, batch list (empty and not),
    model list, model and the error object, each checked against OpenAI's schema."""
    from openai_spec import check

    a = api(max_file_bytes=5000)
    seen: set[tuple[str, str, int]] = set()

    def answer(method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = a.call(method, path, **kw)
        assert response.status_code == status, (method, path, response.data)
        doc = response.get_json()
        check(method, path.split("?")[0], status, doc)
        seen.add((method, path.split("?")[0].split("/")[1], status))
        return doc

    answer("GET", "/files")
    answer("GET", "/batches")
    answer("GET", "/files?order=asc")
    form = {"purpose": "batch", "file": (io.BytesIO(jsonl(line("a"), line("b"))), "in.jsonl")}
    upload = answer("POST", "/files", data=form, content_type="multipart/form-data")
    answer("GET", f"/files/{upload['id']}")
    body = {"input_file_id": upload["id"], "endpoint": "/v1/chat/completions"}
    batch = answer("POST", "/batches", json={**body, "completion_window": "24h"})
    answer("GET", f"/batches/{batch['id']}")
    answer("GET", "/batches?limit=1")
    a.clock.advance(3)
    answer("POST", f"/batches/{batch['id']}/cancel")
    BatchController(a.batch_api.batches, None).run()
    done = answer("GET", f"/batches/{batch['id']}")
    answer("GET", f"/files/{done['output_file_id']}")
    answer("GET", "/files")
    answer("GET", "/models")
    answer("GET", "/models/chat-m")
    second = a.upload(jsonl(line("z"))).get_json()
    answer("DELETE", f"/files/{second['id']}")
    # the errors the gateway answers itself, one of each status
    answer("GET", "/files", 401, key="wrong")
    answer("GET", "/files?limit=0", 400)
    answer("GET", "/batches/batch_" + "0" * 32, 404)
    answer("GET", "/models/nope", 404)
    answer("DELETE", "/batches", 405)
    answer("POST", "/models", 405)
    big = {"purpose": "batch", "file": (io.BytesIO(b"x" * 6000), "in.jsonl")}
    answer("POST", "/files", 413, data=big, content_type="multipart/form-data")
    a.store.transact(lambda tx: tx.save_kill(KillSwitch(True, "test", "tester", 0.0)))
    a.clock.advance(1)  # past the pool view's age, so the switch is read
    answer("POST", "/chat/completions", 503, json={"model": "chat-m", "messages": []})
    assert {m for m, _, s in seen if s == 200} == {"GET", "POST", "DELETE"}
    assert {s for *_, s in seen} == {200, 400, 401, 404, 405, 413, 503}


def test_the_openai_client_reads_every_answer(api) -> None:
    """The official client over the gateway's HTTP (in-process): each call parses."""
    import httpx2 as httpx  # the transport the openai package is built on
    import openai

    a = api()
    http = httpx.Client()
    client = openai.OpenAI(api_key=KEY, base_url=f"{a.server.url}/v1", http_client=http)
    assert client.files.list().data == [] and client.batches.list().data == []
    file = client.files.create(file=("in.jsonl", jsonl(line("a"), line("b"))), purpose="batch")
    assert client.files.retrieve(file.id).bytes == len(jsonl(line("a"), line("b")))
    assert client.files.content(file.id).read() == jsonl(line("a"), line("b"))
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 86_400},
    )
    assert batch.output_file_id is None and batch.request_counts.total == 2  # type: ignore[union-attr]
    assert [b.id for b in client.batches.list()] == [batch.id]
    a.clock.advance(1)  # its files are newer than the upload
    assert client.batches.cancel(batch.id).status == "cancelling"  # as OpenAI's
    BatchController(a.batch_api.batches, None).run()  # the batch controller ends it
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.output_file_id and done.error_file_id
    listed = [f.id for f in client.files.list(order="asc")]
    assert listed[0] == file.id and set(listed[1:]) == {done.output_file_id, done.error_file_id}
    assert {f.id for f in client.files.list(purpose="batch_output")} == set(listed[1:])
    assert [f.id for f in client.files.list(order="asc", limit=1)] == listed  # every page
    errors = client.files.content(done.error_file_id).read().splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in errors) == ["a", "b"]
    assert client.models.retrieve("chat-m").id == "chat-m"
    assert {m.id for m in client.models.list()} == {"chat-m", "embed-m"}
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_" + "0" * 32)
    assert client.files.delete(file.id).deleted is True


# --- large contents by signed URL (issue 25 point 3) ----------------------------------
# Cloud Run functions stream at most 10 MB in a response (32 MB buffered, 32 MB in a
# request): https://cloud.google.com/functions/quotas. The gateway streams a file up to
# gateway.stream_file_bytes and answers a larger one with a 302 to a V4 signed URL.

SIGNER = "yoyo-gateway@test-project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def storage_host() -> Iterator[str]:
    for emulator in emulators.session(storage_emulator.start_storage, "Cloud Storage"):
        yield emulator.host


def signing_storage(host: str) -> tuple[CloudStorage, Any]:
    """Cloud Storage on the emulator through a client whose credentials are a service
    account key made here (an RSA key of the test's own): the library signs with it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.cloud import storage
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test-project",
        "client_email": SIGNER,
        "private_key_id": "test-key",
        "private_key": pem,
        "token_uri": "http://127.0.0.1:9/token",  # never called: the token below is valid
    }
    credentials = service_account.Credentials.from_service_account_info(
        info,
        scopes=storage.Client.SCOPE,  # scoped already: the client keeps this object
    )
    credentials.token = "test-token"  # the emulator takes any token
    # google-auth compares naive UTC times
    credentials.expiry = datetime.datetime.now(datetime.UTC).replace(
        tzinfo=None
    ) + datetime.timedelta(hours=1)
    client = storage.Client(
        project="test-project",
        credentials=credentials,
        client_options={"api_endpoint": f"http://{host}"},
    )
    bucket = client.create_bucket(f"yoyo-test-{uuid.uuid4().hex[:12]}")
    return CloudStorage(bucket.name, client=client), key.public_key()


def verify_v4(url: str, public_key: Any) -> dict[str, str]:
    """The URL's query, after checking its signature as Google's V4 scheme defines it
    (https://cloud.google.com/storage/docs/authentication/signatures): RSA-SHA256 over the
    string-to-sign of the canonical request (GET, path, sorted query, the host header)."""
    import hashlib
    import urllib.parse

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    parsed = urllib.parse.urlsplit(url)
    pairs = [p.split("=", 1) for p in parsed.query.split("&")]
    signature = dict(pairs)["X-Goog-Signature"]
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted(p for p in pairs if p[0] != "X-Goog-Signature")
    )
    query = {k: urllib.parse.unquote(v) for k, v in pairs}
    canonical_request = "\n".join(
        [
            "GET",
            parsed.path,
            canonical_query,
            f"host:{parsed.netloc}",
            "",
            "host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    public_key.verify(
        bytes.fromhex(signature), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return query


@pytest.mark.emulator
def test_a_large_file_is_a_302_to_a_v4_signed_url_that_the_openai_client_follows(
    api, storage_host: str
) -> None:
    import urllib.request

    import openai

    storage, public_key = signing_storage(storage_host)
    a = api(storage, stream_file_bytes=1000, file_url_s=120)
    data = jsonl(*(line(f"c{i}") for i in range(20)))
    assert len(data) > 1000
    file_id = a.upload(data).get_json()["id"]
    small_id = a.upload(jsonl(line("s"))).get_json()["id"]

    answer = a.call("GET", f"/files/{file_id}/content")
    assert answer.status_code == 302 and answer.data == b""
    assert answer.headers["Cache-Control"] == "no-store"
    url = answer.headers["Location"]
    assert url.startswith(f"http://{storage_host}/{storage.bucket_name}/files/{file_id}/")
    query = verify_v4(url, public_key)
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Credential"].startswith(f"{SIGNER}/")
    assert query["X-Goog-Credential"].endswith("/auto/storage/goog4_request")
    assert (query["X-Goog-Expires"], query["X-Goog-SignedHeaders"]) == ("120", "host")
    assert query["response-content-disposition"] == f'attachment; filename="{file_id}.jsonl"'
    with urllib.request.urlopen(url, timeout=10) as got:  # fetched back through the emulator
        assert got.read() == data
    small = a.call("GET", f"/files/{small_id}/content")  # under the threshold: streamed
    assert small.status_code == 200 and small.data == jsonl(line("s"))

    sent: list[tuple[str, str | None]] = []
    # the SDK's own client (DefaultHttpxClient, what OpenAI() makes when given none)
    # follows redirects; a plain httpx client passed as http_client does not (README)
    http = openai.DefaultHttpxClient(
        event_hooks={
            "request": [
                lambda r: sent.append(
                    (f"{r.url.host}:{r.url.port}", r.headers.get("Authorization"))
                )
            ]
        },
    )
    client = openai.OpenAI(api_key=KEY, base_url=f"{a.server.url}/v1", http_client=http)
    assert client.files.content(file_id).read() == data
    assert sent[0] == (a.server.address, f"Bearer {KEY}")
    assert sent[1][0] != a.server.address  # the storage host: another origin
    assert sent[1][1] is None  # the key is not sent to the storage host
    assert client.files.content(small_id).read() == jsonl(line("s"))


@pytest.mark.emulator
def test_a_large_file_is_streamed_where_storage_cannot_sign_and_503_where_signing_fails(
    api, storage_host: str
) -> None:
    data = jsonl(*(line(f"c{i}") for i in range(20)))
    local = api(stream_file_bytes=1000)  # the embedded default: no signed URLs, no cap
    file_id = local.upload(data).get_json()["id"]
    answer = local.call("GET", f"/files/{file_id}/content")
    assert answer.status_code == 200 and answer.data == data

    # credentials without a key of their own that cannot get a token either: the IAM
    # signBlob path is tried and fails; the client is told to retry, nothing is streamed
    anonymous = make_anonymous_storage(storage_host)
    a = api(anonymous, stream_file_bytes=1000)
    file_id = a.upload(data).get_json()["id"]
    error = error_of(a.call("GET", f"/files/{file_id}/content"), 503)
    assert error["code"] == "signed_url_failed" and "signBlob" in error["message"]


def make_anonymous_storage(host: str) -> CloudStorage:
    client = storage_emulator.storage_client(host)
    bucket = client.create_bucket(f"yoyo-test-{uuid.uuid4().hex[:12]}")
    return CloudStorage(bucket.name, client=client)


def test_max_file_bytes_keeps_room_under_the_request_cap_and_streaming_under_its_cap() -> None:
    from yoyo_control.config import MAX_UPLOAD_BYTES, REQUEST_CAP, STREAMED_RESPONSE_CAP

    pools = {"chat": {"instances": ["vm-0"]}}
    gateway = parse_config({"pools": pools}).gateway
    assert gateway.max_file_bytes <= MAX_UPLOAD_BYTES < REQUEST_CAP
    assert gateway.stream_file_bytes <= STREAMED_RESPONSE_CAP
    for setting, value in [
        ("max_file_bytes", 32 * 1024 * 1024),
        ("max_file_bytes", MAX_UPLOAD_BYTES + 1),
        ("stream_file_bytes", STREAMED_RESPONSE_CAP + 1),
        ("file_url_s", 604_801),
        ("file_url_s", 0),
    ]:
        with pytest.raises(ConfigError, match=setting):
            parse_config({"pools": pools, "gateway": {setting: value}})
    assert parse_config({"pools": pools, "gateway": {"max_file_bytes": MAX_UPLOAD_BYTES}})


class IamSignBlob:
    """IAM Credentials' signBlob as the storage library calls it (its transport replaced:
    no IAM emulator exists and tests stay on 127.0.0.1): it signs for one service account
    with that account's key and answers 403 to any other account or token, as IAM does
    without ``iam.serviceAccounts.signBlob``
    (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob)."""

    def __init__(self, email: str, token: str, key: Any) -> None:
        self.email, self.token, self.key, self.calls = email, token, key, 0

    def __call__(self, url: str, method: str, body: str, headers: dict[str, str], **_: Any) -> Any:
        import base64
        import types

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self.calls += 1
        expected = f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{self.email}:signBlob"
        if url.split("?")[0] != expected or headers["Authorization"] != f"Bearer {self.token}":
            return types.SimpleNamespace(status=403, data=b'{"error": {"code": 403}}')
        payload = base64.b64decode(json.loads(body)["payload"])
        signed = self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        doc = {"keyId": "k", "signedBlob": base64.b64encode(signed).decode()}
        return types.SimpleNamespace(status=200, data=json.dumps(doc).encode())


class MetadataServer:
    """The Compute Engine metadata server's service-account endpoints, as Cloud Run's
    serves them to the default credentials (no emulator exists): the account's email
    behind the alias ``default``, and an access token
    (https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys)."""

    def __init__(self, email: str, token: str) -> None:
        import http.server
        import threading

        answers = {
            "/computeMetadata/v1/instance/service-accounts/default/": {
                "email": email,
                "aliases": ["default"],
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            },
            "/computeMetadata/v1/instance/service-accounts/default/token": {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
            },
        }
        self.paths: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                outer.paths.append(path)
                doc = answers.get(path)
                flavored = self.headers.get("Metadata-Flavor") == "Google"
                body = json.dumps(doc).encode() if doc and flavored else b"not found"
                self.send_response(200 if doc and flavored else 404)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        outer = self
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.emulator
def test_without_a_private_key_the_url_is_signed_by_iam_for_the_gateways_own_account(
    api, storage_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cloud Run's default credentials (Compute Engine's kind: the account is "default"
    until refreshed, a token and no key) sign through IAM's signBlob for their own
    account; the URL verifies with that account's key."""
    import types
    import urllib.request

    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import compute_engine
    from google.auth.compute_engine import _metadata
    from google.cloud import storage
    from google.cloud.storage import _signing

    metadata = MetadataServer(SIGNER, "metadata-token")
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", metadata.host)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    iam = IamSignBlob(SIGNER, "metadata-token", key)
    # the library's own signBlob call (_signing._sign_message) reaches this stand-in only
    monkeypatch.setattr(_signing, "requests", types.SimpleNamespace(Request=lambda: iam))
    try:
        credentials = compute_engine.Credentials(universe_domain="googleapis.com")
        assert credentials.service_account_email == "default"
        client = storage.Client(
            project="test-project",
            credentials=credentials,
            client_options={"api_endpoint": f"http://{storage_host}"},
        )
        bucket = client.create_bucket(f"yoyo-test-{uuid.uuid4().hex[:12]}")
        a = api(CloudStorage(bucket.name, client=client), stream_file_bytes=1000)
        data = jsonl(*(line(f"c{i}") for i in range(20)))
        file_id = a.upload(data).get_json()["id"]
        answer = a.call("GET", f"/files/{file_id}/content")
        assert answer.status_code == 302 and iam.calls == 1
        query = verify_v4(answer.headers["Location"], key.public_key())
        assert query["X-Goog-Credential"].startswith(f"{SIGNER}/")
        with urllib.request.urlopen(answer.headers["Location"], timeout=10) as got:
            assert got.read() == data

        iam.email = "someone-else@test-project.iam.gserviceaccount.com"  # no signBlob here
        error = error_of(a.call("GET", f"/files/{file_id}/content"), 503)
        assert "iam.serviceAccounts.signBlob" in error["message"]
    finally:
        metadata.close()


def test_a_batch_is_created_only_from_an_input_the_gateway_may_read_whole(api) -> None:
    # The create reads its input into the gateway's memory. A batch input submitted with
    # yoyoctl batch submit may be up to batch.max_file_bytes (200 MiB by default), and a
    # batch's output is any size: either named as input_file_id was read whole by an
    # instance sized for uploads of gateway.max_file_bytes.
    a = api()  # gateway.max_file_bytes: 20,000
    big = jsonl(*(line(f"c{i}-" + "x" * 200) for i in range(100)))
    assert len(big) > 20_000
    direct = a.batch_api.batches.submit(big, None)
    before = len(a.store.list_batches())
    error = error_of(
        a.create(input_file_id=f"file-{direct.id}-input", endpoint="/v1/chat/completions"), 400
    )
    assert error["param"] == "input_file_id" and error["code"] == "file_too_large"
    assert "yoyoctl batch submit" in error["message"]

    upload = a.upload(jsonl(line("a"))).get_json()
    batch = a.create(input_file_id=upload["id"], endpoint="/v1/chat/completions").get_json()
    a.clock.advance(10)
    done = a.cancel(batch["id"])
    for file_id in (done["output_file_id"], done["error_file_id"]):
        error = error_of(a.create(input_file_id=file_id, endpoint="/v1/chat/completions"), 400)
        assert error["param"] == "input_file_id" and "batch_output" in error["message"]
    assert len(a.store.list_batches()) == before + 1  # only the upload's batch was made


def test_a_batch_from_an_upload_reads_the_upload_it_is_stored_once(api) -> None:
    """Issue 23: the upload was stored, read back and stored again as the batch's input."""
    a = api()
    file_id = a.upload(jsonl(line("a"), line("b"))).get_json()["id"]
    batch = a.create(input_file_id=file_id, endpoint="/v1/chat/completions").get_json()
    record = a.batch_api.batches.store.get_batch(batch["id"])
    assert record.input_key == f"files/{file_id}/content.jsonl"
    assert a.storage.list(f"batches/{batch['id']}/") == []  # no second copy
