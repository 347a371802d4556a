"""Configuration: one JSON document (env YOYO_CONFIG or YOYO_CONFIG_FILE) → typed values.

The schema is the classes below: every setting's type, default and limits are written
once, here, as pydantic dataclasses — except a pool's defaults, which are the domain's
``PoolPolicy`` (domain/model.py, kept free of pydantic); ``PoolSettings`` takes them from
there and adds the limits. The README's configuration reference and terraform/variables.tf
are held to this schema by tests/infra/test_config_reference.py.

Invariants: parsing either returns a complete, valid Config or raises ConfigError
naming the offending key; durations are seconds (numbers) or strings like "90s",
"30m", "1h30m"; unknown keys are errors (a typo must not silently change behaviour).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass

from . import names, schedule
from .domain.keepalive import KINDS
from .domain.model import PROVISIONING, SPOT, Placement, PoolPolicy
from .errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or a string like "30m", "1h30m", "45s", "600"."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            match = _DURATION.match(text)
            if not match or not any(match.groups()):
                raise ConfigError(f"{what}: {value!r} is not a duration like 30m, 1h30m or 90s")
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    else:
        raise ConfigError(f"{what}: expected a duration, got {value!r}")
    if seconds < 0 or seconds != seconds or seconds > 366 * 86400:
        raise ConfigError(f"{what}: {value!r} is out of range")
    return seconds


# --- value types -------------------------------------------------------------------


def _seconds(value: object) -> float:
    try:
        return parse_duration(value, "value")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("value: ")) from None


def _real(value: object) -> object:
    """Numbers only: a bool or a string is not a number (pydantic's lax mode takes both)."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {list(choices)}")
        return value

    return check


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
Number = Annotated[float, BeforeValidator(_real), Field(ge=0)]
Count = Annotated[int, BeforeValidator(_real), Field(ge=0)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PoolName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
Keepalive = Annotated[
    str, AfterValidator(_one_of(KINDS)), Field(json_schema_extra={"enum": list(KINDS)})
]
Provisioning = Annotated[
    str, AfterValidator(_one_of(PROVISIONING)), Field(json_schema_extra={"enum": [*PROVISIONING]})
]

# Every schema class: frozen, unknown keys rejected.
_SCHEMA = ConfigDict(extra="forbid")


# --- sections ------------------------------------------------------------------------


@dataclass(frozen=True, config=_SCHEMA)
class Cycle:
    """A pool's scheduled run window (Cloud Scheduler, or the local scheduler)."""

    cron: str = "0 2 * * *"
    time_zone: str = "Etc/UTC"
    window_s: Duration = 1800.0


@dataclass(frozen=True, config=_SCHEMA)
class BudgetPolicy:
    """Which Cloud Billing budget notifications engage the kill switch."""

    budget_ids: tuple[str, ...] = ()
    kill_fraction: Number = 1.0
    kill_thresholds: tuple[Number, ...] = (1.0,)
    forecast_kill: bool = False


@dataclass(frozen=True, config=_SCHEMA)
class Caps:
    """Spend caps over all pools (the real-time ledger)."""

    daily_usd: Number | None = None
    monthly_usd: Number | None = None


# Cloud Run functions (2nd gen) carry at most 32 MB in a request and 10 MB in a streamed
# response (32 MB buffered): https://cloud.google.com/functions/quotas ("Max uncompressed
# HTTP request size", "Max uncompressed HTTP response size"). MB read as 10^6 bytes (the
# smaller reading); an upload keeps 64 KiB of the request for the multipart envelope.
REQUEST_CAP = 32_000_000
STREAMED_RESPONSE_CAP = 10_000_000
MAX_UPLOAD_BYTES = REQUEST_CAP - 64 * 1024


@dataclass(frozen=True, config=_SCHEMA)
class GatewaySettings:
    """The OpenAI-compatible gateway (shared/yoyo_control/gateway/)."""

    hold_s: Duration = 600.0  # how long a request at a cold pool is held for a VM to be ready
    # Requests one gateway instance takes at once: Cloud Run's per-instance concurrency
    # (1000 is its maximum: https://cloud.google.com/run/docs/about-concurrency); Terraform
    # sets the function's max_instance_request_concurrency from the same key.
    concurrency: Annotated[Count, Field(ge=1, le=1000)] = 1000
    # Held at once by one instance (429 beyond); unset: 80% of ``concurrency``, so the 429
    # fires while the instance still has room for warm requests, before Cloud Run queues.
    max_held: Annotated[Count, Field(ge=1)] | None = None
    max_body_bytes: Annotated[Count, Field(ge=1)] = 8 * 1024 * 1024  # larger: refused (413)
    # POST /v1/files (413): under Cloud Run functions' 32 MB request cap with room for the
    # multipart envelope (MAX_UPLOAD_BYTES); larger inputs go by ``yoyoctl batch submit``
    max_file_bytes: Annotated[Count, Field(ge=1, le=MAX_UPLOAD_BYTES)] = 30 * 1024 * 1024
    # GET /v1/files/<id>/content streams a file up to this size; a larger one is a 302 to a
    # signed URL where Storage can make one (Cloud Storage), under the 10 MB streamed cap
    stream_file_bytes: Annotated[Count, Field(ge=1, le=STREAMED_RESPONSE_CAP)] = 8 * 1024 * 1024
    # the signed URL's lifetime: V4 allows at most 7 days (google-cloud-storage refuses
    # more: _signing.SEVEN_DAYS); a download only has to start within it
    file_url_s: Annotated[Count, Field(ge=1, le=604_800)] = 300
    poll_s: Annotated[Duration, Field(gt=0)] = 1.0  # longest pause between two store reads
    upstream_timeout_s: Annotated[Duration, Field(gt=0)] = 600.0  # a silent VM is lost

    def __post_init__(self) -> None:
        if self.max_held is not None and self.max_held > self.concurrency:
            raise ValueError(
                f"gateway.max_held {self.max_held} must not exceed gateway.concurrency "
                f"{self.concurrency}: else the platform queues before the 429 fires"
            )

    @property
    def held_limit(self) -> int:
        """Requests one instance holds at once: ``max_held``, else 80% of ``concurrency``."""
        return self.max_held if self.max_held is not None else max(1, self.concurrency * 4 // 5)


@dataclass(frozen=True, config=_SCHEMA)
class ModelServerSettings:
    """The local VMs' model server (ports.ModelServer): how it starts, how it is read.

    ``command`` is its argv, with ``{python}``, ``{port}``, ``{model}`` and
    ``{api_key_file}`` filled in by the VM (it must listen on 127.0.0.1:{port}, answer
    ``/health`` 200 once ready, serve ``/v1`` and require the key when one is given);
    empty: the simulated vLLM, ``python -m yoyo_control.local.inference``."""

    command: tuple[Name, ...] = ()
    # an absolute path on that server (the VM appends it to http://127.0.0.1:PORT)
    metrics_path: Annotated[str, StringConstraints(pattern=r"^/([^/\s?#][^\s?#]*)?$")] = "/metrics"
    metric_running: Name = "vllm:num_requests_running"
    metric_waiting: Name = "vllm:num_requests_waiting"
    metric_finished: Name = "vllm:request_success_total"


@dataclass(frozen=True, config=_SCHEMA)
class LocalSettings:
    """The embedded stack (make run): where it keeps state and how fast local VMs boot."""

    state_dir: str = ".yoyo"
    host: str = "127.0.0.1"
    port: Annotated[Count, Field(le=65535)] = 8080
    boot_delay_s: Duration = 3.0
    heartbeat_interval_s: Duration = 2.0
    idle_shutdown_s: Duration = 120.0
    deadman_grace_s: Duration = 60.0
    tick_interval_s: Duration = 0.0  # 0: follow tick_cron; >0 overrides it (seconds)
    token_latency_s: Duration = 0.02
    model_server: ModelServerSettings = ModelServerSettings()


# The audience of the identity tokens heartbeats carry: the agent asks the metadata server
# for a token with it, the heartbeat function accepts only tokens with it.
DEFAULT_HEARTBEAT_AUDIENCE = "yoyo-heartbeat"


@dataclass(frozen=True, config=_SCHEMA)
class BatchSettings:
    """Batch inference (docs/messages.md): where objects live and how work is cut."""

    bucket: str = ""  # gcp: the Cloud Storage bucket; local: objects under state_dir
    max_file_bytes: Annotated[Count, Field(ge=1)] = 200 * 1024 * 1024  # OpenAI's limit
    max_lines: Annotated[Count, Field(ge=1)] = 50_000  # OpenAI's limit of requests per batch
    shard_lines: Annotated[Count, Field(ge=1)] = 100  # lines per work message
    concurrency: Annotated[Count, Field(ge=1)] = 8  # lines a worker runs at once
    ack_deadline_s: Annotated[Count, Field(ge=10, le=600)] = 60  # Pub/Sub's range
    # The batch controller (domain.batch.step): a cancel waits this long for running
    # shards to checkpoint what they answered; no shard moved this long (doubling) →
    # the pending shards are published again, at most max_republish times, then failed.
    cancel_grace_s: Duration = 120.0
    republish_after_s: Annotated[float, BeforeValidator(_seconds), Field(ge=60)] = 900.0
    max_republish: Count = 4


# --- pools ---------------------------------------------------------------------------

_POLICY = PoolPolicy(pool="")  # the domain's defaults: a pool setting's default is its own


@dataclass(frozen=True, config=_SCHEMA)
class FanoutSettings:
    """How much of one event runs at once (service.py): the brake and the tick.

    ``pools``: pools a tick (or a kill's reconcile) works on at once, each in its own
    transactions. Pools are independent documents, so their transactions do not
    contend: Firestore's limits are per document (a sustained write a second, and
    transactions on one document serialised: https://cloud.google.com/firestore/quotas,
    "Maximum write rate to a document"); the kill switch is only read by them. The
    bound keeps one function instance under the ~100 concurrent streams of the one
    HTTP/2 connection its Firestore client's gRPC channel uses; calls beyond that queue
    in the client (https://grpc.io/docs/guides/performance/).
    ``stops``: stop calls a kill has in flight at once (each waits for its operation).
    """

    pools: Annotated[Count, Field(ge=1, le=100)] = 16
    stops: Annotated[Count, Field(ge=1, le=1000)] = 200


@dataclass(frozen=True, config=_SCHEMA)
class InstanceSettings:
    """One ``instances`` item given as an object; missing keys take the pool's values."""

    name: Name
    zone: Name | None = None
    hourly_price_usd: Number | None = None
    provisioning: Provisioning = SPOT


def _named(item: object) -> object:
    """A plain name is the object with only that name."""
    return {"name": item} if isinstance(item, str) else item


def _unique(items: tuple[InstanceSettings, ...]) -> tuple[InstanceSettings, ...]:
    if len({i.name for i in items}) != len(items):
        raise ValueError("names must be unique")
    return items


@dataclass(frozen=True, config=_SCHEMA)
class PoolSettings:
    """``pools.<name>``: each field is the PoolPolicy field of the same name, with its
    default; ``instances`` is required; ``cycle`` is the pool's run window."""

    instances: Annotated[
        tuple[Annotated[InstanceSettings, BeforeValidator(_named)], ...],
        Field(min_length=1),
        AfterValidator(_unique),
    ]
    zone: Name = _POLICY.zone
    model: Name = _POLICY.model
    hourly_price_usd: Number = _POLICY.hourly_price_usd
    keepalive: Keepalive = _POLICY.keepalive
    idle_timeout_s: Duration = _POLICY.idle_timeout_s
    keepalive_max_s: Duration = _POLICY.keepalive_max_s
    boot_s: Duration = _POLICY.boot_s
    wait_weight: Number = _POLICY.wait_weight
    prewarm_budget_min: Annotated[Number, Field(le=1440)] = _POLICY.prewarm_budget_min
    prewarm_hold_s: Duration = _POLICY.prewarm_hold_s
    heartbeat_gap_s: Duration = _POLICY.heartbeat_gap_s
    boot_grace_s: Duration = _POLICY.boot_grace_s
    max_session_s: Duration = _POLICY.max_session_s
    lease_s: Duration = _POLICY.lease_s
    max_lease_s: Duration = _POLICY.max_lease_s
    restart_budget: Count = _POLICY.restart_budget
    restart_backoff_s: Duration = _POLICY.restart_backoff_s
    queue_threshold: Annotated[Count, Field(ge=1)] = _POLICY.queue_threshold
    action_retry_s: Duration = _POLICY.action_retry_s
    max_action_attempts: Count = _POLICY.max_action_attempts
    daily_cap_usd: Number | None = _POLICY.daily_cap_usd
    monthly_cap_usd: Number | None = _POLICY.monthly_cap_usd
    zone_backoff_s: Duration = _POLICY.zone_backoff_s
    zone_backoff_max_s: Duration = _POLICY.zone_backoff_max_s
    fallback_after_s: Duration = _POLICY.fallback_after_s
    max_num_seqs: Annotated[Count, Field(ge=1)] = _POLICY.max_num_seqs
    scale_target: Number = _POLICY.scale_target
    scale_window_s: Duration = _POLICY.scale_window_s
    scale_backlog_weight: Annotated[Number, Field(le=1)] = _POLICY.scale_backlog_weight
    cycle: Cycle = Cycle()

    def __post_init__(self) -> None:
        if self.max_lease_s < self.lease_s:
            raise ValueError(f"max_lease_s {self.max_lease_s:g} is below lease_s {self.lease_s:g}")

    def policy(self, pool: str, timezone: str, tick_s: float) -> PoolPolicy:
        """The domain's policy of pool ``pool``; ``tick_s`` comes from the tick schedule."""
        placements = tuple(map(self._placement, self.instances))
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        del values["instances"], values["cycle"]
        return PoolPolicy(
            pool=pool,
            timezone=timezone,
            tick_s=tick_s,
            instances=tuple(p.name for p in placements),
            placements=placements,
            **values,
        )

    def _placement(self, item: InstanceSettings) -> Placement:
        """Missing zone and price are the pool's (a plain name is a spot instance)."""
        price = self.hourly_price_usd if item.hourly_price_usd is None else item.hourly_price_usd
        return Placement(item.name, item.zone or self.zone, price, item.provisioning)


_POOLS = TypeAdapter(Annotated[dict[PoolName, PoolSettings], Field(min_length=1)])


# --- the document ------------------------------------------------------------------


@dataclass(frozen=True, config=_SCHEMA)
class Config:
    """The whole document. ``pools`` and ``cycles`` are derived from its ``pools``
    (parse_config); the rest is the document's own keys."""

    backend: Literal["local", "gcp"] = "local"
    project: Name = "local-project"
    region: Name = "us-central1"
    firestore_database: Name = "(default)"
    topic_prefix: Name = "yoyo"
    timezone: Name = "UTC"
    event_ttl_days: Annotated[Count, Field(ge=1, le=3650)] = 30
    tick_cron: Name = "* * * * *"
    heartbeat_audience: Annotated[Name, Field(max_length=500)] = DEFAULT_HEARTBEAT_AUDIENCE
    budget: BudgetPolicy = BudgetPolicy()
    caps: Caps = Caps()
    pools: Mapping[str, InstanceOf[PoolPolicy]] = field(default_factory=dict)
    cycles: Mapping[str, Cycle] = field(default_factory=dict)
    gateway: GatewaySettings = GatewaySettings()
    local: LocalSettings = LocalSettings()
    batch: BatchSettings = BatchSettings()
    fanout: FanoutSettings = FanoutSettings()

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}-{suffix}"

    def model_pools(self) -> dict[str, str]:
        """Model name → the pool serving it (a pool without ``model`` serves its own name)."""
        return {policy.model or name: name for name, policy in self.pools.items()}

    def policy(self, pool: str) -> PoolPolicy:
        try:
            return self.pools[pool]
        except KeyError:
            raise ConfigError(f"unknown pool {pool!r} (configured: {sorted(self.pools)})") from None


DERIVED = ("cycles",)  # Config fields that are not keys of the document

# The embedded local document (no YOYO_CONFIG): only what differs from the defaults.
DEFAULT_LOCAL: dict[str, Any] = {
    "budget": {"budget_ids": ["local-budget"]},
    "local": {"tick_interval_s": 2, "heartbeat_interval_s": 1},
    "gateway": {"poll_s": 0.25},
    "pools": {
        "default": {
            "model": "yoyo-local/simulated",
            "instances": ["yoyo-default-0"],
            "hourly_price_usd": 0.35,
            "idle_timeout_s": 30,
            "heartbeat_gap_s": 15,
            "boot_grace_s": 20,
            "lease_s": 60,
            "action_retry_s": 10,
            "restart_backoff_s": 5,
            "cycle": {"window_s": 120},
        }
    },
}


def _error(exc: ValidationError, where: str) -> ConfigError:
    """One line per mistake, each naming its key (``pools.gpu.idle_timeout_s: …``)."""
    lines: list[str] = []
    unknown: dict[str, list[str]] = {}
    errors = exc.errors()
    deeper = {e["loc"][:i] for e in errors for i in range(len(e["loc"]))}
    for error in errors:
        if error["type"] == "too_short" and error["loc"] in deeper:
            continue  # pydantic counts a list whose item failed as empty: the item says why
        loc = error["loc"]
        if loc and loc[-1] == "[key]":  # a mapping's key, e.g. a pool name
            loc = (*loc[:-2], f"key {loc[-2]!r}")
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        path = f"{where}{path}"
        if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            parent, _, key = path.rpartition(".")
            unknown.setdefault(parent or where, []).append(key)
            continue
        lines.append(f"{path}: {error['msg'].removeprefix('Value error, ')}")
    for parent, keys in unknown.items():
        lines.append(f"{parent}: unknown key(s) {sorted(keys)}")
    return ConfigError("; ".join(lines))


def parse_config(raw: Mapping[str, Any]) -> Config:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected an object, got {type(raw).__name__}")
    document = {k: v for k, v in raw.items() if k != "pools"}
    if unknown := sorted(set(document) & set(DERIVED)):
        raise ConfigError(f"config: unknown key(s) {unknown}")
    try:
        config = Config(**document)
    except ValidationError as exc:
        raise _error(exc, "config") from None
    except TypeError as exc:  # a key that is not an identifier
        raise ConfigError(f"config: {exc}") from None
    try:
        pools = _POOLS.validate_python(raw.get("pools", {}))
    except ValidationError as exc:
        raise _error(exc, "pools") from None
    served: dict[str, str] = {}
    for name, pool in pools.items():
        model = pool.model or name
        if model in served:
            raise ConfigError(f"pools.{name}.model: {model!r} is already served by {served[model]}")
        served[model] = name
    local = config.local
    tick_s = (  # how stale a decision can get: the longest time between two ticks
        local.tick_interval_s
        if config.backend == "local" and local.tick_interval_s > 0
        else schedule.longest_gap_s(schedule.parse(config.tick_cron))
    )
    return replace(
        config,
        pools={name: pool.policy(name, config.timezone, tick_s) for name, pool in pools.items()},
        cycles={name: pool.cycle for name, pool in pools.items()},
    )


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration from the environment, or the embedded local default."""
    env = os.environ if environ is None else environ
    if env.get(names.ENV_CONFIG):
        try:
            raw = json.loads(env[names.ENV_CONFIG])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{names.ENV_CONFIG} is not JSON: {exc}") from None
    elif env.get(names.ENV_CONFIG_FILE):
        path = Path(env[names.ENV_CONFIG_FILE])
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{names.ENV_CONFIG_FILE}={path}: {exc}") from None
    else:
        raw = DEFAULT_LOCAL
    config = parse_config(raw)
    backend = env.get(names.ENV_BACKEND)
    if backend:
        if backend not in ("local", "gcp"):
            raise ConfigError(f"{names.ENV_BACKEND}={backend!r} is not one of 'local', 'gcp'")
        config = replace(config, backend="gcp" if backend == "gcp" else "local")
    return config
