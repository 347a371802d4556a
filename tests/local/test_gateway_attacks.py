"""The gateway on the open internet (issue 24), attacked on the local stack over raw HTTP.

One stack for the module; its pool is cold at the start and boots slowly (6 s), so
requests are held. Each test is an attack that the gateway served by functions-framework's
Flask stack failed:
- a 128 MiB anonymous body was read whole before the 401 (the stack's RSS +260 MiB);
- a chunked upload over ``gateway.max_file_bytes`` was a plain-text 500;
- held requests of clients that hung up kept their slot (a live client got 429) and were
  still forwarded to the VM once it was ready;
- ``1e400`` was accepted as infinity, crashed the model server's handler, and was re-sent
  until ``hold_s`` (a request the model server drops: tests/gateway/test_app.py).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.conftest import Stack, start_stack

MODEL = "tiny-llm"
MAX_HELD = 10
MAX_FILE_BYTES = 100_000


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str]]:
    tmp = tmp_path_factory.mktemp("attacks")

    def configure(config: dict[str, Any]) -> None:
        config["pools"]["default"].update(model=MODEL, boot_grace_s=30)
        config["local"]["boot_delay_s"] = 6.0
        config["gateway"] = {
            "poll_s": 0.2,
            "hold_s": 60,
            "max_held": MAX_HELD,
            "max_file_bytes": MAX_FILE_BYTES,
        }

    s = start_stack(tmp, configure)
    try:
        key = s.yoyoctl("gateway", "key")
        yield s, key["base_url"], key["key"]
    finally:
        s.kill_everything()


def address(base_url: str) -> tuple[str, int]:
    match = re.match(r"http://([^:/]+):(\d+)", base_url)
    assert match
    return match.group(1), int(match.group(2))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def chat(base_url: str, key: str, body: Any, timeout: float) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    host, port = address(base_url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request("POST", "/v1/chat/completions", data, headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def served_by_vms(s: Stack) -> int:
    """Requests the local VM answered (vllm:request_success_total, summed)."""
    [port_file] = (s.state_dir / "vms").glob("*/port")
    url = f"http://127.0.0.1:{port_file.read_text().strip()}/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("vllm:request_success_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_1_held_requests_of_clients_that_hung_up_free_their_slot_and_are_never_sent(gw) -> None:
    s, base_url, key = gw
    assert s.status()["lease"] is None  # cold: every request is held

    def impatient() -> None:
        with contextlib.suppress(TimeoutError):  # it gives up and closes its connection
            chat(base_url, key, HELLO, timeout=1.0)

    clients = [threading.Thread(target=impatient) for _ in range(MAX_HELD)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(10)
    time.sleep(1.0)
    status, _, body = chat(base_url, key, HELLO, timeout=60)  # a live client: held, answered
    assert status == 200, body
    time.sleep(1.0)  # (the departed requests would have been forwarded by now)
    served = served_by_vms(s)
    assert served == 1, f"the VM answered {served} requests; only 1 client was still there"


def test_2_an_anonymous_128_mib_body_is_refused_before_it_is_read(gw) -> None:
    s, base_url, _ = gw
    pid = int(json.loads((s.state_dir / "local-up.json").read_text())["pid"])
    before = rss_kib(pid)
    size = 128 << 20
    host, port = address(base_url)
    sock = socket.create_connection((host, port), timeout=30)
    answer = b""
    try:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (host.encode(), port, size)
        )
        chunk, sent, peak = b"x" * (1 << 20), 0, before
        deadline = time.monotonic() + 60
        while sent < size and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            peak = max(peak, rss_kib(pid))
            if readable:
                break  # answered before the body was sent
            if writable:
                try:
                    sent += sock.send(chunk)
                except OSError:
                    break  # the server closed: it will not read the rest
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
        peak = max(peak, rss_kib(pid))
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert (peak - before) < 8 * 1024, f"RSS grew {(peak - before) / 1024:.1f} MiB"


def test_3_an_over_size_chunked_upload_is_a_413_in_openai_format(gw) -> None:
    _, base_url, key = gw
    boundary = "yoyo-boundary"
    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"})
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    lines = (line + "\n").encode() * (2 * MAX_FILE_BYTES // len(line))
    parts = [head] + [lines[i : i + 8192] for i in range(0, len(lines), 8192)]
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    host, port = address(base_url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/files",
            iter(parts),
            {
                "Authorization": f"Bearer {key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            encode_chunked=True,
        )
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 413, body[:300]
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_4_numbers_that_are_not_finite_are_a_400_at_the_gateway(gw) -> None:
    _, base_url, key = gw
    for number in (b"1e400", b"-1e400", b"NaN", b"Infinity"):
        raw = b'{"model": "%s", "messages": [], "max_tokens": %s}' % (MODEL.encode(), number)
        status, _, body = chat(base_url, key, raw, timeout=20)
        assert status == 400, (number, body[:300])
        assert json.loads(body)["error"]["code"] == "invalid_number"
