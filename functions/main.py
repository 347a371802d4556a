"""Cloud Functions entry points: decode and validate the event, call the service. No logic.

One entry point per event source (names.ENTRY_POINTS, names.ENTRY_KILL_SWITCH_WRITTEN),
the batch controller (names.ENTRY_BATCH: its own topic, schedule and function),
plus the HTTP status page (names.ENTRY_STATUS_PAGE) and the OpenAI-compatible gateway
(``gateway``: yoyo_control.gateway.app, async on functions-framework's ASGI stack; its
answers are HTTP responses, not acks). Decoding lives in
yoyo_control.messages, decisions in yoyo_control.service.

What a delivery gets — the ONE mapping from error kind to ack/redeliver (``_deliver``).
A function that returns acknowledges the message; one that raises answers HTTP 500 and
Pub/Sub/Eventarc redeliver it (the triggers' retry policy is on):

- decoding fails — InvalidMessage, or ANY unexpected exception in a decoder (a decoder
  bug must not turn a message into a redelivery loop) → logged with the message id and
  reason, recorded in the event log (``service.reject``, best effort: if the store is
  down the message is still acknowledged) → ack;
- the sender is not admitted (a heartbeat without its own VM's identity token,
  yoyo_control.identity) → the same → ack; the signing keys cannot be fetched
  (TemporaryError) → raised → redelivered;
- the service raises InvalidMessage or ConfigError (unknown pool or instance) → same → ack;
- PermanentError (instance missing, quota, permission) → logged, recorded → ack;
- TemporaryError, and any unexpected exception from the service, the store or Compute →
  logged, raised → 500 → redelivered (the fact is recorded once and the reconcile is
  idempotent, so a redelivery is safe);
- the service cannot be built (bad YOYO_CONFIG, no store client) → raised → redelivered:
  the message is fine, the deployment is not, and acking would lose it.

Nothing is built at import time; the service is built once per warm instance.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import functions_framework
import functions_framework.aio

from yoyo_control import bootstrap, identity, logs, messages, names
from yoyo_control.domain.facts import Fact, HeartbeatReceived, pool_of
from yoyo_control.errors import ConfigError, InvalidMessage, PermanentError, TemporaryError

STATUS_PAGE_MODULE = "yoyo_control.statuspage"


def _event_dict(event: Any) -> dict[str, Any]:
    """A CloudEvent (cloudevents.http.CloudEvent or a plain mapping) as attributes + data."""
    if isinstance(event, Mapping):
        return dict(event)
    try:
        attributes = dict(event.get_attributes())
    except Exception:  # a malformed event must still be logged and acknowledged
        attributes = {}
    try:
        attributes["data"] = event.get_data()
    except Exception:
        attributes["data"] = None
    return attributes


def _reject(service: Any, source: str, message_id: str, reason: str, severity: str) -> None:
    logs.log(severity, f"{source} message rejected: {reason}", source=source, message_id=message_id)
    try:
        service.reject(message_id, source, reason)
    except Exception as exc:  # acknowledged anyway: a bad message must never loop
        logs.error(
            f"could not record the rejected {source} message: {type(exc).__name__}: {exc}",
            source=source,
            message_id=message_id,
        )


Admit = Callable[[Any, Fact, Mapping[str, Any]], None]  # (service, fact, raw event)


def _deliver(source: str, event: Any, admit: Admit | None = None) -> None:
    raw = _event_dict(event)
    message_id = messages.event_message_id(raw)
    try:
        service = bootstrap.service()
    except Exception as exc:
        logs.error(
            f"cannot build the service: {type(exc).__name__}: {exc}",
            source=source,
            message_id=message_id,
        )
        raise
    try:
        fact = messages.decode(source, raw, service.config)
    except (InvalidMessage, ConfigError) as exc:
        _reject(service, source, message_id, str(exc), "WARNING")
        return
    except Exception as exc:
        reason = f"undecodable message ({type(exc).__name__}: {exc})"
        _reject(service, source, message_id, reason, "ERROR")
        return
    if admit is not None:
        try:
            admit(service, fact, raw)
        except (InvalidMessage, ConfigError) as exc:
            _reject(service, source, message_id, str(exc), "WARNING")
            return
        except TemporaryError as exc:
            logs.warning(f"temporary failure, redelivery requested: {exc}", source=source)
            raise
        except Exception as exc:
            reason = f"sender not verifiable ({type(exc).__name__}: {exc})"
            _reject(service, source, message_id, reason, "ERROR")
            return
    message_id = fact.message_id
    pool = pool_of(fact)
    try:
        handled = service.handle(fact)
    except (InvalidMessage, ConfigError) as exc:
        _reject(service, source, message_id, str(exc), "WARNING")
        return
    except PermanentError as exc:
        _reject(service, source, message_id, f"permanent error: {exc}", "ERROR")
        return
    except TemporaryError as exc:
        logs.warning(
            f"temporary failure, redelivery requested: {exc}",
            source=source,
            message_id=message_id,
            pool=pool,
        )
        raise
    except Exception as exc:
        logs.error(
            f"unexpected failure, redelivery requested: {type(exc).__name__}: {exc}",
            source=source,
            message_id=message_id,
            pool=pool,
        )
        raise
    logs.info(
        handled.note
        or (f"{handled.fact} (duplicate delivery)" if handled.duplicate else handled.fact),
        source=source,
        message_id=message_id,
        pool=pool,
        fact=handled.fact,
        duplicate=handled.duplicate,
        actions=[f"{a.kind} {a.instance}: {a.reason}" for a in handled.actions],
    )


# --- Pub/Sub topics (names.ENTRY_POINTS) ---------------------------------------------


@functions_framework.cloud_event
def on_cycle(event: Any) -> None:
    """Cloud Scheduler: ``{"pool": ..., "window": "30m"}`` → the pool's run window."""
    _deliver(names.TOPIC_CYCLE, event)


@functions_framework.cloud_event
def on_tick(event: Any) -> None:
    """Cloud Scheduler, every minute: observe every pool's VMs and re-decide."""
    _deliver(names.TOPIC_TICK, event)


@functions_framework.cloud_event
def on_queue(event: Any) -> None:
    """A Cloud Monitoring backlog incident, a producer's ``{"pool", "depth"}``, or the
    gateway's wake, load or cold start (gateway/wire.py; docs/messages.md "queue")."""
    _deliver(names.TOPIC_QUEUE, event)


@functions_framework.cloud_event
def on_budget(event: Any) -> None:
    """A Cloud Billing budget notification."""
    _deliver(names.TOPIC_BUDGET, event)


def _sender_verified(service: Any, fact: Fact, raw: Mapping[str, Any]) -> None:
    assert isinstance(fact, HeartbeatReceived)
    token = identity.heartbeat_token(raw)
    identity.admit_heartbeat(fact, token, bootstrap.identity(), service.config)


@functions_framework.cloud_event
def on_heartbeat(event: Any) -> None:
    """A VM agent's heartbeat, admitted only with its own VM's identity token."""
    _deliver(names.TOPIC_HEARTBEAT, event, _sender_verified)


@functions_framework.cloud_event
def on_control(event: Any) -> None:
    """An operator command: kill, unkill, start, stop, extend."""
    _deliver(names.TOPIC_CONTROL, event)


# --- the batch controller (its own function: terraform/batch.tf) ---------------------


@functions_framework.cloud_event
def on_batch(event: Any) -> None:
    """Cloud Scheduler, or a submit/cancel/retry's nudge ``{"pool": P}``: reconcile the
    pending batches (of P, else of every pool) and tell the lifecycle each pool's batch
    demand. Never part of the lifecycle tick.

    Always acknowledged once it ran (a batch that fails is logged and skipped; the next
    scheduled run looks again); raised only when the controller cannot be built (the
    deployment, not the message, is wrong) or the store/Storage is briefly unavailable.
    """
    raw = _event_dict(event)
    message_id = messages.event_message_id(raw)
    pools = messages.batch_pools(raw)
    try:
        controller = bootstrap.batch_controller()
    except Exception as exc:
        logs.error(f"cannot build the batch controller: {type(exc).__name__}: {exc}")
        raise
    try:
        runs = controller.run(pools, run_id=message_id)
    except TemporaryError as exc:
        logs.warning(f"batch controller: temporary failure, redelivery requested: {exc}")
        raise
    for run in runs:
        if not (run.shards or run.posted):
            continue  # nothing pending, nothing told: no line every minute per pool
        logs.info(
            f"batch controller: {run.shards} shards pending in {len(run.batches)} batches"
            + (" (demand posted)" if run.posted else ""),
            source=names.TOPIC_BATCH,
            message_id=message_id,
            pool=run.pool,
        )


# --- Firestore trigger ---------------------------------------------------------------


@functions_framework.cloud_event
def on_kill_switch_written(event: Any) -> None:
    """The kill switch document was written: reconcile every pool now."""
    _deliver(messages.SOURCE_KILL_SWITCH, event)


# --- HTTP ----------------------------------------------------------------------------


@functions_framework.http
def status_page(request: Any) -> Any:
    """The status page (HTML), rendered by yoyo_control.statuspage.render_html(service)."""
    text = {"Content-Type": "text/plain; charset=utf-8"}
    try:
        missing = importlib.util.find_spec(STATUS_PAGE_MODULE) is None
    except (ImportError, ValueError):
        missing = True
    if missing:
        return (f"503 status page unavailable: {STATUS_PAGE_MODULE} is not installed\n", 503, text)
    page = importlib.import_module(STATUS_PAGE_MODULE)
    html = page.render_html(bootstrap.service())
    return (html, 200, {"Content-Type": "text/html; charset=utf-8"})


@functions_framework.aio.http
async def gateway(request: Any) -> Any:
    """The OpenAI-compatible gateway (``/v1/models``, ``/v1/chat/completions``, …): an
    async function, so functions-framework serves it on its ASGI stack (Starlette on
    uvicorn workers), one event loop holding every request of the instance."""
    return await bootstrap.gateway()(request)
