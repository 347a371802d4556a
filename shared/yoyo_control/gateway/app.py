"""The gateway's HTTP shell, async (ASGI, on functions-framework's Starlette + uvicorn).

Invariants:
- No anonymous access, and nothing read before the key: every route needs
  ``Authorization: Bearer <key>`` (auth.KeyRing), checked before any body byte is read;
  a body is then read in bounded chunks up to its route's limit (body.read_body: a
  declared size over it is refused unread, 413 OpenAI-format).
- A request whose client goes away is dropped at once: its hold or its upstream call is
  cancelled (the slot freed, the VM's connection closed), never forwarded after.
- What to do with a request is hold.decide (pure); holding, waking and forwarding are
  forward.Forwarder; the store is read through view.View (the kill switch within 1 s,
  a pool at most once per document per second under steady traffic).
- ``/v1/files`` and ``/v1/batches`` go to batches.BatchApi (where batch inference is
  configured), after the same key check, in a worker thread (bridge.call).
- Every response carries ``x-request-id`` (the openai SDK's ``request_id``); a 405
  carries ``Allow``; every error body is OpenAI-format:
  ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import logs
from ..config import Config
from ..domain.facts import Fact
from ..ports import Clock, Event, Store, Upstream
from . import bridge
from .auth import KeyRing
from .body import read_body
from .forward import NETWORK_WARMUP_S, Forwarder
from .reply import Reply, parse_json
from .routing import route
from .view import View

if TYPE_CHECKING:
    from .batches import BatchApi

FORWARDED = ("/chat/completions", "/completions", "/embeddings")
T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        config: Config,
        store: Store,
        handle: Callable[[Fact], Any],
        upstream: Upstream,
        keys: KeyRing,
        clock: Clock,
        record: Callable[[Event], Any],
        batch_api: BatchApi | None = None,
        view: View | None = None,
        network_warmup_s: float = NETWORK_WARMUP_S,
    ) -> None:
        self.config, self.settings, self.keys = config, config.gateway, keys
        self.clock, self.batch_api = clock, batch_api
        self.models = config.model_pools()
        self.view = view or View(store, clock, config.gateway.poll_s)
        self.forwarder = Forwarder(
            config, self.view, handle, record, upstream, clock, network_warmup_s
        )

    async def __call__(self, request: Request) -> Response:
        request_id = f"req_{uuid.uuid4().hex}"
        try:
            response = await self._dispatch(request)
        except Reply as reply:
            response = _error(reply)
        except Exception as exc:  # the store or the service failed: say so, OpenAI-format
            logs.error(f"gateway: {type(exc).__name__}: {exc}", path=request.url.path)
            response = _error(_failed(exc))
        response.headers["x-request-id"] = request_id
        return response

    async def _dispatch(self, request: Request) -> Response:
        path = _route_path(request.url.path)
        if not self.keys.allows(request.headers.get("authorization")):
            raise Reply(
                401,
                "a valid API key is required: send 'Authorization: Bearer <key>' "
                "(locally: yoyoctl gateway key)",
                "invalid_request_error",
                "invalid_api_key",
            )
        if path == "/models" or path.startswith("/models/"):
            _allow(request, "GET")
            return await self._models(path.removeprefix("/models").removeprefix("/") or None)
        if path.split("/")[1] in ("files", "batches"):
            if self.batch_api is None:
                raise Reply(
                    404,
                    "batch inference is not configured here (batch.bucket)",
                    "invalid_request_error",
                    "unknown_url",
                )
            return await bridge.call(self.batch_api, request, path, self.settings)
        if path not in FORWARDED:
            raise Reply(
                404,
                f"no route {request.url.path}; served: GET /v1/models, POST /v1"
                + ", /v1".join(FORWARDED)
                + ", /v1/files, /v1/batches",
                "invalid_request_error",
                "unknown_url",
            )
        _allow(request, "POST")
        body = await read_body(request, self.settings.max_body_bytes)
        doc = parse_json(body)
        model = doc.get("model")
        if not isinstance(model, str):
            raise Reply(
                400, "'model' is required (a string)", "invalid_request_error", "missing_model"
            )
        pool = self.models.get(model)
        if pool is None:
            raise _unknown_model(model, self.models)
        stream = doc.get("stream") is True
        answer = await until_disconnected(request, self.forwarder.serve(pool, path, body, stream))
        if stream:
            return StreamingResponse(
                answer.body, answer.status, answer.headers, media_type=answer.content_type
            )
        data = b"".join([chunk async for chunk in answer.body])
        return Response(data, answer.status, answer.headers, media_type=answer.content_type)

    async def _models(self, one: str | None) -> Response:
        """Every pool's model (``GET /v1/models``), or one (``GET /v1/models/<id>``)."""
        if one is not None and one not in self.models:
            raise _unknown_model(one, self.models)
        now = self.clock.now()
        data = []
        for model, pool in sorted(self.models.items()):
            if one is not None and model != one:
                continue
            view = await self.view.read(pool)
            warm = route(view.state, self.config.policy(pool), now) is not None
            entry = {"id": model, "object": "model", "created": 0, "owned_by": "yoyo"}
            data.append({**entry, "pool": pool, "warm": warm})
        doc = data[0] if one is not None else {"object": "list", "data": data}
        return Response(json.dumps(doc), 200, media_type="application/json")


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, or — the client went away first — ``work`` cancelled (its slot
    freed, its upstream call closed) and the request abandoned (nobody reads an answer)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():  # nobody will read this answer
        raise Reply(499, "the client closed the request", "invalid_request_error", "gone")
    return task.result()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _allow(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise Reply(
            405,
            f"use {' or '.join(methods)} {request.url.path}",
            "invalid_request_error",
            "method_not_allowed",
            {"Allow": ", ".join(methods)},
        )


def _failed(exc: Exception) -> Reply:
    """The 503 of a failure: retry later, unless the store refused a write for good
    (Firestore's PERMISSION_DENIED: the gateway's account may only read the store
    unless ``gateway_store_writes``; only the batch API writes from the gateway)."""
    if any(cls.__name__ == "PermissionDenied" for cls in type(exc).__mro__):
        return Reply(
            503,
            "this gateway may not write the control plane's store (Terraform "
            "gateway_store_writes is off): create and cancel batches with yoyoctl batch, "
            "or see docs/deploy.md, 'What the gateway writes'",
            "service_unavailable",
            "store_write_denied",
            {"x-should-retry": "false"},
        )
    return Reply(
        503,
        f"the gateway could not serve this request ({type(exc).__name__}); retry",
        "service_unavailable",
        "gateway_unavailable",
        {"Retry-After": "5"},
    )


def _error(reply: Reply) -> Response:
    return Response(reply.body(), reply.status, reply.headers, media_type="application/json")


def _route_path(path: str) -> str:
    """The route with the deployment's prefixes removed (/gateway, /v1)."""
    path = "/" + path.strip("/")
    for prefix in ("/gateway", "/v1"):
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) :] or "/"
    return path


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_model(model: object, known: Mapping[str, str]) -> Reply:
    return Reply(
        404,
        f"the model {_show(model)} does not exist; known models: {sorted(known)}",
        "invalid_request_error",
        "model_not_found",
    )
