"""Serve an async gateway on 127.0.0.1 as production does (uvicorn, Starlette routes as
functions-framework's ``aio`` builds them), and a test client with Flask's names.

``Client.post(...)``/``get(...)`` answer a ``Reply`` with ``status_code``, ``headers``,
``get_json()``, ``data``/``get_data()``, ``mimetype``, and — with ``buffered=False`` —
``response``, an iterator over the body as it arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx2 as httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]


def asgi_app(handler: Callable[[Request], Awaitable[Response]]) -> Starlette:
    """The routes functions-framework's aio gives an HTTP function."""

    async def endpoint(request: Request) -> Response:
        return await handler(request)

    return Starlette(
        routes=[
            Route("/", endpoint=endpoint, methods=METHODS),
            Route("/{path:path}", endpoint=endpoint, methods=METHODS),
        ]
    )


class Server:
    """uvicorn in a thread of its own (its own event loop); ``stop`` ends it."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Reply:
    def __init__(self, response: httpx.Response, chunks: Iterator[bytes] | None = None) -> None:
        self._r = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.response = chunks
        ctype = response.headers.get("content-type", "")
        self.mimetype = ctype.split(";")[0].strip()

    @property
    def data(self) -> bytes:
        return self.get_data()

    def get_data(self) -> bytes:
        if self.response is not None:
            return b"".join(self.response)
        return self._r.content

    def get_json(self) -> Any:
        return self._r.json()


class Client:
    def __init__(self, url: str, timeout: float = 60) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout, trust_env=False)

    def request(self, method: str, path: str, buffered: bool = True, **kw: Any) -> Reply:
        if "data" in kw:
            kw["content"] = kw.pop("data")
        if buffered:
            return Reply(self.http.request(method, path, **kw))
        request = self.http.build_request(method, path, **kw)
        response = self.http.send(request, stream=True)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_raw()
            finally:
                response.close()

        return Reply(response, chunks())

    def open(self, path: str, method: str = "GET", headers: Any = None, **kw: Any) -> Reply:
        """Flask's test-client call: ``data`` (bytes, or a form with files), ``json``,
        ``content_type``, encoded by werkzeug as its test client does, sent over HTTP."""
        from werkzeug.test import EnvironBuilder

        built = EnvironBuilder(path=path, method=method, headers=headers, **kw)
        try:
            environ = built.get_environ()
            body = environ["wsgi.input"].read()
        finally:
            built.close()
        sent = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        sent.pop("HOST", None)
        if environ.get("CONTENT_TYPE"):
            sent["Content-Type"] = environ["CONTENT_TYPE"]
        if environ.get("QUERY_STRING"):
            path = f"{environ['PATH_INFO']}?{environ['QUERY_STRING']}"
        return self.request(method, path, content=body, headers=sent)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def close(self) -> None:
        self.http.close()
