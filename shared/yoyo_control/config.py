"""Configuration: one JSON document (env YOYO_CONFIG or YOYO_CONFIG_FILE) → typed values.

Invariants: parsing either returns a complete, valid Config or raises ConfigError
naming the offending key; durations are seconds (numbers) or strings like "90s",
"30m", "1h30m"; unknown keys are errors (a typo must not silently change behaviour).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Cycle:
    cron: str = "0 2 * * *"
    time_zone: str = "Etc/UTC"
    window_s: float = 1800.0


@dataclass(frozen=True)
class BudgetPolicy:
    budget_ids: tuple[str, ...] = ()
    kill_fraction: float = 1.0
    kill_thresholds: tuple[float, ...] = (1.0,)
    forecast_kill: bool = False


@dataclass(frozen=True)
class Caps:
    daily_usd: float | None = None
    monthly_usd: float | None = None


@dataclass(frozen=True)
class GatewaySettings:
    """The OpenAI-compatible gateway (shared/yoyo_control/gateway/)."""

    hold_s: float = 600.0  # how long a request at a cold pool is held for a VM to be ready
    max_held: int = 200  # requests held at once by one gateway instance (429 beyond)
    max_body_bytes: int = 8 * 1024 * 1024  # a larger request body is refused (413)
    max_file_bytes: int = 32 * 1024 * 1024  # a larger upload (POST /v1/files) is refused (413)
    poll_s: float = 1.0  # longest pause between two store reads while requests are held
    upstream_timeout_s: float = 600.0  # a VM that sends nothing for this long is lost


@dataclass(frozen=True)
class LocalSettings:
    """The embedded stack (make run): where it keeps state and how fast local VMs boot."""

    state_dir: str = ".yoyo"
    host: str = "127.0.0.1"
    port: int = 8080
    boot_delay_s: float = 3.0
    heartbeat_interval_s: float = 2.0
    idle_shutdown_s: float = 120.0
    deadman_grace_s: float = 60.0
    tick_interval_s: float = 0.0  # 0: follow tick_cron; >0 overrides it (seconds)
    token_latency_s: float = 0.02


# The audience of the identity tokens heartbeats carry: the agent asks the metadata server
# for a token with it, the heartbeat function accepts only tokens with it.
DEFAULT_HEARTBEAT_AUDIENCE = "yoyo-heartbeat"


@dataclass(frozen=True)
class BatchSettings:
    """Batch inference (docs/messages.md): where objects live and how work is cut."""

    bucket: str = ""  # gcp: the Cloud Storage bucket; local: objects under state_dir
    max_file_bytes: int = 200 * 1024 * 1024  # OpenAI's limit for a batch input file
    max_lines: int = 50_000  # OpenAI's limit of requests per batch
    shard_lines: int = 100  # lines per work message
    concurrency: int = 8  # lines a worker runs at once against its inference server
    ack_deadline_s: int = 60  # a dead worker's shard is redelivered after this (10..600)


@dataclass(frozen=True)
class Config:
    backend: str = "local"
    project: str = "local-project"
    region: str = "us-central1"
    firestore_database: str = "(default)"
    topic_prefix: str = "yoyo"
    timezone: str = "UTC"
    event_ttl_days: int = 30
    tick_cron: str = "* * * * *"
    heartbeat_audience: str = DEFAULT_HEARTBEAT_AUDIENCE
    budget: BudgetPolicy = BudgetPolicy()
    caps: Caps = Caps()
    pools: Mapping[str, PoolPolicy] = field(default_factory=dict)
    cycles: Mapping[str, Cycle] = field(default_factory=dict)
    gateway: GatewaySettings = GatewaySettings()
    local: LocalSettings = LocalSettings()
    batch: BatchSettings = BatchSettings()

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


DEFAULT_LOCAL: dict[str, Any] = {
    "backend": "local",
    "project": "local-project",
    "tick_cron": "* * * * *",
    "budget": {"budget_ids": ["local-budget"], "kill_fraction": 1.0},
    "local": {"tick_interval_s": 2, "boot_delay_s": 3, "heartbeat_interval_s": 1},
    "gateway": {"poll_s": 0.25},
    "pools": {
        "default": {
            "zone": "local",
            "model": "yoyo-local/simulated",
            "instances": ["yoyo-default-0"],
            "hourly_price_usd": 0.35,
            "idle_timeout_s": 30,
            "heartbeat_gap_s": 15,
            "boot_grace_s": 20,
            "lease_s": 60,
            "action_retry_s": 10,
            "restart_backoff_s": 5,
            "cycle": {"cron": "0 2 * * *", "window_s": 120},
        }
    },
}

_DURATION_FIELDS = {f.name for f in fields(PoolPolicy) if f.name.endswith("_s")}


def _only_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(raw).__name__}")
    return raw


def _number(raw: object, where: str, minimum: float = 0.0) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < minimum:
        raise ConfigError(f"{where}: expected a number >= {minimum}, got {raw!r}")
    return float(raw)


def _optional_money(raw: object, where: str) -> float | None:
    return None if raw is None else _number(raw, where)


def _placement(item: object, where: str, pool: Mapping[str, Any]) -> Placement:
    """One ``instances`` item: a name (the pool's zone and price, spot) or an object
    ``{"name", "zone", "hourly_price_usd", "provisioning"}`` whose missing keys take the
    pool's values."""
    zone = pool.get("zone", PoolPolicy.zone)
    price = pool.get("hourly_price_usd", PoolPolicy.hourly_price_usd)
    if isinstance(item, str) and item:
        raw: Mapping[str, Any] = {"name": item}
    elif isinstance(item, Mapping):
        raw = item
        _only_keys(raw, {"name", "zone", "hourly_price_usd", "provisioning"}, where)
    else:
        raise ConfigError(f"{where}: expected an instance name or an object with a name")
    name, zone = raw.get("name"), raw.get("zone", zone)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: expected an instance name")
    if not isinstance(zone, str) or not zone:
        raise ConfigError(f"{where}.zone: expected a zone name")
    provisioning = raw.get("provisioning", SPOT)
    if provisioning not in PROVISIONING:
        raise ConfigError(f"{where}.provisioning: {provisioning!r} is not one of {PROVISIONING}")
    price = _number(raw.get("hourly_price_usd", price), f"{where}.hourly_price_usd")
    return Placement(name, zone, price, provisioning)


def _pool(name: str, raw: Mapping[str, Any], timezone: str) -> tuple[PoolPolicy, Cycle]:
    where = f"pools.{name}"
    derived = {"pool", "timezone", "tick_s", "placements"}
    allowed = {f.name for f in fields(PoolPolicy)} - derived | {"cycle"}
    _only_keys(raw, allowed, where)
    kwargs: dict[str, Any] = {"pool": name, "timezone": timezone}
    for key, value in raw.items():
        if key == "cycle":
            continue
        if key in _DURATION_FIELDS:
            kwargs[key] = parse_duration(value, f"{where}.{key}")
        elif key == "instances":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}.instances: expected a non-empty list")
            kwargs["placements"] = tuple(
                _placement(item, f"{where}.instances[{i}]", raw) for i, item in enumerate(value)
            )
            kwargs[key] = tuple(p.name for p in kwargs["placements"])
            if len(set(kwargs[key])) != len(kwargs[key]):
                raise ConfigError(f"{where}.instances: names must be unique")
        elif key in ("zone", "model"):
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise ConfigError(f"{where}.{key}: expected a non-empty name")
            kwargs[key] = value.strip()
        elif key == "keepalive":
            if value not in KINDS:
                raise ConfigError(f"{where}.keepalive: {value!r} is not one of {list(KINDS)}")
            kwargs[key] = value
        elif key in ("daily_cap_usd", "monthly_cap_usd"):
            kwargs[key] = _optional_money(value, f"{where}.{key}")
        elif key in ("restart_budget", "queue_threshold", "max_action_attempts"):
            kwargs[key] = int(
                _number(value, f"{where}.{key}", 0 if key != "queue_threshold" else 1)
            )
        else:
            kwargs[key] = _number(value, f"{where}.{key}")
    if "instances" not in kwargs:
        raise ConfigError(f"{where}.instances: required")
    cycle_raw = _mapping(raw.get("cycle", {}), f"{where}.cycle")
    _only_keys(cycle_raw, {"cron", "time_zone", "window_s"}, f"{where}.cycle")
    cycle = Cycle(
        cron=str(cycle_raw.get("cron", Cycle.cron)),
        time_zone=str(cycle_raw.get("time_zone", Cycle.time_zone)),
        window_s=parse_duration(cycle_raw.get("window_s", Cycle.window_s), f"{where}.cycle"),
    )
    return PoolPolicy(**kwargs), cycle


def _audience(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 500:
        raise ConfigError("heartbeat_audience: expected a non-empty string (a URL or a name)")
    return raw.strip()


def _gateway(raw: Mapping[str, Any]) -> GatewaySettings:
    _only_keys(raw, {f.name for f in fields(GatewaySettings)}, "gateway")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"gateway.{key}"
        if key.endswith("_s"):
            kwargs[key] = parse_duration(value, where)
        else:
            kwargs[key] = int(_number(value, where, 1))
    settings = GatewaySettings(**kwargs)
    if settings.poll_s <= 0 or settings.upstream_timeout_s <= 0:
        raise ConfigError("gateway: poll_s and upstream_timeout_s must be > 0")
    return settings


def parse_config(raw: Mapping[str, Any]) -> Config:
    raw = _mapping(raw, "config")
    allowed = {f.name for f in fields(Config)} - {"cycles"}
    _only_keys(raw, allowed, "config")
    backend = raw.get("backend", "local")
    if backend not in ("local", "gcp"):
        raise ConfigError(f"config.backend: {backend!r} is not one of 'local', 'gcp'")
    timezone = str(raw.get("timezone", "UTC"))
    budget_raw = _mapping(raw.get("budget", {}), "budget")
    _only_keys(budget_raw, {f.name for f in fields(BudgetPolicy)}, "budget")
    budget = BudgetPolicy(
        budget_ids=tuple(str(b) for b in budget_raw.get("budget_ids", ())),
        kill_fraction=_number(budget_raw.get("kill_fraction", 1.0), "budget.kill_fraction"),
        kill_thresholds=tuple(
            _number(t, "budget.kill_thresholds") for t in budget_raw.get("kill_thresholds", [1.0])
        ),
        forecast_kill=bool(budget_raw.get("forecast_kill", False)),
    )
    caps_raw = _mapping(raw.get("caps", {}), "caps")
    _only_keys(caps_raw, {"daily_usd", "monthly_usd"}, "caps")
    caps = Caps(
        daily_usd=_optional_money(caps_raw.get("daily_usd"), "caps.daily_usd"),
        monthly_usd=_optional_money(caps_raw.get("monthly_usd"), "caps.monthly_usd"),
    )
    gateway = _gateway(_mapping(raw.get("gateway", {}), "gateway"))
    local_raw = _mapping(raw.get("local", {}), "local")
    _only_keys(local_raw, {f.name for f in fields(LocalSettings)}, "local")
    local = LocalSettings(**{k: v for k, v in local_raw.items()})
    batch = _batch(_mapping(raw.get("batch", {}), "batch"))
    pools_raw = _mapping(raw.get("pools", {}), "pools")
    if not pools_raw:
        raise ConfigError("pools: at least one pool must be configured")
    tick_cron = str(raw.get("tick_cron", "* * * * *"))
    tick_s = (
        float(local.tick_interval_s)
        if backend == "local" and local.tick_interval_s > 0
        else schedule.longest_gap_s(schedule.parse(tick_cron))
    )
    pools, cycles = {}, {}
    for name, pool_raw in pools_raw.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
            raise ConfigError(f"pools: {name!r} is not a valid pool name ([a-z][a-z0-9-]*)")
        policy, cycles[name] = _pool(name, _mapping(pool_raw, f"pools.{name}"), timezone)
        pools[name] = replace(policy, tick_s=tick_s)  # how stale a decision can get
    served: dict[str, str] = {}
    for name, policy in pools.items():
        model = policy.model or name
        if model in served:
            raise ConfigError(f"pools.{name}.model: {model!r} is already served by {served[model]}")
        served[model] = name
    return Config(
        backend=backend,
        project=str(raw.get("project", "local-project")),
        region=str(raw.get("region", "us-central1")),
        firestore_database=str(raw.get("firestore_database", "(default)")),
        topic_prefix=str(raw.get("topic_prefix", "yoyo")),
        timezone=timezone,
        event_ttl_days=int(_number(raw.get("event_ttl_days", 30), "event_ttl_days", 1)),
        tick_cron=tick_cron,
        heartbeat_audience=_audience(raw.get("heartbeat_audience", DEFAULT_HEARTBEAT_AUDIENCE)),
        budget=budget,
        caps=caps,
        pools=pools,
        cycles=cycles,
        gateway=gateway,
        local=local,
        batch=batch,
    )


def _batch(raw: Mapping[str, Any]) -> BatchSettings:
    _only_keys(raw, {f.name for f in fields(BatchSettings)}, "batch")
    bucket = raw.get("bucket", "")
    if not isinstance(bucket, str):
        raise ConfigError(f"batch.bucket: expected a bucket name, got {bucket!r}")
    counts = {
        key: int(_number(raw[key], f"batch.{key}", 1))
        for key in ("max_file_bytes", "max_lines", "shard_lines", "concurrency", "ack_deadline_s")
        if key in raw
    }
    if not 10 <= counts.get("ack_deadline_s", 60) <= 600:
        raise ConfigError("batch.ack_deadline_s: must be within 10..600 (Pub/Sub's range)")
    return BatchSettings(bucket=bucket, **counts)


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
        config = Config(
            **{**{f.name: getattr(config, f.name) for f in fields(config)}, "backend": backend}
        )
    return config
