"""The gateway's HTTP handler: auth, refusals, routing, the hold at a cold pool, forwarding.

Invariants:
- No anonymous access: every route needs ``Authorization: Bearer <key>`` (auth.KeyRing).
- Refusals come first and never wake anything: kill switch engaged, spend cap reached, or
  every instance failed permanently under the current lease (quota, missing) → 503 at
  once, naming the reason and who engaged it (``x-should-retry: false``).
- A cold pool gets ONE wake: a RunRequested fact through ``service.handle`` whose message
  id is derived from the pool state (routing.wake_id), so concurrent requests and gateway
  instances record it once; a held request re-wakes only to keep the lease from lapsing.
- Requests read the store through one shared view per pool (pool state + kill switch):
  a warm request is routed from a view at most ``fresh_s`` = min(0.5 s,
  ``gateway.poll_s``) old, so a kill switch (or spend cap) engaged anywhere refuses every
  new request within ``fresh_s`` of its commit (a held request: within its pause, at most
  ``gateway.poll_s``); a view past half that age is read again in the background, so
  steady traffic does not wait for the store (about two reads per ``fresh_s`` per pool).
  Held requests read it once per pause, however many wait; pauses back off from 50 ms to
  ``gateway.poll_s``; a
  request is held at most ``gateway.hold_s`` (then 503 + Retry-After) and at most
  ``gateway.max_held`` are held at once (429 beyond).
- Bodies are forwarded as received; responses are passed through as they arrive (SSE
  chunk by chunk, never buffered). A VM lost before its answer began → the request is
  routed again (another ready VM, or held until that VM is heard from again or restarts)
  within the same hold, and every other request skips that VM too until it is heard
  from again (its pool's view is read afresh); a VM lost mid-stream → the stream ends
  with an OpenAI-format error event. Never a hang: the upstream read timeout bounds a
  silent VM.
- ``/v1/files`` and ``/v1/batches`` go to batches.BatchApi (where batch inference is
  configured), after the same key check.
- Every error body is OpenAI-format: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import flask

from .. import logs
from ..config import Config
from ..domain.facts import Fact, RunRequested
from ..domain.model import Holder, KillSwitch, PoolPolicy, PoolState
from ..ports import Clock, Event, Store, Upstream, UpstreamLost, UpstreamResponse
from .auth import KeyRing
from .reply import Reply, read_json
from .routing import Target, refusal, route, wake_id

if TYPE_CHECKING:
    from .batches import BatchApi

FORWARDED = ("/chat/completions", "/completions", "/embeddings")
FIRST_PAUSE_S = 0.05
RETRY_AFTER_S = 30
LOST_KEPT_S = 3600.0  # a lost VM not heard from again within this is forgotten


@dataclass
class _Held:
    arrived: float
    waited: bool = False  # the request found the pool cold and was held


class _PoolView:
    """Pool state and kill switch, read once per ``max_age`` however many requests ask.

    A request is never served from a view older than the ``max_age`` it asks for; a
    view past half that age is still served while one background read (per pool, on
    one worker thread that ends when idle) replaces it, so steady traffic finds the
    view fresh and does not wait for the store. A view is replaced only by a newer
    read; ``forget`` drops it (the next request reads the store itself).
    """

    IDLE_S = 30.0  # the background reader stops after this long without work

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock
        self._locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, PoolState, KillSwitch]] = {}
        self._guard = threading.Lock()
        self._due: set[str] = set()  # pools the background reader is asked to read
        self._wake = threading.Condition(self._guard)
        self._reader: threading.Thread | None = None

    def read(self, pool: str, max_age: float) -> tuple[PoolState, KillSwitch]:
        cached = self._cache.get(pool)
        if cached is not None:
            age = self._clock.now() - cached[0]
            if age <= max_age:
                if age > max_age / 2:
                    self._read_behind(pool)
                return cached[1], cached[2]
        with self._guard:
            lock = self._locks.setdefault(pool, threading.Lock())
        with lock:  # one read for every request that finds the view stale
            cached = self._cache.get(pool)
            if cached is not None and self._clock.now() - cached[0] <= max_age:
                return cached[1], cached[2]
            return self._load(pool)

    def forget(self, pool: str) -> None:
        with self._guard:
            self._cache.pop(pool, None)

    def _load(self, pool: str) -> tuple[PoolState, KillSwitch]:
        read_at = self._clock.now()
        kill = self._store.get_kill()
        state = self._store.get_pool(pool)
        with self._guard:
            cached = self._cache.get(pool)
            if cached is None or cached[0] < read_at:
                self._cache[pool] = (read_at, state, kill)
        return state, kill

    def _read_behind(self, pool: str) -> None:
        with self._guard:
            if pool in self._due:
                return
            self._due.add(pool)
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_due, name="gateway-view", daemon=True
                )
                self._reader.start()
            else:
                self._wake.notify()

    def _read_due(self) -> None:
        while True:
            with self._guard:
                if not self._due:
                    self._wake.wait(self.IDLE_S)
                if not self._due:
                    self._reader = None
                    return
                pool = next(iter(self._due))
            try:
                self._load(pool)
            except Exception as exc:  # the next request past max_age reads it itself
                logs.warning(f"gateway: background read of pool {pool} failed: {exc}")
            finally:
                with self._guard:
                    self._due.discard(pool)


class Gateway:
    def __init__(
        self,
        config: Config,
        store: Store,
        handle: Callable[[Fact], Any],
        upstream: Upstream,
        keys: KeyRing,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        batch_api: BatchApi | None = None,
    ) -> None:
        self.config, self.settings = config, config.gateway
        self.store, self.handle, self.upstream, self.keys = store, handle, upstream, keys
        self.clock, self.sleep, self.batch_api = clock, sleep, batch_api
        self.models = config.model_pools()
        self._view = _PoolView(store, clock)
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._held = 0
        self._woken: dict[str, str] = {}  # pool → the last wake id this instance recorded
        self._recorded: set[str] = set()  # cold-start events this instance wrote
        # (instance, boot id) → when a request failed to reach it: every request skips
        # that VM until it is heard from again (routing.route), not only the one that failed
        self._unreachable: dict[tuple[str, str], float] = {}
        self.fresh_s = min(0.5, self.settings.poll_s)  # a warm request's store view age

    # --- entry -----------------------------------------------------------------------

    def __call__(self, request: flask.Request) -> flask.Response:
        try:
            return self._dispatch(request)
        except Reply as reply:
            return reply.response()
        except Exception as exc:  # the store or the service failed: say so, OpenAI-format
            logs.error(f"gateway: {type(exc).__name__}: {exc}", path=request.path)
            return Reply(
                503,
                f"the gateway could not serve this request ({type(exc).__name__}); retry",
                "service_unavailable",
                "gateway_unavailable",
                {"Retry-After": "5"},
            ).response()

    def _dispatch(self, request: flask.Request) -> flask.Response:
        path = _route_path(request.path)
        if not self.keys.allows(request.headers.get("Authorization")):
            raise Reply(
                401,
                "a valid API key is required: send 'Authorization: Bearer <key>' "
                "(locally: yoyoctl gateway key)",
                "invalid_request_error",
                "invalid_api_key",
            )
        if path == "/models" or path.startswith("/models/"):
            if request.method != "GET":
                raise Reply(405, "use GET /v1/models", "invalid_request_error", "method")
            return self._models(path.removeprefix("/models").removeprefix("/") or None)
        if path.split("/")[1] in ("files", "batches"):
            if self.batch_api is None:
                raise Reply(
                    404,
                    "batch inference is not configured here (batch.bucket)",
                    "invalid_request_error",
                    "unknown_url",
                )
            return self.batch_api(request, path)
        if path not in FORWARDED:
            raise Reply(
                404,
                f"no route {request.path}; served: GET /v1/models, POST /v1"
                + ", /v1".join(FORWARDED)
                + ", /v1/files, /v1/batches",
                "invalid_request_error",
                "unknown_url",
            )
        if request.method != "POST":
            raise Reply(405, f"use POST {request.path}", "invalid_request_error", "method")
        body, doc = self._read_body(request)
        model = doc.get("model")
        pool = self.models.get(model) if isinstance(model, str) else None
        if pool is None:
            raise _unknown_model(model, self.models)
        return self._serve(pool, path, body, doc.get("stream") is True)

    def _read_body(self, request: flask.Request) -> tuple[bytes, dict[str, Any]]:
        body, doc = read_json(request, self.settings.max_body_bytes)
        if not isinstance(doc.get("model"), str):
            raise Reply(
                400, "'model' is required (a string)", "invalid_request_error", "missing_model"
            )
        return body, doc

    def _models(self, one: str | None) -> flask.Response:
        """Every pool's model (``GET /v1/models``), or one (``GET /v1/models/<id>``)."""
        if one is not None and one not in self.models:
            raise _unknown_model(one, self.models)
        now = self.clock.now()
        data = []
        for model, pool in sorted(self.models.items()):
            if one is not None and model != one:
                continue
            state, _ = self._view.read(pool, self.fresh_s)
            warm = route(state, self.config.policy(pool), now) is not None
            entry = {"id": model, "object": "model", "created": 0, "owned_by": "yoyo"}
            data.append({**entry, "pool": pool, "warm": warm})
        doc = data[0] if one is not None else {"object": "list", "data": data}
        return flask.Response(json.dumps(doc), 200, content_type="application/json")

    # --- routing, holding, forwarding ------------------------------------------------

    def _serve(self, pool: str, path: str, body: bytes, stream: bool) -> flask.Response:
        policy = self.config.policy(pool)
        held = _Held(self.clock.now())
        while True:
            target, state = self._await_target(policy, held)
            forwarded_at = self.clock.now()
            self._count(target.instance, +1)
            response: UpstreamResponse | None = None
            try:
                response = self.upstream.post(target.address, f"/v1{path}", body)
                chunks = response.chunks()
                first = next(chunks, b"")
            except BaseException as exc:
                if response is not None:
                    response.close()
                self._count(target.instance, -1)
                if not isinstance(exc, UpstreamLost):
                    raise
                self._lost(pool, target, f"before answering ({exc})")
                continue
            first_byte_at = self.clock.now()
            if held.waited:
                self._record_cold_start(state, target, held, forwarded_at, first_byte_at)
            headers = {}
            if held.waited:
                headers["X-Yoyo-Cold-Start"] = f"{forwarded_at - held.arrived:.3f}"
            if stream:
                headers.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
                return flask.Response(
                    self._relay(target, response, first, chunks),
                    response.status,
                    headers,
                    content_type=response.content_type,
                )
            try:
                data = first + b"".join(chunks)
            except UpstreamLost as exc:
                self._lost(pool, target, f"mid-answer ({exc})")
                continue
            finally:
                response.close()
                self._count(target.instance, -1)
            return flask.Response(
                data, response.status, headers, content_type=response.content_type
            )

    def _lost(self, pool: str, target: Target, how: str) -> None:
        """Skip this VM until it is heard from again (routing.route), in every request;
        the pool's view is read again by the next request."""
        now = self.clock.now()
        with self._lock:
            self._unreachable = {
                k: at for k, at in self._unreachable.items() if now - at < LOST_KEPT_S
            }
            self._unreachable[(target.instance, target.boot_id)] = now
        self._view.forget(pool)
        logs.warning(
            f"gateway: {target.instance} lost {how}; routing again",
            pool=pool,
            instance=target.instance,
        )

    def _relay(
        self, target: Target, response: UpstreamResponse, first: bytes, rest: Iterator[bytes]
    ) -> Iterator[bytes]:
        """The stream as it arrives; a lost VM ends it with an error event (never a hang)."""
        try:
            if first:
                yield first
            yield from rest
        except UpstreamLost as exc:
            error = {
                "message": f"the VM {target.instance} was lost mid-stream: {exc}",
                "type": "upstream_lost",
                "param": None,
                "code": "vm_lost",
            }
            yield f"data: {json.dumps({'error': error})}\n\n".encode()
        finally:
            response.close()
            self._count(target.instance, -1)

    def _await_target(self, policy: PoolPolicy, held: _Held) -> tuple[Target, PoolState]:
        """A ready VM now, or after holding the request while the pool wakes."""
        pause = FIRST_PAUSE_S
        max_age = self.fresh_s
        holding = False
        try:
            while True:
                state, kill = self._view.read(policy.pool, max_age)
                refused = refusal(kill, state, policy, self.clock.now())
                if refused is not None:
                    raise Reply(
                        503,
                        refused.message,
                        "service_unavailable",
                        refused.code,
                        {"x-should-retry": "false"},
                    )
                now = self.clock.now()
                with self._lock:
                    in_flight, lost = dict(self._in_flight), dict(self._unreachable)
                target = route(state, policy, now, in_flight, lost)
                if target is not None:
                    return target, state
                if not holding:
                    self._hold(+1)
                    holding = held.waited = True
                self._wake(state, policy, now)
                left = held.arrived + self.settings.hold_s - now
                if left <= 0:
                    raise Reply(
                        503,
                        f"no VM of pool {policy.pool} became ready within "
                        f"{self.settings.hold_s:.0f}s; retry later",
                        "service_unavailable",
                        "cold_start_timeout",
                        {"Retry-After": str(RETRY_AFTER_S)},
                    )
                self.sleep(min(pause, left))
                max_age = pause
                pause = min(pause * 1.5, self.settings.poll_s)
        finally:
            if holding:
                self._hold(-1)

    def _hold(self, delta: int) -> None:
        with self._lock:
            if delta > 0 and self._held >= self.settings.max_held:
                raise Reply(
                    429,
                    f"{self._held} requests are already held for a cold pool "
                    f"(gateway.max_held {self.settings.max_held}); retry later",
                    "rate_limit_error",
                    "too_many_held_requests",
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            self._held += delta

    def _count(self, instance: str, delta: int) -> None:
        with self._lock:
            self._in_flight[instance] = self._in_flight.get(instance, 0) + delta

    def _wake(self, state: PoolState, policy: PoolPolicy, now: float) -> None:
        """Record the wake this state calls for, once per id in this instance."""
        message_id = wake_id(state, policy, now)
        if message_id is None:
            return
        with self._lock:
            if self._woken.get(policy.pool) == message_id:
                return
            self._woken[policy.pool] = message_id
        fact = RunRequested(
            message_id, now, policy.pool, Holder.WAKE, "gateway: request waiting", policy.lease_s
        )
        try:
            self.handle(fact)
        except Exception as exc:  # held on: the next pause tries again
            with self._lock:
                self._woken.pop(policy.pool, None)
            logs.warning(f"gateway: wake not recorded ({exc}); retrying", pool=policy.pool)

    def _record_cold_start(
        self, state: PoolState, target: Target, held: _Held, forwarded: float, first_byte: float
    ) -> None:
        """One event per lease epoch: the phases of the cold start this request waited for."""
        lease = state.lease
        event_id = f"cold-start:{state.pool}:{lease.epoch if lease else 0}"
        with self._lock:
            if event_id in self._recorded:
                return
            self._recorded.add(event_id)
        instance = state.instances.get(target.instance)
        phases = {
            "arrived_at": held.arrived,
            "wake_at": lease.granted_at if lease else None,
            "running_at": instance.running_since if instance else None,
            "ready_at": target.ready_since,
            "forwarded_at": forwarded,
            "first_byte_at": first_byte,
        }
        waited = forwarded - held.arrived
        event = Event(
            id=event_id,
            kind="cold-start",
            at=first_byte,
            pool=state.pool,
            reason=f"cold start: request held {waited:.1f}s, served by {target.instance}",
            data={"instance": target.instance, "held_s": waited, "phases": phases},
        )
        try:
            self.store.transact(lambda tx: None if tx.has_event(event.id) else tx.append(event))
        except Exception as exc:  # observability must not fail the request
            logs.warning(f"gateway: cold-start event not recorded: {exc}", pool=state.pool)


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
