"""The local stack's HTTP server: werkzeug's threaded server, with HTTP/1.1 keep-alive.

Werkzeug's development server answers every request with ``Connection: close``, so each
request pays a new TCP connection and a new thread, and it sends headers and body in
separate packets with Nagle's algorithm on. Production serves the functions with
gunicorn (functions-framework's gthread workers), which keeps connections alive; this
handler does the same locally, so a client's second request reuses its connection.

Invariants:
- One thread per connection (as werkzeug's threaded server): a request held for
  minutes (the gateway's hold) never blocks another connection.
- A connection is kept only when the request body was read to its end (the unread
  rest of a ``Content-Length`` body is drained, up to ``DRAIN_LIMIT`` bytes), the
  response's length is framed (``Content-Length`` or chunked) and neither side asked to
  close; anything else (HTTP/1.0 without keep-alive, an unread chunked body, an error
  after the headers went out) closes it after the response.
- A streamed response (no ``Content-Length``) goes out chunk by chunk as the
  application yields, each chunk written at once (TCP_NODELAY, no buffering).
- A connection idle for ``IDLE_TIMEOUT_S`` between requests is closed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.debug.tbtools import DebugTraceback
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

DRAIN_LIMIT = 1 << 20  # unread request body drained to keep the connection, at most
IDLE_TIMEOUT_S = 120.0  # longer than clients keep idle connections (httpx 5 s, urllib3 ∞)
_NO_BODY = frozenset({204, 304})
_LOG = logging.getLogger("werkzeug")


class _Body(io.RawIOBase):
    """The request body: at most ``length`` bytes of ``stream``, then end of file."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream, self.left = stream, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: self.left]
        data = self._stream.read(len(view))
        if not data:  # the client went away mid-body
            raise ConnectionResetError("the request body ended early")
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def drain(self, limit: int) -> bool:
        """Read the rest (at most ``limit`` bytes); True when nothing is left."""
        while 0 < self.left <= limit:
            limit -= len(self.read(min(self.left, 64 * 1024)))
        return self.left == 0


class KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if _LOG.isEnabledFor(logging.INFO):  # formatting the line costs more than the check
            super().log_request(code, size)

    def log_error(self, format: str, *args: Any) -> None:
        if "timed out" not in format:  # an idle keep-alive connection closing is normal
            super().log_error(format, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body: _Body | None = None
        if not environ.get("wsgi.input_terminated"):  # chunked input is werkzeug's
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length, self.close_connection = 0, True
            body = _Body(self.rfile, length)
            environ["wsgi.input"] = io.BufferedReader(body)
            environ["wsgi.input_terminated"] = True
        reply = _Reply(self)
        try:
            self._execute(environ, reply)
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
            return
        except Exception as exc:  # as werkzeug: a 500 if nothing was sent yet, and a log
            self.close_connection = True
            if not reply.sent:
                self._execute(environ, _Reply(self), InternalServerError())
            trace = DebugTraceback(exc).render_traceback_text()
            self.server.log("error", f"Error on request:\n{trace}")
            return
        if body is not None and not body.drain(DRAIN_LIMIT):
            self.close_connection = True
        elif body is None:  # chunked input: keep the connection only if read to its end
            stream = environ["wsgi.input"]
            self.close_connection = self.close_connection or not getattr(stream, "_done", False)

    def _execute(self, environ: dict[str, Any], reply: _Reply, app: Any = None) -> None:
        result: Iterable[bytes] = (app or self.server.app)(environ, reply.start_response)
        try:
            for data in result:
                reply.write(data)
            reply.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


class _Reply:
    """One response: status and headers with the first bytes, then the body, framed."""

    def __init__(self, handler: KeepAliveHandler) -> None:
        self.h = handler
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.chunked = False
        self.bodyless = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("Headers already set")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        assert self.status is not None, "write() before start_response"
        assert isinstance(data, bytes), "applications must write bytes"
        if not self.sent:
            self._send_head(data)
            return
        self._send(data)

    def finish(self) -> None:
        if not self.sent:
            self._send_head(b"")
        if self.chunked:
            self.h.wfile.write(b"0\r\n\r\n")

    def _send(self, data: bytes) -> None:
        if not data or self.bodyless:
            return
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.h.wfile.write(data)

    def _send_head(self, first: bytes) -> None:
        h, status = self.h, self.status or "500 INTERNAL SERVER ERROR"
        code_text, _, message = status.partition(" ")
        code = int(code_text)
        self.sent = True
        h.send_response(code, message)
        keys = set()
        for key, value in self.headers:
            h.send_header(key, value)
            keys.add(key.lower())
        self.bodyless = h.command == "HEAD" or code < 200 or code in _NO_BODY
        if "content-length" not in keys and not self.bodyless:
            if h.request_version >= "HTTP/1.1":
                self.chunked = True
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.close_connection = True  # the end of the body is the end of the stream
        if h.close_connection:
            h.send_header("Connection", "close")
        buffered: list[bytes] = h._headers_buffer
        head = b"".join([*buffered, b"\r\n"])  # end_headers, without flushing yet
        buffered.clear()
        if first and not self.bodyless:
            first = b"%x\r\n%s\r\n" % (len(first), first) if self.chunked else first
            head += first
        h.wfile.write(head)  # status, headers and the first bytes in one send


def make_server(host: str, port: int, app: Any) -> BaseWSGIServer:
    """A threaded server for ``app`` on ``host:port`` that keeps connections alive."""
    return ThreadedWSGIServer(host, port, app, handler=KeepAliveHandler)
