"""``/v1/files`` and ``/v1/batches`` from the async shell: batches.BatchApi (a synchronous
handler of a werkzeug request) run in a worker thread.

Invariants: the body is read by body.read_body first, bounded by its route's limit
(``POST /v1/files``: ``gateway.max_file_bytes``; any other: ``gateway.max_body_bytes``),
so the handler never reads past it; the handler's answer is relayed as it comes (a file's
content chunk by chunk, each read in a worker thread); a Reply it raises is an
OpenAI-format error, as everywhere.
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any

import flask
from starlette.concurrency import iterate_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..config import GatewaySettings
from .body import read_body
from .reply import Reply

if TYPE_CHECKING:
    from .batches import BatchApi


async def call(api: BatchApi, request: Request, path: str, settings: GatewaySettings) -> Response:
    if request.method == "POST" and path.strip("/") == "files":
        body = await read_body(request, settings.max_file_bytes, "gateway.max_file_bytes")
    else:
        body = await read_body(request, settings.max_body_bytes)
    wsgi_request = flask.Request(_environ(request, body))

    def run() -> flask.Response:
        try:
            return api(wsgi_request, path)
        except Reply as reply:
            return reply.response()

    answer = await asyncio.to_thread(run)
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    if answer.is_streamed:
        return StreamingResponse(
            iterate_in_threadpool(_bytes(answer.response)), answer.status_code, headers
        )
    return Response(answer.get_data(), answer.status_code, headers)


def _bytes(body: Any) -> Any:
    for chunk in body:
        yield chunk if isinstance(chunk, bytes) else str(chunk).encode()


def _environ(request: Request, body: bytes) -> dict[str, Any]:
    server = request.scope.get("server") or ("127.0.0.1", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.url.path,
        "QUERY_STRING": request.url.query,
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.url.scheme or "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key != "CONTENT_LENGTH":
            environ[f"HTTP_{key}"] = value
    return environ
