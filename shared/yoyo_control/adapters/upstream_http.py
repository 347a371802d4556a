"""The gateway's async HTTP client to the VMs' inference servers (httpcore's pool).

Invariants:
- Every request carries the inference servers' API key (vLLM ``--api-key``).
- Connections are kept alive and reused (httpcore's pool: at most ``max_idle`` idle ones,
  each dropped after ``keepalive_s`` idle, below vLLM's 5 s; one the server closed while
  idle is seen before reuse); no cap on open ones (the gateway's own limits bound them).
- A request goes out in one send, headers and body together (httpcore writes them
  apart: the VM's server would wake twice for one request).
- Bodies are read as they arrive: each piece the socket delivers is yielded at once (a
  stream event by event), never accumulated.
- A failure raises ``UpstreamLost`` with its kind, which says whose failure it is:
  ``connect`` (refused, unreachable, no connection within ``connect_timeout_s``: the VM's
  or the network's, not this request's), ``timeout`` (``read_timeout_s`` of silence after
  the request was sent) or ``dropped`` (the server took the request and closed without a
  whole answer: this request's, perhaps).
- Cancelling a call (the client went away) closes its connection: the server sees the
  request end (vLLM aborts a request whose connection closes).
- The pool belongs to the event loop that made it; another loop gets its own.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore2 as httpcore

from ..ports import UpstreamLost

READ_SIZE = 64 * 1024


def _lost(address: str, exc: Exception) -> UpstreamLost:
    if isinstance(exc, (httpcore.ConnectError, httpcore.ConnectTimeout, httpcore.PoolTimeout)):
        kind = "connect"
    elif isinstance(exc, httpcore.TimeoutException):
        kind = "timeout"
    else:
        kind = "dropped"
    return UpstreamLost(f"{address}: {type(exc).__name__}: {exc}", kind)


_FAILED = (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError, OSError)


class _OneSend(httpcore.AsyncNetworkStream):
    """A connection whose writes go out together, at the first read after them."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner, self._pending = inner, bytearray()
        self._timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._pending += buffer
        self._timeout = timeout

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            await self._inner.write(data, self._timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _OneSendBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _OneSend(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _OneSend(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Response:
    def __init__(self, address: str, raw: httpcore.Response) -> None:
        self._address, self._raw = address, raw
        self.status = raw.status
        headers = {k.decode("latin-1").lower(): v for k, v in raw.headers}
        ctype = headers.get("content-type")
        self.content_type = ctype.decode("latin-1") if ctype else "application/json"

    async def chunks(self) -> AsyncIterator[bytes]:
        stream: Any = self._raw.stream
        try:
            async for data in stream:
                if data:
                    yield data
        except _FAILED as exc:
            raise _lost(self._address, exc) from exc

    async def close(self) -> None:
        await self._raw.aclose()


class HttpUpstream:
    def __init__(
        self,
        api_key: str,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 600.0,
        max_idle: int = 64,
        keepalive_s: float = 4.0,
    ) -> None:
        self._headers = {"Content-Type": "application/json"}
        api_key = api_key.strip()  # as the VM reads it (vm/startup.sh strips the secret)
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.max_idle, self.keepalive_s = max_idle, keepalive_s
        self._timeouts = {
            "connect": connect_timeout_s,
            "read": read_timeout_s,
            "write": read_timeout_s,
            "pool": None,
        }
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _connections(self) -> httpcore.AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool = httpcore.AsyncConnectionPool(
                max_connections=None,
                max_keepalive_connections=self.max_idle,
                keepalive_expiry=self.keepalive_s,
                network_backend=_OneSendBackend(),
            )
            self._loop = loop
        return self._pool

    async def post(self, address: str, path: str, body: bytes) -> _Response:
        headers = {**self._headers, "Host": address, "Content-Length": str(len(body))}
        request = httpcore.Request(
            "POST",
            f"http://{address}{path}",
            headers=list(headers.items()),
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            raw = await self._connections().handle_async_request(request)
        except _FAILED as exc:
            raise _lost(address, exc) from exc
        return _Response(address, raw)

    async def close(self) -> None:
        """Close every kept connection."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
