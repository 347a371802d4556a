"""The agent's decision, as a pure function of what it observed: ``step(state, obs, settings)``.

Rules, in priority order (each is a stop path that works without the control plane):
1. Kill switch engaged → power off (busy or not: the switch wins over everything).
2. Dead-man switch → power off when the pool has no valid lease (absent, or its deadline
   passed) AND the control plane has been silent — the pool document not written — for
   ``deadman_grace_s`` after the later of the lease's end, the last write and the agent's
   start. A store that cannot be read decides nothing (the idle backstop still holds).
3. Idle backstop → power off after ``idle_shutdown_s`` with no running or waiting request
   and no finished request (the inference server unreachable counts as not busy).
Heartbeats go out every ``heartbeat_interval_s``, and at once when the VM turns busy
(unless the last heartbeat already said busy), when the inference server starts (or
stops) answering, and when preemption is first noticed. Turning idle waits for the next
interval: the control plane's idle clock runs from ``last_request_at`` anyway, and on a
busy day an immediate report of every short idle spell costs store writes (DESIGN §4b).
A power-off is re-issued only after ``poweroff_retry_s`` (the VM should be gone by then).

Invariants: no clock, no I/O; the same (state, observation, settings) always gives the
same (state, verdict); a heartbeat's counts are whole numbers in 0..MAX_COUNT and its
``last_request_at`` is never later than its ``sent_at`` — the ranges the control plane's
decoder accepts (messages.decode_heartbeat), so a busy VM's beat is never refused as out
of range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..ports import Metrics as Metrics  # what the model server said (ports.ModelServer)

MAX_COUNT = 1_000_000_000  # the decoder's bound on running/waiting (messages._MAX_COUNT)


def clamp(value: float) -> int:
    """A count as the control plane accepts it: a whole number in 0..MAX_COUNT."""
    if value != value or value <= 0:  # NaN or nothing
        return 0
    return MAX_COUNT if value >= MAX_COUNT else int(value)


@dataclass(frozen=True)
class Settings:
    pool: str
    instance: str
    boot_id: str
    heartbeat_interval_s: float
    idle_shutdown_s: float
    deadman_grace_s: float
    poweroff_retry_s: float = 30.0
    address: str = ""  # host:port of the inference server, announced to the gateway


@dataclass(frozen=True)
class PoolView:
    """What the agent could read of its pool (read-only, through the Store port)."""

    lease_deadline: float | None  # None: no lease
    updated_at: float | None  # last write of the pool document by the control plane


@dataclass(frozen=True)
class Kill:
    engaged: bool
    reason: str = ""
    by: str = ""


@dataclass(frozen=True)
class Observation:
    now: float
    metrics: Metrics | None  # None: the inference server did not answer
    kill: Kill | None  # None: the store could not be read
    pool: PoolView | None  # None: the store could not be read
    preempted: bool = False


@dataclass(frozen=True)
class AgentState:
    started_at: float
    last_busy_at: float | None = None
    last_request_at: float | None = None
    succeeded: float | None = None
    busy: bool = False
    reported_busy: bool = False  # what the last heartbeat said
    ready: bool = False  # the inference server answered at the last look
    last_heartbeat_at: float | None = None
    preemption_reported: bool = False
    poweroff_at: float | None = None
    poweroff_reason: str = ""


@dataclass(frozen=True)
class Verdict:
    heartbeat: dict[str, Any] | None = None  # the message data to publish
    heartbeat_attributes: dict[str, str] | None = None
    poweroff: str | None = None  # why, when the power-off command must run now
    note: str = ""  # something worth a log line


def is_busy(metrics: Metrics | None) -> bool:
    return metrics is not None and (metrics.running > 0 or metrics.waiting > 0)


def poweroff_reason(state: AgentState, obs: Observation, s: Settings) -> str | None:
    """Rules 1–3: why the VM must power itself off now, or None."""
    now = obs.now
    if obs.kill is not None and obs.kill.engaged:
        by = f" by {obs.kill.by}" if obs.kill.by else ""
        return f"kill switch engaged{by}: {obs.kill.reason or 'no reason given'}"
    pool = obs.pool
    if pool is not None:
        lease_valid = pool.lease_deadline is not None and now < pool.lease_deadline
        if not lease_valid:
            marks = [state.started_at, pool.updated_at or 0.0, pool.lease_deadline or 0.0]
            silent = now - max(marks)
            if silent >= s.deadman_grace_s:
                return (
                    f"dead-man switch: no valid lease and the control plane silent "
                    f"for {silent:.0f}s (grace {s.deadman_grace_s:.0f}s)"
                )
    idle_marks = [state.started_at, state.last_busy_at or 0.0, state.last_request_at or 0.0]
    idle = now - max(idle_marks)
    if idle >= s.idle_shutdown_s:
        return f"idle backstop: no work for {idle:.0f}s (limit {s.idle_shutdown_s:.0f}s)"
    return None


def step(state: AgentState, obs: Observation, s: Settings) -> tuple[AgentState, Verdict]:
    now, metrics = obs.now, obs.metrics
    busy = is_busy(metrics)
    last_busy = now if busy else state.last_busy_at
    last_request = state.last_request_at
    succeeded = state.succeeded
    if metrics is not None:
        # The server's counter starts at 0 with the server: a request it finished before
        # the agent's first look still counts (if the agent alone restarted, the old count
        # reads as one request now — an error of at most one keep-alive, on the safe
        # side), and a counter that went down means the server restarted and began again.
        before = succeeded or 0.0
        finished = metrics.succeeded > (before if metrics.succeeded >= before else 0.0)
        if busy or finished:
            last_request = now
        succeeded = metrics.succeeded
    state = replace(
        state, last_busy_at=last_busy, last_request_at=last_request, succeeded=succeeded
    )

    reason = poweroff_reason(state, obs, s)
    if reason is not None:
        retry = state.poweroff_at is None or now - state.poweroff_at >= s.poweroff_retry_s
        if not retry:
            return state, Verdict()
        return replace(state, poweroff_at=now, poweroff_reason=reason), Verdict(poweroff=reason)

    note = ""
    attributes: dict[str, str] | None = None
    due = state.last_heartbeat_at is None or now - state.last_heartbeat_at >= (
        s.heartbeat_interval_s
    )
    ready = metrics is not None
    if ready != state.ready:
        due, note = True, "ready" if ready else "inference server not answering"
    if busy != state.busy:
        note = "busy" if busy else "idle"
    if busy and not state.reported_busy:
        due = True  # at once: a busy VM must keep its lease (idle waits for the interval)
    if obs.preempted and not state.preemption_reported:
        due, note = True, "preempted: Compute Engine is stopping this VM"
        attributes = {"preempted": "true"}
        state = replace(state, preemption_reported=True)
    state = replace(state, busy=busy, ready=ready)
    if not due:
        return state, Verdict(note=note)
    heartbeat = {
        "pool": s.pool,
        "instance": s.instance,
        "boot_id": s.boot_id,
        "sent_at": now,
        "busy": busy,
        "ready": ready,
        "running": clamp(metrics.running) if metrics else 0,
        "waiting": clamp(metrics.waiting) if metrics else 0,
        "last_request_at": None if last_request is None else min(last_request, now),
    }
    if s.address:
        heartbeat["address"] = s.address
    state = replace(state, last_heartbeat_at=now, reported_busy=busy)
    return state, Verdict(heartbeat=heartbeat, heartbeat_attributes=attributes, note=note)
