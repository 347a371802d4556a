"""The decision for one request at the gateway, pure: refuse it, forward it to a VM, or wait.

Invariants: no I/O, no clock (``now`` is an argument), one answer per call, each with its
reason. In order:
1. a refusal (kill switch, spend cap, every instance failed permanently under the current
   lease: routing.refusal) → 503 at once, ``x-should-retry: false``, never a wake;
2. the request was lost ``MAX_LOST`` times on VMs that took it (two VMs, or the same VM
   twice: a failure that follows the request) → 502, never sent again;
3. a ready VM (routing.route, this gateway's own in-flight counts, its unreachable VMs
   and the ones this request skips applied) → forward to it;
4. held past ``hold_s`` → 503 with Retry-After;
5. else wait, with the wake this state calls for (routing.wake_id; None: the lease suffices).
Whether a request may be held at all (``max_held``) is ``admit``: the count is the
shell's, the rule is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..domain.model import KillSwitch, PoolPolicy, PoolState
from .routing import Target, refusal, route, wake_id

MAX_LOST = 2  # a request lost this many times on VMs that took it is answered 502
RETRY_AFTER_S = 30


@dataclass(frozen=True)
class Refuse:
    """Answer now with an OpenAI-format error."""

    status: int
    code: str
    message: str
    kind: str = "service_unavailable"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Forward:
    target: Target


@dataclass(frozen=True)
class Wait:
    reason: str
    wake: str | None  # the message id of the wake to record, or None (the lease suffices)


Decision = Refuse | Forward | Wait


@dataclass(frozen=True)
class Request:
    """What the decision needs to know of one request."""

    arrived: float
    lost: int = 0  # times a VM took it and dropped it
    waited: bool = False  # it found the pool cold and was held
    # (instance, boot id) → when this request alone could not reach it: skipped by this
    # request until that VM is heard from again (a new gateway instance's network)
    skip: Mapping[tuple[str, str], float] = field(default_factory=dict)


def decide(
    kill: KillSwitch,
    state: PoolState,
    policy: PoolPolicy,
    now: float,
    request: Request,
    hold_s: float,
    in_flight: Mapping[str, int] | None = None,
    unreachable: Mapping[tuple[str, str], float] | None = None,
) -> Decision:
    refused = refusal(kill, state, policy, now)
    if refused is not None:
        return Refuse(503, refused.code, refused.message, headers={"x-should-retry": "false"})
    if request.lost >= MAX_LOST:
        return Refuse(
            502,
            "upstream_lost",
            f"the model server dropped this request {request.lost} times without an "
            "answer; it is not sent again (is the request valid for the model?)",
            kind="upstream_error",
        )
    target = route(state, policy, now, in_flight, {**(unreachable or {}), **request.skip})
    if target is not None:
        return Forward(target)
    if now - request.arrived >= hold_s:
        return Refuse(
            503,
            "cold_start_timeout",
            f"no VM of pool {policy.pool} became ready within {hold_s:.0f}s; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Wait(f"no ready VM in pool {policy.pool}", wake_id(state, policy, now))


def admit(held: int, max_held: int) -> Refuse | None:
    """A request that must wait is held only while fewer than ``max_held`` are."""
    if held < max_held:
        return None
    return Refuse(
        429,
        "too_many_held_requests",
        f"{held} requests are already held for a cold pool (at most {max_held} per gateway "
        "instance: gateway.max_held, else 80% of gateway.concurrency); "
        "retry later",
        kind="rate_limit_error",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
