"""The pool's state, its policy and the kill switch, as immutable values.

Invariants: every value here is a frozen dataclass of plain data (str, int, float,
bool, None, tuples, mappings of these); times are seconds since the Unix epoch
(float) and durations are seconds. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from .history import History
from .keepalive import GapHistogram


class Desired(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


# Compute Engine instance statuses (plus UNKNOWN before the first observation and
# MISSING when the instance does not exist).
RUNNING_STATUSES = frozenset({"PROVISIONING", "STAGING", "RUNNING", "REPAIRING"})
STOPPED_STATUSES = frozenset({"TERMINATED", "STOPPED", "SUSPENDED"})
TRANSITIONAL_STATUSES = frozenset({"STOPPING", "SUSPENDING"})
BILLED_STATUSES = frozenset({"RUNNING", "STOPPING"})
UNKNOWN = "UNKNOWN"
MISSING = "MISSING"


class ActionKind(StrEnum):
    START = "start"
    STOP = "stop"


class Rule(StrEnum):
    """The lifecycle rules of DESIGN.md §3, in priority order, plus bookkeeping."""

    KILL_SWITCH = "1-kill-switch"
    SPEND_CAP = "2-spend-cap"
    NO_LEASE = "3-no-lease"
    LEASE = "4-lease"
    HEARTBEAT_GAP = "5-heartbeat-gap"
    IDLE = "6-idle"
    MAX_SESSION = "7-max-session"
    PREEMPTED = "8-preempted"
    LOAD = "4-load"  # rule 4's count: VMs added or removed for online load
    SCALE_CAP = "2-scale-cap"  # rule 2 on a scale-out: refused, it would cross a cap
    NO_PROGRESS = "9-no-progress"  # batch work keeps a pool up only while it moves
    OPERATOR = "operator"
    ORPHAN = "orphan"
    OUTCOME = "outcome"
    CAPACITY = "capacity"


class Holder(StrEnum):
    """Who asked for the lease a pool holds (``Lease.holder``, ``LeaseRequest.holder``)."""

    CYCLE = "cycle"  # a scheduled run window
    WAKE = "wake"  # a request waiting at the gateway (or the simulator's)
    QUEUE = "queue"  # queued work at or above the pool's threshold
    OPERATOR = "operator"  # an operator's start on the control topic
    PREWARM = "prewarm"  # the pool's history predicts a first request (domain/prewarm.py)
    BATCH = "batch"  # pending batch shards (the batch controller's count: PoolState.batch)


class KillSource(StrEnum):
    """Who engaged the kill switch (``KillSwitch.source``)."""

    OPERATOR = "operator"  # a person: control topic, yoyoctl or the console
    BUDGET = "budget"  # a budget notification (domain/budget.py)


BUDGET_KILL = "budget:"  # how a budget kill's reason begins (domain/budget.py)


class OutcomeKind(StrEnum):
    """What became of an action (``ActionRecord.outcome``; None while in flight)."""

    DONE = "done"  # Compute reported the operation done
    OBSERVED = "done (observed)"  # its effect was observed after it was issued
    SUPERSEDED = "superseded"  # done, then a restart (rule 5 or 8) began: spent
    SKIPPED = "skipped"  # not called (the kill switch was engaged at the last look)
    RETRY = "retry"  # a temporary failure: re-sent with the same request id
    CAPACITY = "capacity"  # refused for capacity: the zone backs off
    ERROR = "error"  # a permanent failure (or the attempts ran out)
    NOT_FOUND = "not found"  # the instance does not exist


# Provisioning models of an instance (PoolPolicy.placements): spot instances serve
# demand; standard ones are the fallback, started only when spot has been refused in
# every zone for ``fallback_after_s`` (domain/capacity.py).
SPOT = "spot"
STANDARD = "standard"
PROVISIONING = (SPOT, STANDARD)


# The share of the model server's sequences that scaling on load aims at by default.
TARGET_UTILIZATION = 0.9


@dataclass(frozen=True)
class Placement:
    """Where one instance of a pool runs and what an hour of it costs."""

    name: str
    zone: str
    hourly_price_usd: float
    provisioning: str = SPOT


@dataclass(frozen=True)
class PoolPolicy:
    """How one pool behaves. Durations in seconds, money in the billing currency."""

    pool: str
    zone: str = "local"
    instances: tuple[str, ...] = ()
    model: str = ""  # the model the pool's VMs serve (the gateway routes on it); "" = pool name
    hourly_price_usd: float = 0.0
    # Keep-alive (domain/keepalive.py). "fixed": release the lease after idle_timeout_s.
    # "adaptive" (the default, chosen by bench/keepalive.py): the cheapest timeout on the
    # pool's recent idle gaps, in [30 s, max(keepalive_max_s, idle_timeout_s)], never
    # turning a gap that idle_timeout_s would have kept warm into a cold start (2× margin);
    # idle_timeout_s until the pool has seen two gaps. By default it only shortens
    # idle_timeout_s: keeping longer cost more than it saved (bench/RESULTS.md, issue 18).
    keepalive: str = "adaptive"
    idle_timeout_s: float = 900.0
    keepalive_max_s: float = 900.0
    boot_s: float = 150.0  # expected wake → ready: what a cold start makes its user wait
    wait_weight: float = 5.0  # a user-second of waiting is worth this many VM-seconds
    # Pre-warm (domain/prewarm.py): start the pool ahead of a first request its history
    # predicts, within this many VM-minutes of pre-warm lease a local day (0: off); a
    # pre-warmed VM nobody uses is held prewarm_hold_s past its expected boot.
    prewarm_budget_min: float = 40.0
    prewarm_hold_s: float = 900.0
    heartbeat_gap_s: float = 180.0
    boot_grace_s: float = 300.0
    max_session_s: float = 4 * 3600.0
    lease_s: float = 1800.0
    max_lease_s: float = 8 * 3600.0
    restart_budget: int = 3
    restart_backoff_s: float = 60.0
    queue_threshold: int = 1
    action_retry_s: float = 60.0
    max_action_attempts: int = 5
    tick_s: float = 60.0  # longest time between ticks (from tick_cron): the caps look ahead by it
    daily_cap_usd: float | None = None
    monthly_cap_usd: float | None = None
    timezone: str = "UTC"
    # Capacity (domain/capacity.py): instances named with their own zone, price and
    # provisioning; a plain name is a spot instance in ``zone`` at ``hourly_price_usd``.
    placements: tuple[Placement, ...] = ()
    zone_backoff_s: float = 60.0  # a zone's first capacity refusal backs it off this long
    zone_backoff_max_s: float = 1800.0  # … doubling per refusal in a row, up to this
    fallback_after_s: float = 60.0  # spot refused in every zone this long → standard
    # Scaling on load (domain/scaling.py): the pool runs ceil(load / target) VMs, where the
    # load is the requests in flight and held (gateway) or running and waiting (VMs).
    # The model server's concurrent sequences: vLLM's --max-num-seqs, 256 by default
    # (https://docs.vllm.ai/en/latest/models/engine_args.html).
    max_num_seqs: int = 256
    scale_target: float = 0.0  # requests per VM the pool aims at; 0: max_num_seqs × 0.9
    scale_window_s: float = 30.0  # the stable window: a VM added for load stays this long
    # Queued requests (held at the gateway, waiting on a VM) count at this weight: a
    # backlog piled up while VMs boot drains once they are ready, it is not steady load.
    scale_backlog_weight: float = 0.5

    @property
    def target(self) -> float:
        """Concurrent requests per VM that scaling aims at: ``scale_target``, else 90 % of
        the server's sequences (tuned in bench/autoscale.py; Knative's default is 70 %)."""
        if self.scale_target > 0:
            return self.scale_target
        return max(1.0, self.max_num_seqs * TARGET_UTILIZATION)

    @property
    def max_instances(self) -> int:
        return len(self.instances)

    def placement(self, instance: str) -> Placement:
        for placed in self.placements:
            if placed.name == instance:
                return placed
        return Placement(instance, self.zone, self.hourly_price_usd)

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone holding an instance of the pool, in configuration order."""
        return tuple(dict.fromkeys(self.placement(n).zone for n in self.instances))

    @property
    def prices(self) -> Mapping[str, float]:
        """Hourly price of each configured instance (the ledger charges each its own)."""
        return MappingProxyType({n: self.placement(n).hourly_price_usd for n in self.instances})

    @property
    def top_price(self) -> float:
        return max(self.prices.values(), default=self.hourly_price_usd)


@dataclass(frozen=True)
class KillSwitch:
    """The switch. ``at`` is what its writer says (a publish time, a console entry, a
    client's clock: shown, never trusted); ``changed_at`` is when it changed by a clock
    no client controls (the control plane's, or the store's commit time, which the store
    fills in on read), the only time the switch is ordered by. Not part of its value."""

    engaged: bool = False
    reason: str = ""
    by: str = ""
    at: float | None = None
    changed_at: float | None = field(default=None, compare=False)

    @property
    def source(self) -> KillSource:
        """A budget kill says so in its reason (the document a person may write holds
        only ``{engaged, reason, by, at}``)."""
        return KillSource.BUDGET if self.reason.startswith(BUDGET_KILL) else KillSource.OPERATOR


@dataclass(frozen=True)
class Lease:
    """The single lifecycle owner: VMs of the pool may run only while it is valid."""

    holder: Holder
    reasons: tuple[str, ...]
    epoch: int
    granted_at: float
    expires_at: float
    max_until: float
    active_at: float | None = None  # last explicit request or extension (counts as activity)

    def valid(self, now: float) -> bool:
        return now < min(self.expires_at, self.max_until)

    def deadline(self) -> float:
        return min(self.expires_at, self.max_until)


@dataclass(frozen=True)
class LeaseRequest:
    """A trigger's wish for a run window; decide() grants or extends the lease."""

    holder: Holder
    reason: str
    until: float


@dataclass(frozen=True)
class ActionRecord:
    """Progress of the last lifecycle action on an instance, kept on the pool document."""

    kind: ActionKind
    epoch: int
    request_id: str
    issued_at: float
    reason: str
    outcome: OutcomeKind | None = None  # None while in flight (domain/actions.py)
    attempts: int = 0
    detail: str = ""  # what Compute said (the outcome's message), or the restart's rule

    @property
    def said(self) -> str | None:
        """The outcome in one line, as the event log and the status page show it."""
        if self.outcome is None:
            return None
        if self.outcome in (OutcomeKind.DONE, OutcomeKind.OBSERVED):
            return self.outcome.value
        if self.outcome == OutcomeKind.SUPERSEDED:
            return f"done; then {self.detail}"
        if self.outcome == OutcomeKind.NOT_FOUND:
            return f"error: not found: {self.detail}"
        return f"{self.outcome.value}: {self.detail}"


@dataclass(frozen=True)
class Heartbeat:
    """The latest report of the agent on one VM (stored per instance, not in the pool)."""

    instance: str
    boot_id: str
    sent_at: float
    received_at: float
    busy: bool = False
    running: int = 0
    waiting: int = 0
    last_request_at: float | None = None
    last_busy_at: float | None = None
    ready: bool = True  # the inference server answers (False while the model loads)
    ready_since: float | None = None  # when this boot was first heard ready (set by merge)
    address: str | None = None  # host:port of the VM's inference server (None: not announced)


@dataclass(frozen=True)
class Instance:
    name: str
    desired: Desired = Desired.STOPPED
    observed: str = UNKNOWN
    observed_at: float | None = None
    running_since: float | None = None
    last_action: ActionRecord | None = None
    restarts: int = 0
    next_start_at: float | None = None
    retired_epoch: int | None = None  # not restarted again under this lease epoch
    error: str | None = None  # permanent error: not retried until the next lease
    orphan: bool = False  # labelled for the pool but not in its configuration
    warm: bool = False  # has been seen RUNNING: its own disk already holds the weights


@dataclass(frozen=True)
class ZoneHealth:
    """Capacity refusals of one zone, kept on the pool document (domain/capacity.py)."""

    refusals: int = 0  # capacity refusals in a row (0: healthy)
    refused_since: float | None = None  # the first refusal of the current streak
    backoff_until: float | None = None  # no start is tried in the zone before this
    detail: str = ""  # what Compute Engine said last time
    recent: tuple[float, ...] = ()  # times of the latest refusals (bounded)
    preempted: tuple[float, ...] = ()  # times of the latest preemptions (bounded)


@dataclass(frozen=True)
class Demand:
    depth: int = 0
    source: str = ""
    updated_at: float | None = None  # when we learnt it
    observed_at: float | None = None  # when it was true (publish time): older news is ignored


@dataclass(frozen=True)
class Load:
    """Online load on the pool (domain/scaling.py): the gateway's last report, and what
    the load asked for within the stable window (so a VM added for a burst stays)."""

    in_flight: int = 0  # requests the gateway has sent to the pool's VMs, not finished
    held: int = 0  # requests the gateway holds for a VM (none ready, or all full)
    observed_at: float | None = None  # the report's time (publish order): older is ignored
    updated_at: float | None = None  # when we learnt it (a report counts while fresh)
    vms: int = 0  # the most VMs the load wanted within the stable window
    # (count, when last wanted), counts falling, times rising: the window's maxima
    # (at most one entry per count, so bounded by the pool's size).
    marks: tuple[tuple[int, float], ...] = ()
    refused: str = ""  # why the latest scale-out was refused (spend caps), "" if none


@dataclass(frozen=True)
class BatchDemand:
    """The pool's pending batch work, as the batch controller counts it (batch/controller.py).

    Its own unit: ``shards`` is VMs' worth of work (one VM works one shard), never a
    producer's message count (``Demand``); neither source erases the other. It keeps the
    pool up only while it is fresh, not ``lapsed`` (no shard moved through a VM's boot
    grace and restart budget: rule 9) and not ``held`` (an operator's stop while it was
    pending); both end only on an explicit action (an operator's start, a newer
    ``retry_at``: a submit or ``yoyoctl batch retry``) or when the work is gone.
    """

    shards: int = 0
    progress_at: float | None = None  # when a shard last moved (checkpoint or done marker)
    retry_at: float | None = None  # newest explicit ask to run it (submit, batch retry)
    updated_at: float | None = None  # when the service learnt it
    observed_at: float | None = None  # when the controller counted it: older news is ignored
    lapsed: str = ""  # why it no longer keeps the pool up ("": it does)
    lapsed_at: float | None = None
    held: str = ""  # an operator's stop holds it ("": not held)
    starts: int = 0  # VM starts it caused since a shard last moved (or an explicit action)

    @property
    def waiting(self) -> str:
        """Why pending work does not run now ("" when nothing holds it back)."""
        return self.held or self.lapsed if self.shards > 0 else ""


@dataclass(frozen=True)
class Ledger:
    """Spend integrated from observed running time × hourly price (DESIGN.md §4)."""

    day: str = ""
    month: str = ""
    day_usd: float = 0.0
    month_usd: float = 0.0
    accrued_until: float | None = None


@dataclass(frozen=True)
class PoolState:
    pool: str
    epoch: int = 0
    lease: Lease | None = None
    requests: tuple[LeaseRequest, ...] = ()
    instances: Mapping[str, Instance] = field(default_factory=dict)
    heartbeats: Mapping[str, Heartbeat] = field(default_factory=dict)  # per-instance docs
    demand: Demand = Demand()
    load: Load = Load()  # online load (domain/scaling.py)
    batch: BatchDemand = BatchDemand()  # pending batch work (its own unit: shards)
    ledger: Ledger = Ledger()
    paused: str | None = None  # why no lease may be granted (spend cap)
    # Publish times of the newest operator start/extend and stop applied: an operator
    # command published before the newest opposite one is stale (publish order wins).
    operator_run_at: float | None = None
    operator_stop_at: float | None = None
    idle_gaps: GapHistogram = field(default_factory=GapHistogram)  # recent gaps (bounded)
    idle_since: float | None = None  # when the pool's last activity ended, while idle
    zones: Mapping[str, ZoneHealth] = field(default_factory=dict)  # capacity, per zone
    history: History = field(
        default_factory=History
    )  # advice for keep-alive and pre-warm (domain/history.py)
    last_decision: str = ""
    updated_at: float | None = None


@dataclass(frozen=True)
class Action:
    """A call the service must make on Compute Engine after the decision commits."""

    kind: ActionKind
    pool: str
    instance: str
    zone: str
    epoch: int
    request_id: str
    rule: Rule
    reason: str


@dataclass(frozen=True)
class Change:
    """One named state change a decision made (for the event log)."""

    rule: Rule
    reason: str
    instance: str | None = None
