"""The gateway's HTTP client to the VMs' inference servers: kept-alive connections per VM.

Invariants:
- Every request carries the inference servers' API key (vLLM ``--api-key``).
- Connections are kept alive and reused, one request at a time each, most recently used
  first; at most ``max_idle`` idle ones are kept per VM address (more are closed).
- A kept connection the server closed while idle (vLLM's server closes after 5 s) is
  not an error: it is seen before use (readable at rest means closed), and a reused
  connection that fails before any byte of the answer is replaced by a fresh one, once
  (so a server that read a request and then closed without a word gets it twice).
- A connection failure, a timeout (``connect_timeout_s`` to connect, ``read_timeout_s``
  of silence afterwards) or a body cut short raises ``UpstreamLost``.
- Bodies are read as they arrive: each piece the socket delivers is yielded at once (a
  chunked stream event by event), never accumulated.
- A connection goes back to the pool only when its answer was read to the end and the
  server did not ask to close; anything else closes it.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ..ports import UpstreamLost

READ_SIZE = 64 * 1024
_FAILED = (http.client.HTTPException, OSError)


class _Connection(http.client.HTTPConnection):
    """An HTTP/1.1 connection with TCP_NODELAY and a read timeout after the connect."""

    def __init__(self, host: str, port: int | None, connect_s: float, read_s: float) -> None:
        super().__init__(host, port, timeout=connect_s)
        self.read_s = read_s

    def connect(self) -> None:
        super().connect()
        assert self.sock is not None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.read_s)

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        """Headers and a bytes body in one send (http.client sends them apart: the VM
        would wake twice for one request)."""
        lines: list[bytes] = self._buffer  # type: ignore[attr-defined]
        if isinstance(message_body, bytes) and not encode_chunked:
            head = b"\r\n".join([*lines, b"", b""])
            del lines[:]
            self.send(head + message_body)
            return
        super()._send_output(message_body, encode_chunked)  # type: ignore[misc]

    def closed_at_rest(self) -> bool:
        """True when the server closed it (or sent something unasked) while idle."""
        if self.sock is None:
            return True
        poller = select.poll()  # not select.select: that fails for descriptors >= 1024
        poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True


class _Response:
    def __init__(
        self, upstream: HttpUpstream, address: str, conn: _Connection, raw: http.client.HTTPResponse
    ) -> None:
        self._upstream, self._address, self._conn, self._raw = upstream, address, conn, raw
        self.status = raw.status
        self.content_type = raw.getheader("Content-Type") or "application/json"
        self._done = False

    def chunks(self) -> Iterator[bytes]:
        try:
            while True:
                data = self._raw.read1(READ_SIZE)
                if not data:
                    if self._raw.length:  # the server closed before its Content-Length
                        raise UpstreamLost(
                            f"{self._address}: answer cut short, {self._raw.length} bytes missing"
                        )
                    self._done = True
                    return
                yield data
        except _FAILED as exc:
            raise UpstreamLost(f"{self._address}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._done and not self._raw.will_close:
            self._raw.close()
            self._upstream._release(self._address, conn)
        else:
            conn.close()


class HttpUpstream:
    def __init__(
        self,
        api_key: str,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 600.0,
        max_idle: int = 64,
    ) -> None:
        self._headers = {"Content-Type": "application/json"}
        api_key = api_key.strip()  # as the VM reads it (vm/startup.sh strips the secret)
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.max_idle = max_idle
        self._idle: dict[str, list[_Connection]] = {}
        self._lock = threading.Lock()

    def post(self, address: str, path: str, body: bytes) -> _Response:
        conn, reused = self._acquire(address)
        while True:
            try:
                conn.request("POST", path, body, self._headers)
                raw = conn.getresponse()
            except _FAILED as exc:
                conn.close()
                if reused and _before_answer(exc):
                    # a kept connection gone stale: once more, on a fresh one
                    conn, reused = self._connect(address), False
                    continue
                raise UpstreamLost(f"{address}: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            return _Response(self, address, conn, raw)

    def _acquire(self, address: str) -> tuple[_Connection, bool]:
        """A kept connection to ``address`` (reused=True), else a new one."""
        while True:
            with self._lock:
                idle = self._idle.get(address)
                conn = idle.pop() if idle else None
            if conn is None:
                return self._connect(address), False
            if conn.closed_at_rest():
                conn.close()
                continue
            return conn, True

    def _connect(self, address: str) -> _Connection:
        host, _, port = address.rpartition(":")
        if not host:
            host, port = address, ""
        return _Connection(
            host, int(port) if port else None, self.connect_timeout_s, self.read_timeout_s
        )

    def _release(self, address: str, conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _before_answer(exc: BaseException) -> bool:
    """The failure of a kept connection that the server had closed: nothing was answered."""
    return isinstance(
        exc,
        (
            http.client.RemoteDisconnected,
            http.client.BadStatusLine,
            BrokenPipeError,
            ConnectionResetError,
            ConnectionAbortedError,
        ),
    )
