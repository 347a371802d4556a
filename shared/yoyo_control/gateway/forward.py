"""One request's way to a VM: decide (hold.decide), hold, wake, forward, retry — async.

Invariants:
- Holding is awaiting the pool's next view (view.View.changed), never a sleeping thread;
  at most ``gateway.held_limit`` requests are held at once (hold.admit: 429 beyond); a held
  request that is cancelled (its client went away) frees its slot at once (``finally``)
  and is never forwarded.
- A cold pool gets ONE wake per wake id (routing.wake_id) from this instance, recorded
  through ``service.handle`` (a RunRequested fact) in a worker thread.
- Whose failure is it (ports.UpstreamLost.kind): ``connect`` is the VM's (every request
  skips that VM until it is heard from again), except in this gateway instance's first
  ``network_warmup_s`` (Direct VPC can take a minute to connect a new instance: the
  instance's, so only that request skips the VM until it is heard from again);
  ``dropped`` is the request's (it counts against the request only: lost
  ``hold.MAX_LOST`` times → 502); ``timeout`` counts against the request, and marks the
  VM once two different requests timed out on it; ``not_ready`` (the server answered
  503: loading, it ran nothing) skips the VM for that request until it is heard from
  again, and is never relayed.
- Responses are relayed as they arrive (a stream chunk by chunk); a VM lost mid-stream
  ends the stream with an OpenAI-format error event. The first held request served after
  a wake records the cold start's phases through ``record``, once per epoch.
- ``handle`` and ``record`` are how the gateway tells the control plane (composed:
  gateway/wire.py, published to the queue topic; never a store write of its own).
- Load: every change of a pool's in-flight or held count goes to the pool's
  LoadReporter (gateway/load.py), which reports it to the control plane when it is worth
  it, at most once per pool per ``load.LOAD_GAP_S``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import logs
from ..config import Config
from ..domain.facts import Fact, RunRequested
from ..domain.model import Holder, PoolPolicy, PoolState
from ..ports import Clock, Event, Upstream, UpstreamLost, UpstreamResponse
from . import hold
from .coldstarts import cold_start_event
from .load import LoadReporter
from .reply import Reply
from .routing import Target
from .view import View

LOST_KEPT_S = 3600.0  # a lost VM not heard from again within this is forgotten
# A model server answers 503 before its model is up (vLLM, llama.cpp): it ran nothing.
NOT_READY = 503
NETWORK_WARMUP_S = 60.0  # Direct VPC egress of a new instance may take this to connect


@dataclass
class Answer:
    """A VM's answer: its status, type and body (``first`` + the rest as it comes)."""

    status: int
    content_type: str
    headers: dict[str, str]
    body: AsyncIterator[bytes]


class Forwarder:
    def __init__(
        self,
        config: Config,
        view: View,
        handle: Callable[[Fact], Any],
        record: Callable[[Event], Any],
        upstream: Upstream,
        clock: Clock,
        network_warmup_s: float = NETWORK_WARMUP_S,
    ) -> None:
        self.config, self.settings, self.view = config, config.gateway, view
        self.network_warmup_s = network_warmup_s
        self.handle, self.record, self.upstream, self.clock = handle, record, upstream, clock
        self.started_at = clock.now()
        self.in_flight: dict[str, int] = {}
        self.held = 0
        self._woken: dict[str, str] = {}
        self._recorded: set[str] = set()
        self.unreachable: dict[tuple[str, str], float] = {}
        self._timeouts: dict[tuple[str, str], set[int]] = {}  # VM → requests timed out
        self._serial = itertools.count()
        self.load = LoadReporter(config, handle, clock)

    async def serve(self, pool: str, path: str, body: bytes, stream: bool) -> Answer:
        policy = self.config.policy(pool)
        request = hold.Request(self.clock.now())
        serial = next(self._serial)
        holding = False
        try:
            while True:
                view = await self.view.read(pool)
                now = self.clock.now()
                decision = hold.decide(
                    view.kill, view.state, policy, now, request, self.settings.hold_s,
                    self.in_flight, self.unreachable,
                )  # fmt: skip
                if isinstance(decision, hold.Refuse):
                    raise _reply(decision)
                if isinstance(decision, hold.Wait):
                    if not holding:
                        refused = hold.admit(self.held, self.settings.held_limit)
                        if refused is not None:
                            raise _reply(refused)
                        self.held, holding = self.held + 1, True
                        self._held(pool, +1)
                        request = replace(request, waited=True)
                    await self._wake(decision.wake, policy, now)
                    left = request.arrived + self.settings.hold_s - now
                    await self.view.changed(pool, min(self.settings.poll_s, left))
                    continue
                target = decision.target
                try:
                    return await self._forward(view.state, target, path, body, stream, request)
                except UpstreamLost as exc:
                    request = await self._lost(pool, target, exc, request, serial)
        finally:
            if holding:
                self.held -= 1
                self._held(pool, -1)

    async def _forward(
        self, state: PoolState, target: Target, path: str, body: bytes, stream: bool,
        request: hold.Request,
    ) -> Answer:  # fmt: skip
        self._count(target.instance, +1, state.pool)
        forwarded = self.clock.now()
        response: UpstreamResponse | None = None
        try:
            response = await self.upstream.post(target.address, f"/v1{path}", body)
            if response.status == NOT_READY:
                raise UpstreamLost(f"{target.instance} answered 503: not ready", "not_ready")
            chunks = aiter(response.chunks())
            first = await anext(chunks, b"")
            rest = [] if stream else [c async for c in chunks]
        except BaseException:
            self._count(target.instance, -1, state.pool)
            if response is not None:
                await response.close()
            raise
        headers = {}
        if request.waited:
            headers["X-Yoyo-Cold-Start"] = f"{forwarded - request.arrived:.3f}"
            await self._record_cold_start(state, target, request.arrived, forwarded)
        if not stream:
            self._count(target.instance, -1, state.pool)
            await response.close()
            return Answer(response.status, response.content_type, headers, _once(first, *rest))
        headers.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        relay = _relay(
            target, response, first, chunks, lambda: self._count(target.instance, -1, state.pool)
        )
        return Answer(response.status, response.content_type, headers, relay)

    async def _lost(
        self, pool: str, target: Target, exc: UpstreamLost, request: hold.Request, serial: int
    ) -> hold.Request:
        """Whose failure (module docstring); the request as it goes on."""
        now, vm = self.clock.now(), (target.instance, target.boot_id)
        if exc.kind == "not_ready":  # it ran nothing: skip it until it is heard from again
            logs.warning(f"gateway: {target.instance} is not ready yet ({exc})", pool=pool)
            return replace(request, skip={**request.skip, vm: now})
        mark = exc.kind == "connect"
        if exc.kind == "timeout":
            timed_out = self._timeouts.setdefault(vm, set())
            timed_out.add(serial)
            mark = len(timed_out) >= 2  # two requests, not one request twice
        if mark and exc.kind == "connect" and now - self.started_at < self.network_warmup_s:
            logs.warning(f"gateway: {target.instance} not reachable yet from this new instance")
            return replace(request, skip={**request.skip, vm: now})
        if mark:
            self.unreachable = {k: t for k, t in self.unreachable.items() if now - t < LOST_KEPT_S}
            self.unreachable[vm] = now
            self.view.forget(pool)
        if exc.kind != "connect":
            request = replace(request, lost=request.lost + 1)
        logs.warning(
            f"gateway: {target.instance} lost the request ({exc.kind}: {exc})"
            + ("; skipped until heard from again" if mark else ""),
            pool=pool,
            instance=target.instance,
        )
        return request

    def _count(self, instance: str, delta: int, pool: str) -> None:
        self.in_flight[instance] = self.in_flight.get(instance, 0) + delta
        self.load.change(pool, in_flight=delta)

    def _held(self, pool: str, delta: int) -> None:
        self.load.change(pool, held=delta)

    async def _wake(self, message_id: str | None, policy: PoolPolicy, now: float) -> None:
        """Record the wake this state calls for, once per id in this instance."""
        if message_id is None or self._woken.get(policy.pool) == message_id:
            return
        self._woken[policy.pool] = message_id
        fact = RunRequested(
            message_id, now, policy.pool, Holder.WAKE, "gateway: request waiting", policy.lease_s
        )
        try:
            await asyncio.to_thread(self.handle, fact)
        except Exception as exc:  # held on: the next view tries again
            self._woken.pop(policy.pool, None)
            logs.warning(f"gateway: wake not recorded ({exc}); retrying", pool=policy.pool)

    async def _record_cold_start(
        self, state: PoolState, target: Target, arrived: float, forwarded: float
    ) -> None:
        """One event per lease epoch: the phases of the cold start this request waited for."""
        event = cold_start_event(state, target, arrived, forwarded, self.clock.now())
        if event.id in self._recorded:
            return
        self._recorded.add(event.id)
        try:
            await asyncio.to_thread(self.record, event)
        except Exception as exc:  # observability must not fail the request
            logs.warning(f"gateway: cold-start event not recorded: {exc}", pool=state.pool)


async def _relay(
    target: Target,
    response: UpstreamResponse,
    first: bytes,
    rest: AsyncIterator[bytes],
    done: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The stream as it arrives; a lost VM ends it with an error event (never a hang)."""
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    except UpstreamLost as exc:
        error = {
            "message": f"the VM {target.instance} was lost mid-stream: {exc}",
            "type": "upstream_lost",
            "param": None,
            "code": "vm_lost",
        }
        yield f"data: {json.dumps({'error': error})}\n\n".encode()
    finally:
        done()
        await response.close()


async def _once(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk


def _reply(refused: hold.Refuse) -> Reply:
    return Reply(refused.status, refused.message, refused.kind, refused.code, dict(refused.headers))
