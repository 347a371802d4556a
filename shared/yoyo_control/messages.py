"""Every event source's message → a validated Fact (all decoding and validation lives here).

Invariants:
- Pure: no I/O, no clock, no store. The same delivery always decodes to the same fact.
- Each decoder returns a complete Fact or raises ``InvalidMessage`` whose text says which
  field was wrong and how; ``ConfigError`` never escapes (an unknown pool is invalid).
- Size is checked before parsing: message data above ``MAX_DATA_BYTES`` (decoded) is
  refused without being decoded or parsed.
- The message id is the Pub/Sub ``messageId`` (else the CloudEvent ``id``), unique only
  within its source: ``decode`` stamps the source on the fact (``origin``); a fact's
  ``at`` is the publish time (else the CloudEvent ``time``). Ids are restricted to a
  safe alphabet so they can key documents in any store.
- Every text a decoder accepts is storable in every store: the one unstorable kind of
  code point a JSON text can carry, a lone UTF-16 surrogate (``"\ud83d"``, what
  JavaScript's JSON.stringify emits for a string cut inside an emoji), becomes U+FFFD
  in every key and value (``storable``) before any field is read; NUL, right-to-left
  marks and other code points are stored as they are.
- Human- and producer-written payloads (cycle, control, producer depth) refuse unknown
  keys (a typo must not silently change behaviour); Google- and agent-written payloads
  (budget, incident, heartbeat) ignore keys they do not use (formats grow).
- A kill is never refused for what it says: any ``reason`` and ``by`` (missing, empty,
  too long, not text) and unknown keys still give a KillRequested (the text rendered,
  truncated or defaulted), because the kill switch wins; likewise a budget
  notification's descriptive fields (display name, currency, interval start).

Message formats: docs/messages.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from . import names
from .config import Config, Cycle, parse_duration
from .domain.facts import (
    OPERATOR,
    BudgetNotified,
    ColdStartReported,
    ExtendRequested,
    Fact,
    HeartbeatReceived,
    KillRequested,
    KillSwitchWritten,
    LoadReported,
    QueueDepthObserved,
    RunRequested,
    StopRequested,
    Tick,
    UnkillRequested,
)
from .domain.killswitch import kill_from_fields
from .domain.model import Heartbeat, Holder, KillSwitch, PoolPolicy
from .errors import ConfigError, InvalidMessage

MAX_DATA_BYTES = 64 * 1024
_MAX_B64_CHARS = 4 * ((MAX_DATA_BYTES + 2) // 3)
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads has paired the valid ones
_MAX_EPOCH = 4_102_444_800.0  # 2100-01-01: anything later is not a real time
_MAX_COUNT = 1_000_000_000
# A heartbeat may not claim to be sent later than this after its publish time (a VM with
# a clock far ahead would otherwise make every later heartbeat look stale).
MAX_CLOCK_SKEW_S = 300.0
SOURCE_KILL_SWITCH = "kill_switch"


@dataclass(frozen=True)
class PubSubMessage:
    """One Pub/Sub message, unwrapped from its CloudEvent (data already base64-decoded)."""

    data: bytes
    message_id: str
    publish_time: float
    attributes: Mapping[str, str] = field(default_factory=dict)


# --- primitives ----------------------------------------------------------------------


def _fail(reason: str) -> InvalidMessage:
    return InvalidMessage(reason if len(reason) <= 300 else reason[:297] + "...")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def storable(value: Any) -> Any:
    """``value`` (decoded JSON) with every lone surrogate, in keys and strings, as U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def safe_id(value: object) -> str:
    """``value`` as a message id when it is a safe, non-empty id; else ""."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if isinstance(value, str) and _SAFE_ID.fullmatch(value):
        return value
    return ""


def parse_time(value: object, what: str) -> float:
    """Seconds since the epoch from epoch seconds (number or digits) or an RFC 3339 string.

    A string without an offset is taken as UTC.
    """
    if isinstance(value, bool):
        raise _fail(f"{what}: expected a time, got {_show(value)}")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1:] in "zZ":
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _fail(f"{what}: {_show(value)} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    else:
        raise _fail(f"{what}: expected a time, got {_show(value)}")
    if not (0.0 <= seconds <= _MAX_EPOCH):
        raise _fail(f"{what}: {_show(value)} is out of range")
    return seconds


def _duration(value: object, what: str) -> float:
    try:
        seconds = parse_duration(value, what)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if seconds < 1:
        raise _fail(f"{what}: must be at least 1s, got {_show(value)}")
    return seconds


def duration_text(seconds: float) -> str:
    """A duration as messages carry it (``"for"``, ``"window"``): ``30m``, or ``45s``."""
    return f"{int(seconds // 60)}m" if seconds % 60 == 0 else f"{int(seconds)}s"


def _text(
    raw: Mapping[str, Any], key: str, what: str, *, default: str | None = None, limit: int = 200
) -> str:
    value = raw.get(key)
    if value is None:
        if default is None:
            raise _fail(f"{what}: {key!r} is required")
        return default
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{what}: {key!r} must be a non-empty string, got {_show(value)}")
    if len(value) > limit:
        raise _fail(f"{what}: {key!r} is longer than {limit} characters")
    return value.strip()


def _number(value: object, what: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(f"{what}: {_show(value)} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{what}: expected a number, got {_show(value)}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise _fail(f"{what}: expected a finite number >= 0, got {_show(value)}")
    return number


def _count(value: object, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{what}: expected a whole number, got {_show(value)}")
    if not 0 <= value <= _MAX_COUNT:
        raise _fail(f"{what}: {value} is out of range 0..{_MAX_COUNT}")
    return value


def _only_keys(raw: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise _fail(f"{what}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def json_payload(message: PubSubMessage, what: str) -> Mapping[str, Any]:
    """The message data as a JSON object (UTF-8, no NaN/Infinity)."""
    if not message.data.strip():
        raise _fail(f"{what}: empty message (expected a JSON object)")
    try:
        text = message.data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what}: message data is not UTF-8 text") from None
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"{what}: message data is not JSON: {exc}") from None
    return _object(storable(payload), what)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _pool(raw: Mapping[str, Any], key: str, what: str, config: Config) -> PoolPolicy:
    name = _text(raw, key, what, limit=64)
    try:
        return config.policy(name)
    except ConfigError as exc:
        raise _fail(f"{what}: {exc}") from None


# --- the Pub/Sub envelope ------------------------------------------------------------


def unwrap_pubsub(event: Mapping[str, Any]) -> PubSubMessage:
    """The Pub/Sub message inside a ``messagePublished`` CloudEvent (attributes + "data")."""
    data = event.get("data")
    if isinstance(data, (bytes, bytearray, str)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise _fail("envelope: CloudEvent data is not a Pub/Sub message (not JSON)") from None
    envelope = _object(data, "envelope: CloudEvent data")
    message = _object(envelope.get("message"), "envelope: data.message")
    message_id = safe_id(message.get("messageId")) or safe_id(message.get("message_id"))
    message_id = message_id or safe_id(event.get("id"))
    if not message_id:
        raw_id = message.get("messageId", event.get("id"))
        raise _fail(f"envelope: no usable message id (messageId or CloudEvent id): {_show(raw_id)}")
    published = message.get("publishTime") or message.get("publish_time") or event.get("time")
    if published is None:
        raise _fail("envelope: no publishTime and no CloudEvent time")
    publish_time = parse_time(published, "envelope: publishTime")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise _fail("envelope: message.attributes must map strings to strings")
    attributes = storable(attributes)
    encoded = message.get("data")
    if encoded is None:
        encoded = ""
    if not isinstance(encoded, str):
        raise _fail(f"envelope: message.data must be a base64 string, got {_show(encoded)}")
    if len(encoded) > _MAX_B64_CHARS:
        raise _fail(f"message data is larger than {MAX_DATA_BYTES} bytes")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("envelope: message.data is not valid base64") from None
    if len(raw) > MAX_DATA_BYTES:
        raise _fail(f"message data is larger than {MAX_DATA_BYTES} bytes")
    return PubSubMessage(raw, message_id, publish_time, dict(attributes))


def event_message_id(event: Mapping[str, Any]) -> str:
    """The best message id for logging and rejecting ``event`` (never raises; "" if none)."""
    data = event.get("data")
    message = data.get("message") if isinstance(data, Mapping) else None
    if isinstance(message, Mapping):
        for key in ("messageId", "message_id"):
            found = safe_id(message.get(key))
            if found:
                return found
    return safe_id(event.get("id"))


# --- cycle, tick, queue --------------------------------------------------------------


def decode_cycle(message: PubSubMessage, config: Config) -> RunRequested:
    """``{"pool": ..., "window": "30m"}`` (window optional: the pool's cycle window)."""
    what = "cycle"
    raw = json_payload(message, what)
    _only_keys(raw, {"pool", "window"}, what)
    policy = _pool(raw, "pool", what, config)
    if raw.get("window") is None:
        window = config.cycles.get(policy.pool, Cycle()).window_s
    else:
        window = _duration(raw["window"], f"{what}: window")
    return RunRequested(
        message.message_id,
        message.publish_time,
        policy.pool,
        holder=Holder.CYCLE,
        reason=f"scheduled cycle ({window:g}s window)",
        duration_s=window,
    )


def decode_tick(message: PubSubMessage, config: Config) -> Tick:
    """Any body (Cloud Scheduler sends ``{}``): only the id and time matter."""
    return Tick(message.message_id, message.publish_time)


QueueFact = QueueDepthObserved | LoadReported | RunRequested | ColdStartReported
WAKE_PREFIX = "gateway-wake-"  # routing.wake_id's ids: never a Pub/Sub id (digits only)
WAKE_REASON = "gateway: request waiting"
COLD_START_MARKS = (
    "arrived_at",
    "wake_at",
    "running_at",
    "ready_at",
    "forwarded_at",
    "first_byte_at",
)
_MAX_HELD_S = 86_400.0


def decode_queue(message: PubSubMessage, config: Config) -> QueueFact:
    """A Cloud Monitoring incident (version 1.2), a producer's ``{"pool", "depth"}``, or
    the gateway's: its load ``{"pool", "in_flight", "held"}`` (domain/scaling.py), a
    wake ``{"pool", "wake"}`` or a cold start ``{"pool", "cold_start": {...}}``."""
    raw = json_payload(message, "queue")
    if "incident" in raw:
        return _incident(message, raw, config)
    if "wake" in raw:
        return _wake(message, raw, config)
    if "cold_start" in raw:
        return _cold_start(message, raw, config)
    if "in_flight" in raw or "held" in raw:
        return _load(message, raw, config)
    what = "queue depth"
    _only_keys(raw, {"pool", "depth"}, what)
    policy = _pool(raw, "pool", what, config)
    if "depth" not in raw:
        raise _fail(f"{what}: 'depth' is required")
    depth = _count(raw["depth"], f"{what}: depth")
    return QueueDepthObserved(
        message.message_id, message.publish_time, policy.pool, depth, "producer"
    )


def _load(message: PubSubMessage, raw: Mapping[str, Any], config: Config) -> LoadReported:
    what = "load"
    _only_keys(raw, {"pool", "in_flight", "held"}, what)
    policy = _pool(raw, "pool", what, config)
    in_flight = _count(raw.get("in_flight", 0), f"{what}: in_flight")
    held = _count(raw.get("held", 0), f"{what}: held")
    return LoadReported(message.message_id, message.publish_time, policy.pool, in_flight, held)


def _wake(message: PubSubMessage, raw: Mapping[str, Any], config: Config) -> RunRequested:
    """The gateway's wake: a lease request (holder wake) whose message id is the wake id
    (routing.wake_id), not Pub/Sub's: every gateway instance that reads the same pool
    state publishes the same id, so the control plane records one wake (the fact is
    recorded once per origin and id). Its time is the publish time."""
    what = "wake"
    _only_keys(raw, {"pool", "wake"}, what)
    policy = _pool(raw, "pool", what, config)
    wake = raw.get("wake")
    wake_id = safe_id(wake) if isinstance(wake, str) else ""
    prefix = f"{WAKE_PREFIX}{policy.pool}-"
    if not wake_id.startswith(prefix) or len(wake_id) == len(prefix):
        raise _fail(
            f"{what}: 'wake' must be an id starting with {prefix!r} (at most 128 of "
            f"A-Z a-z 0-9 . _ : @ + = -), got {_show(wake)}"
        )
    return RunRequested(
        wake_id, message.publish_time, policy.pool, Holder.WAKE, WAKE_REASON, policy.lease_s
    )


def _cold_start(
    message: PubSubMessage, raw: Mapping[str, Any], config: Config
) -> ColdStartReported:
    """``{"pool", "cold_start": {"epoch", "instance", "held_s", "phases": {mark: time or
    null}}}``: what the gateway measured (gateway/coldstarts.py names the marks)."""
    what = "cold start"
    _only_keys(raw, {"pool", "cold_start"}, what)
    policy = _pool(raw, "pool", what, config)
    body = _object(raw.get("cold_start"), f"{what}: cold_start")
    _only_keys(body, {"epoch", "instance", "held_s", "phases"}, f"{what}: cold_start")
    instance = _text(body, "instance", what, limit=63)
    if instance not in policy.instances:
        raise _fail(f"{what}: instance {instance!r} is not in pool {policy.pool!r}")
    for key in ("epoch", "held_s"):
        if key not in body:
            raise _fail(f"{what}: {key!r} is required")
    held = _number(body["held_s"], f"{what}: held_s")
    if held > _MAX_HELD_S:
        raise _fail(f"{what}: held_s {_show(body['held_s'])} is more than a day")
    marks = _object(body.get("phases", {}), f"{what}: phases")
    _only_keys(marks, set(COLD_START_MARKS), f"{what}: phases")
    phases = {
        key: None if marks.get(key) is None else parse_time(marks[key], f"{what}: {key}")
        for key in COLD_START_MARKS
    }
    return ColdStartReported(
        message.message_id,
        message.publish_time,
        policy.pool,
        epoch=_count(body["epoch"], f"{what}: epoch"),
        instance=instance,
        held_s=held,
        phases=MappingProxyType(phases),
    )


def _incident(message: PubSubMessage, raw: Mapping[str, Any], config: Config) -> QueueDepthObserved:
    what = "monitoring incident"
    incident = _object(raw.get("incident"), f"{what}: incident")
    state = incident.get("state")
    if not isinstance(state, str) or state.lower() not in ("open", "closed"):
        raise _fail(f"{what}: state must be 'open' or 'closed', got {_show(state)}")
    labels: Mapping[str, Any] = {}
    for where in (incident.get("policy_user_labels"), _meta_labels(incident)):
        if isinstance(where, Mapping) and where.get("yoyo_pool") is not None:
            labels = where
            break
    if not labels:
        raise _fail(f"{what}: no yoyo_pool in policy_user_labels or metadata.user_labels")
    policy = _pool(labels, "yoyo_pool", what, config)
    depth = 0
    if state.lower() == "open":
        depth = policy.queue_threshold
        observed = incident.get("observed_value")
        if isinstance(observed, (str, int, float)) and not isinstance(observed, bool):
            try:
                value = float(observed)
            except ValueError:
                value = math.nan
            if math.isfinite(value) and value >= 0:
                depth = max(depth, min(int(value), _MAX_COUNT))
    incident_id = safe_id(incident.get("incident_id"))
    source = f"monitoring:{incident_id}" if incident_id else "monitoring"
    return QueueDepthObserved(message.message_id, message.publish_time, policy.pool, depth, source)


def _meta_labels(incident: Mapping[str, Any]) -> object:
    metadata = incident.get("metadata")
    return metadata.get("user_labels") if isinstance(metadata, Mapping) else None


# --- budget --------------------------------------------------------------------------


def decode_budget(message: PubSubMessage, config: Config) -> BudgetNotified:
    """A Cloud Billing budget notification (schemaVersion 1.0): data + attributes."""
    what = "budget notification"
    budget_id = message.attributes.get("budgetId", "").strip()
    if not budget_id:
        raise _fail(f"{what}: attribute 'budgetId' is missing")
    raw = json_payload(message, what)
    for key in ("costAmount", "budgetAmount"):
        if key not in raw:
            raise _fail(f"{what}: {key!r} is required")
    thresholds = {}
    for key in ("alertThresholdExceeded", "forecastThresholdExceeded"):
        value = raw.get(key)
        thresholds[key] = None if value is None else _number(value, f"{what}: {key}")
    # Display name, currency and interval only describe it: never a reason to lose a kill.
    interval = _any_text(raw.get("costIntervalStart"), "", 40)
    return BudgetNotified(
        message.message_id,
        message.publish_time,
        budget_id=budget_id[:200],
        display_name=_any_text(raw.get("budgetDisplayName"), "", 200),
        cost=_number(raw["costAmount"], f"{what}: costAmount"),
        amount=_number(raw["budgetAmount"], f"{what}: budgetAmount"),
        currency=_any_text(raw.get("currencyCode"), "", 8),
        alert_threshold=thresholds["alertThresholdExceeded"],
        forecast_threshold=thresholds["forecastThresholdExceeded"],
        interval_start=interval,
    )


# --- heartbeat -----------------------------------------------------------------------


# The inference server's internal address a heartbeat announces (optional): host:port.
_ADDRESS = re.compile(r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}")


def decode_heartbeat(message: PubSubMessage, config: Config) -> HeartbeatReceived:
    """``{pool, instance, boot_id, sent_at, busy, ready, running, waiting, last_request_at,
    address}`` (``address``, host:port of the inference server, is optional)."""
    what = "heartbeat"
    raw = json_payload(message, what)
    policy = _pool(raw, "pool", what, config)
    instance = _text(raw, "instance", what, limit=63)
    if instance not in policy.instances:
        raise _fail(f"{what}: instance {instance!r} is not in pool {policy.pool!r}")
    if "sent_at" not in raw:
        raise _fail(f"{what}: 'sent_at' is required")
    sent_at = parse_time(raw["sent_at"], f"{what}: sent_at")
    if sent_at > message.publish_time + MAX_CLOCK_SKEW_S:
        raise _fail(
            f"{what}: sent_at is {sent_at - message.publish_time:.0f}s after its publish time "
            f"(the VM's clock is wrong; at most {MAX_CLOCK_SKEW_S:.0f}s is accepted)"
        )
    busy, ready = raw.get("busy", False), raw.get("ready", True)
    for key, flag in (("busy", busy), ("ready", ready)):
        if not isinstance(flag, bool):
            raise _fail(f"{what}: {key} must be true or false, got {_show(flag)}")
    last = raw.get("last_request_at")
    address = raw.get("address")
    if address is not None:
        address = _text(raw, "address", what, limit=261)
        if not _ADDRESS.fullmatch(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
            raise _fail(f"{what}: address must be host:port, got {_show(address)}")
    heartbeat = Heartbeat(
        instance=instance,
        boot_id=_text(raw, "boot_id", what, limit=128),
        sent_at=sent_at,
        received_at=message.publish_time,
        busy=busy,
        ready=ready,
        running=_count(raw.get("running", 0), f"{what}: running"),
        waiting=_count(raw.get("waiting", 0), f"{what}: waiting"),
        # Never later than the publish time: a VM's word about the future (2099) would
        # keep its pool from ever looking idle.
        last_request_at=(
            None
            if last is None
            else min(parse_time(last, f"{what}: last_request_at"), message.publish_time)
        ),
        address=address,
    )
    return HeartbeatReceived(message.message_id, message.publish_time, policy.pool, heartbeat)


# --- control -------------------------------------------------------------------------

_COMMAND_KEYS = {
    "kill": {"reason", "by"},
    "unkill": {"by"},
    "start": {"pool", "for", "by", "reason"},
    "stop": {"pool", "by", "reason"},
    "extend": {"pool", "for", "by"},
}


def decode_control(message: PubSubMessage, config: Config) -> Fact:
    """An operator command: kill, unkill, start, stop, extend (docs/messages.md)."""
    raw = json_payload(message, "control")
    command = raw.get("command")
    if not isinstance(command, str) or command.strip().lower() not in _COMMAND_KEYS:
        raise _fail(f"control: unknown command {_show(command)}; one of {sorted(_COMMAND_KEYS)}")
    command = command.strip().lower()
    what = f"control {command}"
    mid, at = message.message_id, message.publish_time
    if command == "kill":  # never refused: the kill switch wins against any input
        by = _any_text(raw.get("by"), "operator", 100)
        reason = _any_text(raw.get("reason"), f"engaged by {by}", 500)
        return KillRequested(mid, at, reason=reason, by=by)
    _only_keys(raw, {"command", *_COMMAND_KEYS[command]}, what)
    by = _text(raw, "by", what, default="operator", limit=100)
    if command == "unkill":
        return UnkillRequested(mid, at, by=by)
    policy = _pool(raw, "pool", what, config)
    if command == "stop":
        reason = _text(raw, "reason", what, default=f"stopped by {by}", limit=500)
        return StopRequested(mid, at, policy.pool, by=by, reason=reason)
    duration = policy.lease_s if raw.get("for") is None else _duration(raw["for"], f"{what}: for")
    if command == "extend":
        return ExtendRequested(mid, at, policy.pool, by=by, duration_s=duration)
    reason = _text(raw, "reason", what, default=f"started by {by}", limit=500)
    return RunRequested(mid, at, policy.pool, holder=OPERATOR, reason=reason, duration_s=duration)


def _any_text(value: object, default: str, limit: int) -> str:
    """Any JSON value as text of at most ``limit`` characters (``default`` when blank)."""
    if value is not None and not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    text = (value or "").strip()
    if not text:
        return default
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- kill switch document written ----------------------------------------------------


def decode_kill_switch_written(event: Mapping[str, Any]) -> KillSwitchWritten:
    """A Firestore ``document.v1.written`` CloudEvent for the kill switch document.

    ``data`` is a serialised ``google.events.cloud.firestore.v1.DocumentEventData``
    (``datacontenttype`` application/protobuf, what Firestore triggers send) or its JSON
    form (a dict, or text with application/json or no content type). The content type
    decides, never the first byte: a protobuf may start with "{".
    """
    what = "kill switch write"
    message_id = safe_id(event.get("id"))
    if not message_id:
        raise _fail(f"{what}: no usable CloudEvent id")
    if event.get("time") is None:
        raise _fail(f"{what}: no CloudEvent time")
    at = parse_time(event.get("time"), f"{what}: time")
    written = _document_event(event.get("data"), event.get("datacontenttype"), what)
    document = written.value if written.HasField("value") else None
    names_seen = [d.name for d in (written.value, written.old_value) if d.name]
    if not names_seen:  # the data names no document: Eventarc's subject does
        names_seen = [str(event.get("subject") or event.get("document") or "")]
    path = names.KILL_SWITCH_PATH
    if not any(n == path or n.endswith(f"/{path}") for n in names_seen):
        raise _fail(f"{what}: not the {path} document: {_show(names_seen)}")
    if document is None:  # deleted: the switch reads as not engaged
        return KillSwitchWritten(message_id, at, KillSwitch())
    fields = {key: _plain(value) for key, value in document.fields.items()}
    return KillSwitchWritten(message_id, at, kill_from_fields(fields))


def _plain(value: Any, depth: int = 0) -> Any:
    """A Firestore ``Value`` (protobuf) as a plain Python value; timestamps as seconds."""
    kind = value.WhichOneof("value_type")
    if kind in (None, "null_value"):
        return None
    if kind == "timestamp_value":
        return float(value.timestamp_value.seconds) + value.timestamp_value.nanos / 1e9
    if kind == "map_value":
        if depth > 20:
            return {}
        return {k: _plain(v, depth + 1) for k, v in value.map_value.fields.items()}
    if kind == "array_value":
        return [] if depth > 20 else [_plain(v, depth + 1) for v in value.array_value.values]
    if kind in ("geo_point_value", "bytes_value"):
        return str(getattr(value, kind))
    return getattr(value, kind)


_PROTOBUF_TYPES = frozenset({"application/protobuf", "application/x-protobuf"})
_JSON_TYPES = frozenset({"application/json", ""})


def _media_type(content_type: object) -> str:
    """``application/json`` of ``"Application/JSON; charset=utf-8"``; "" when absent."""
    if content_type is None:
        return ""
    return str(content_type).split(";", 1)[0].strip().lower()


def _document_event(data: object, content_type: object, what: str) -> Any:
    from google.events.cloud.firestore import DocumentEventData
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    pb_class = DocumentEventData.pb()
    media_type = _media_type(content_type)
    if media_type not in _PROTOBUF_TYPES | _JSON_TYPES:
        raise _fail(f"{what}: unsupported content type {_show(media_type)}")
    if data is None:
        raise _fail(f"{what}: no event data")
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_DATA_BYTES:
            raise _fail(f"{what}: event data is larger than {MAX_DATA_BYTES} bytes")
        if media_type in _PROTOBUF_TYPES:
            try:
                return pb_class.FromString(bytes(data))
            except (DecodeError, ValueError, RecursionError):
                raise _fail(f"{what}: data is not a DocumentEventData protobuf") from None
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise _fail(f"{what}: data is not DocumentEventData JSON") from None
    if not isinstance(data, Mapping):
        raise _fail(f"{what}: expected DocumentEventData, got {type(data).__name__}")
    try:
        text = json.dumps(storable(data))
        if len(text) > MAX_DATA_BYTES:
            raise _fail(f"{what}: event data is larger than {MAX_DATA_BYTES} bytes")
        return json_format.Parse(text, pb_class(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise _fail(f"{what}: not a DocumentEventData: {exc}") from None


# --- dispatch ------------------------------------------------------------------------

PubSubDecoder = Callable[[PubSubMessage, Config], Fact]

DECODERS: Mapping[str, PubSubDecoder] = {
    names.TOPIC_CYCLE: decode_cycle,
    names.TOPIC_TICK: decode_tick,
    names.TOPIC_QUEUE: decode_queue,
    names.TOPIC_BUDGET: decode_budget,
    names.TOPIC_HEARTBEAT: decode_heartbeat,
    names.TOPIC_CONTROL: decode_control,
}


def decode(source: str, event: Mapping[str, Any], config: Config) -> Fact:
    """The fact carried by a CloudEvent (attributes + "data") from ``source``.

    ``source`` is a topic suffix of names.EVENT_TOPICS or SOURCE_KILL_SWITCH; it becomes
    the fact's ``origin`` (message ids are unique only within one source).
    """
    if source == SOURCE_KILL_SWITCH:
        fact: Fact = decode_kill_switch_written(event)
    else:
        fact = DECODERS[source](unwrap_pubsub(event), config)
    return replace(fact, origin=source)


# --- the batch controller's topic ----------------------------------------------------


def batch_pools(event: Mapping[str, Any]) -> list[str] | None:
    """The pool a batch-controller message names (``{"pool": P}``: a submit's nudge), or
    None for every pool (the scheduler's ``{}``, or anything unreadable: a run over every
    pool is always safe). Never raises."""
    try:
        payload = json_payload(unwrap_pubsub(event), "batch")
    except Exception:
        return None
    pool = payload.get("pool")
    return [pool] if isinstance(pool, str) and pool else None
