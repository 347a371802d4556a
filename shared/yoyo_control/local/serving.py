"""The local stack's HTTP front: uvicorn, as Cloud Run serves the functions.

``/v1/...`` is the gateway's own ASGI app (``functions_framework.create_app`` of the
async ``gateway`` function: Starlette, as functions-framework serves it in the cloud), so
what the tests drive is what runs; every other path is the stack's WSGI app (entry
points, bus, status page, /healthz) in a thread pool (a2wsgi).

Invariants: the gateway's paths pass the same Host and Origin checks as the rest
(guard.Guard.refusal; they take the gateway's bearer key, not the stack secret); stopping
waits at most ``GRACE_S`` for open requests (a held request may wait minutes) and leaves
no thread behind.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn
from a2wsgi import WSGIMiddleware

from .guard import Guard

GRACE_S = 2.0
WSGI_THREADS = 128  # long polls of the bus and the local VMs' workers each hold one


def front(stack: Guard, gateway: Any, prefix: str = "/v1") -> Any:
    """One ASGI app: ``prefix`` → ``gateway`` (ASGI), the rest → ``stack`` (WSGI)."""
    wsgi: Any = WSGIMiddleware(stack, workers=WSGI_THREADS)  # type: ignore[arg-type]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await wsgi(scope, receive, send)  # type: ignore[no-any-return]
        path = scope.get("path", "")
        if path != prefix and not path.startswith(prefix + "/"):
            return await wsgi(scope, receive, send)  # type: ignore[no-any-return]
        why = stack.refusal(_environ(scope))
        if why is None:
            return await gateway(scope, receive, send)  # type: ignore[no-any-return]
        body = (why + "\n").encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _environ(scope: dict[str, Any]) -> dict[str, Any]:
    """What guard.Guard.refusal reads, from an ASGI scope."""
    environ = {"PATH_INFO": scope.get("path", ""), "REQUEST_METHOD": scope.get("method", "GET")}
    for name, value in scope.get("headers", []):
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        environ[key] = value.decode("latin-1")
    return environ


class Server:
    """uvicorn on ``host:port`` in a thread of its own; ``shutdown`` stops it."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(GRACE_S),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stack's HTTP server did not start (port in use?)")
            time.sleep(0.01)

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join(GRACE_S + 5)
