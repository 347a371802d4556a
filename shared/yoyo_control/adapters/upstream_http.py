"""The gateway's async HTTP client to the VMs' inference servers (httpx's AsyncClient).

Invariants:
- Every request carries the inference servers' API key (vLLM ``--api-key``).
- Connections are kept alive and reused (httpx's pool: at most ``max_idle`` idle ones,
  each dropped after ``keepalive_s`` idle, below vLLM's 5 s); no cap on open ones (the
  gateway's own limits bound them).
- Bodies are read as they arrive: each piece the socket delivers is yielded at once (a
  stream event by event), never accumulated.
- A failure raises ``UpstreamLost`` with its kind, which says whose failure it is:
  ``connect`` (refused, unreachable, no connection within ``connect_timeout_s``: the VM's
  or the network's, not this request's), ``timeout`` (``read_timeout_s`` of silence after
  the request was sent) or ``dropped`` (the server took the request and closed without a
  whole answer: this request's, perhaps).
- Cancelling a call (the client went away) closes its connection: the server sees the
  request end (vLLM aborts a request whose connection closes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2 as httpx

from ..ports import UpstreamLost


def _lost(address: str, exc: Exception) -> UpstreamLost:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        kind = "connect"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "dropped"
    return UpstreamLost(f"{address}: {type(exc).__name__}: {exc}", kind)


class _Response:
    def __init__(self, address: str, raw: httpx.Response) -> None:
        self._address, self._raw = address, raw
        self.status = raw.status_code
        self.content_type = raw.headers.get("content-type") or "application/json"

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._raw.aiter_raw():
                if data:
                    yield data
        except httpx.HTTPError as exc:
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
        self._timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None)
        self._limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=max_idle, keepalive_expiry=keepalive_s
        )
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, in the event loop that serves (a client is bound to one loop).
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, limits=self._limits, trust_env=False
            )
        return self._client

    async def post(self, address: str, path: str, body: bytes) -> _Response:
        client = self._http()
        request = client.build_request(
            "POST", f"http://{address}{path}", content=body, headers=self._headers
        )
        try:
            raw = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _lost(address, exc) from exc
        return _Response(address, raw)

    async def close(self) -> None:
        """Close every kept connection."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
