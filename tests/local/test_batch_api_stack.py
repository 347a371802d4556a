"""OpenAI's Files and Batch API on the local stack with the official ``openai`` client.

files.create → batches.create → batches.retrieve until completed → files.content of the
output file holds every custom_id once (the VM's own worker ran the lines); the error
paths over raw HTTP. Waits are bounded liveness timeouts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from local.conftest import Stack, stack_config, start_stack

MODEL = "yoyo-local/simulated"  # the model examples/batch.jsonl names
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch.jsonl"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str]]:
    tmp = tmp_path_factory.mktemp("batch-api")
    pools = stack_config(tmp, 0)["pools"]
    pools["default"]["model"] = MODEL
    s = start_stack(tmp, pools=pools, batch={"shard_lines": 10})
    try:
        key = s.yoyoctl("gateway", "key")
        yield s, key["base_url"], key["key"]
    finally:
        s.kill_everything()


def batch_file(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"q{i}"}]}
            line = {"custom_id": f"c-{i:03d}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": {**body, "max_tokens": 3}}) + "\n")
    return path


def raw(method: str, url: str, key: str | None, body: bytes = b"", ctype: str = "") -> Any:
    """(status, JSON document) of one plain HTTP request."""
    headers = {"Content-Type": ctype} if ctype else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, body or None, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def multipart(data: bytes, purpose: str = "batch") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n",
    ]
    body = "".join(parts).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_files_create_batches_create_and_files_content_with_the_openai_client(gw) -> None:
    s, base_url, key = gw
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    with EXAMPLE.open("rb") as f:  # the README's flow
        uploaded = client.files.create(file=f, purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [x.id for x in client.files.list()]

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "test"},
    )
    assert batch.status == "in_progress" and batch.input_file_id == uploaded.id
    assert batch.request_counts.total == 12 and batch.metadata == {"job": "test"}
    deadline = time.monotonic() + 120
    while batch.status != "completed" and time.monotonic() < deadline:
        assert batch.status in ("in_progress", "finalizing"), batch
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", s.log()
    assert batch.request_counts.completed == 12 and batch.output_file_id

    output = client.files.content(batch.output_file_id).text.splitlines()
    ids = [json.loads(x)["custom_id"] for x in output]
    assert sorted(ids) == [f"explain-{i:02d}" for i in range(1, 13)]  # every custom_id once
    assert all(json.loads(x)["response"]["status_code"] == 200 for x in output)
    assert client.files.content(batch.error_file_id).text == ""
    assert batch.id in [b.id for b in client.batches.list(limit=5)]
    assert s.yoyoctl("batch", "status", batch.id)["id"] == batch.id  # one batch, two doors


def test_cancel_through_the_client_leaves_every_line_accounted_for(gw, tmp_path: Path) -> None:
    _, base_url, key = gw
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    with batch_file(tmp_path / "cancel.jsonl", 20).open("rb") as f:
        file_id = client.files.create(file=f, purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    while cancelled.status != "cancelled":
        time.sleep(0.2)
        cancelled = client.batches.retrieve(batch.id)
    lines = client.files.content(cancelled.output_file_id).text.splitlines()
    lines += client.files.content(cancelled.error_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in lines) == [f"c-{i:03d}" for i in range(20)]


def test_error_paths_over_raw_http(gw) -> None:
    _, base_url, key = gw
    good = {"model": MODEL, "messages": []}
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": good}
    body, ctype = multipart((json.dumps(line) + "\n{broken\n").encode())
    status, doc = raw("POST", f"{base_url}/files", key, body, ctype)
    assert status == 400 and doc["error"]["message"].startswith("line 2: not valid JSON"), doc
    assert doc["error"]["param"] == "file"

    status, doc = raw("POST", f"{base_url}/files", None, body, ctype)
    assert status == 401 and doc["error"]["code"] == "invalid_api_key"

    missing = "file-" + "0" * 32
    status, doc = raw("GET", f"{base_url}/files/{missing}/content", key)
    assert status == 404 and missing in doc["error"]["message"]
    create = json.dumps({"input_file_id": missing, "endpoint": "/v1/chat/completions"}).encode()
    status, doc = raw("POST", f"{base_url}/batches", key, create, "application/json")
    assert status == 404 and doc["error"]["code"] == "not_found"
    status, doc = raw("GET", f"{base_url}/batches", None)
    assert status == 401
