"""The local stack's HTTP server keeps connections alive, frames every response, and
closes a connection whenever it cannot tell where the next request begins."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from yoyo_control.local.wsgi import make_server


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/ignore-body":  # answers without reading the body (a refusal does that)
        start_response("401 Unauthorized", [("Content-Length", "2")])
        return [b"no"]
    if path == "/stream":  # no length: chunked, each piece as it is yielded
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return iter([b"data: 1\n\n", b"data: 2\n\n"])
    if path == "/boom":
        raise RuntimeError("boom")
    start_response("204 No Content", [])
    return []


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    srv = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield "127.0.0.1", srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def peer(conn: http.client.HTTPConnection) -> tuple[str, int]:
    assert conn.sock is not None
    return conn.sock.getsockname()  # type: ignore[no-any-return]


def test_requests_reuse_one_connection(server: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*server, timeout=5)
    seen = set()
    for i in range(3):
        conn.request("POST", "/echo", f"body {i}".encode())
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, f"body {i}".encode())
        assert response.getheader("Connection") is None
        seen.add(peer(conn))
    assert len(seen) == 1  # werkzeug's own server closes after every response


def test_an_unread_body_is_drained_and_the_next_request_is_read_right(
    server: tuple[str, int],
) -> None:
    conn = http.client.HTTPConnection(*server, timeout=5)
    conn.request("POST", "/ignore-body", b"x" * 50_000)
    first = conn.getresponse()
    assert (first.status, first.read()) == (401, b"no")
    before = peer(conn)
    conn.request("POST", "/echo", b"next")
    second = conn.getresponse()
    assert (second.status, second.read()) == (200, b"next")
    assert peer(conn) == before


def test_a_response_without_length_is_chunked_and_the_connection_kept(
    server: tuple[str, int],
) -> None:
    conn = http.client.HTTPConnection(*server, timeout=5)
    conn.request("GET", "/stream")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b"data: 1\n\ndata: 2\n\n"
    before = peer(conn)
    conn.request("GET", "/nothing")
    empty = conn.getresponse()
    assert (empty.status, empty.read()) == (204, b"")
    assert peer(conn) == before


def test_http_1_0_and_connection_close_are_honoured(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the server closes: the end of the body
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"chunked" not in data
    assert data.endswith(b"\r\n\r\ndata: 1\n\ndata: 2\n\n")
    conn = http.client.HTTPConnection(*server, timeout=5)
    conn.request("POST", "/echo", b"a", {"Connection": "close"})
    response = conn.getresponse()
    assert response.read() == b"a" and response.getheader("Connection") == "close"


def test_an_application_error_is_a_500_and_closes_the_connection(
    server: tuple[str, int],
) -> None:
    conn = http.client.HTTPConnection(*server, timeout=5)
    conn.request("GET", "/boom")
    response = conn.getresponse()
    assert response.status == 500
    response.read()
    assert response.getheader("Connection") == "close"
