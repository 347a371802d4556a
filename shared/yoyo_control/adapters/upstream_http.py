"""The gateway's HTTP client to the VMs' inference servers (urllib3, pooled connections).

Invariants: every request carries the inference servers' API key (vLLM ``--api-key``);
a connection failure, a timeout or a body cut short raises ``UpstreamLost``; response
bodies are read as they arrive (a chunked stream yields each chunk as soon as it comes).
"""

from __future__ import annotations

from collections.abc import Iterator

import urllib3

from ..ports import UpstreamLost


class _Response:
    def __init__(self, raw: urllib3.BaseHTTPResponse) -> None:
        self._raw = raw
        self.status = raw.status
        self.content_type = raw.headers.get("Content-Type", "application/json")

    def chunks(self) -> Iterator[bytes]:
        try:
            if self._raw.chunked:
                yield from self._raw.read_chunked(decode_content=True)
            else:
                yield from self._raw.stream(64 * 1024, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamLost(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._raw.release_conn()


class HttpUpstream:
    def __init__(
        self, api_key: str, connect_timeout_s: float = 5.0, read_timeout_s: float = 600.0
    ) -> None:
        self._headers = {"Content-Type": "application/json"}
        api_key = api_key.strip()  # as the VM reads it (vm/startup.sh strips the secret)
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._pool = urllib3.PoolManager(
            num_pools=32,
            maxsize=64,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        )

    def post(self, address: str, path: str, body: bytes) -> _Response:
        try:
            raw = self._pool.request(
                "POST",
                f"http://{address}{path}",
                body=body,
                headers=self._headers,
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamLost(f"{address}: {type(exc).__name__}: {exc}") from exc
        return _Response(raw)
