"""The local push bus: Pub/Sub's REST surface and delivery semantics, in one process.

What it is: topics, push subscriptions (each pushes the Eventarc-shaped CloudEvent of
every message to one function URL) and pull subscriptions (the work queue the local VMs
drain), behind the subset of the Pub/Sub REST API that clients use
(``topics/T:publish``, ``subscriptions/S:pull``, ``:acknowledge``, ``:modifyAckDeadline``,
``PUT`` to create). ``LocalBusPublisher`` speaks that REST subset, so it works against this
bus and against Google's Pub/Sub emulator alike.

Invariants:
- At-least-once: a pushed message is acknowledged only by a 2xx answer; any other answer
  or a connection error is retried with exponential backoff (``min_backoff_s`` doubling to
  ``max_backoff_s``), and after ``max_attempts`` it goes to the dead-letter list (logged),
  like a Pub/Sub subscription with a dead-letter policy. One failing message never blocks
  the others of its topic.
- A pulled message not acknowledged within its ack deadline is delivered again.
- Message ids are unique across restarts of the bus (the control plane deduplicates facts
  on them), numeric strings like Pub/Sub's.
- Nothing here blocks the caller of ``publish`` on a delivery.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import jsonhttp as http
from .. import logs
from ..adapters.pubsub_rest import RestPublisher
from ..errors import PermanentError
from . import envelope, guard

Deliver = Callable[[str, dict[str, str], bytes], int]  # (url, headers, body) -> status


def http_deliver(url: str, headers: dict[str, str], body: bytes) -> int:
    status, _ = http.request("POST", url, body, headers, timeout=120.0)
    return status


@dataclass
class Message:
    id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: float

    def rest(self) -> dict[str, Any]:
        return envelope.pubsub_message(self.data, self.id, self.publish_time, self.attributes)


@dataclass
class _Pending:
    message: Message
    attempts: int = 0
    ack_id: str = ""
    deadline: float = 0.0


@dataclass
class Subscription:
    name: str
    topic: str
    push_endpoint: str | None = None
    filter_attributes: dict[str, str] = field(default_factory=dict)
    ack_deadline_s: float = 60.0
    # pull: messages waiting (FIFO) and outstanding (by ack id)
    ready: list[_Pending] = field(default_factory=list)
    outstanding: dict[str, _Pending] = field(default_factory=dict)
    # push: a heap of (due, seq, pending)
    heap: list[tuple[float, int, _Pending]] = field(default_factory=list)
    in_flight: int = 0
    delivered: int = 0

    def accepts(self, message: Message) -> bool:
        return all(message.attributes.get(k) == v for k, v in self.filter_attributes.items())

    def backlog(self) -> int:
        return len(self.ready) + len(self.outstanding) + len(self.heap) + self.in_flight


_FILTER = re.compile(r'^\s*attributes\.(\w+)\s*=\s*"([^"]*)"\s*$')


class Broker:
    """Topics and subscriptions; push workers start with ``start()``, end with ``stop()``."""

    def __init__(
        self,
        project: str,
        deliver: Deliver = http_deliver,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        max_attempts: int = 10,
        workers_per_push: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.deliver = deliver
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self.workers_per_push = workers_per_push
        self.clock = clock
        self.topics: dict[str, list[str]] = {}  # topic -> subscription names
        self.subs: dict[str, Subscription] = {}
        self.dead_letters: list[tuple[str, Message, str]] = []
        self.on_drained: list[Callable[[Subscription], None]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._ids = itertools.count(time.time_ns() // 1000)
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # --- administration -----------------------------------------------------------

    def create_topic(self, topic: str) -> None:
        with self._cond:
            self.topics.setdefault(topic, [])

    def create_subscription(
        self,
        name: str,
        topic: str,
        push_endpoint: str | None = None,
        filter: str = "",
        ack_deadline_s: float = 60.0,
    ) -> Subscription:
        attributes = {}
        for clause in filter.split(" AND ") if filter else ():
            match = _FILTER.match(clause)
            if not match:
                raise PermanentError(f'unsupported filter {clause!r} (attributes.K = "V" only)')
            attributes[match.group(1)] = match.group(2)
        with self._cond:
            existing = self.subs.get(name)
            if existing is not None:
                return existing
            sub = Subscription(name, topic, push_endpoint, attributes, ack_deadline_s)
            self.subs[name] = sub
            self.topics.setdefault(topic, []).append(name)
            if push_endpoint and not self._stopping and self._threads:
                self._spawn(sub)
            return sub

    # --- publish / pull -----------------------------------------------------------

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        message = Message(str(next(self._ids)), data, dict(attributes), self.clock())
        with self._cond:
            self.topics.setdefault(topic, [])
            for name in self.topics[topic]:
                sub = self.subs[name]
                if not sub.accepts(message):
                    continue
                pending = _Pending(message)
                if sub.push_endpoint:
                    heapq.heappush(sub.heap, (self.clock(), next(self._seq), pending))
                else:
                    sub.ready.append(pending)
            self._cond.notify_all()
        return message.id

    def pull(self, name: str, max_messages: int = 1, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """Up to ``max_messages``; with ``wait_s``, a long poll: waits that long for one."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            sub = self._sub(name)
            self._expire(sub)
            while not sub.ready and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
                self._expire(sub)
            out = []
            while sub.ready and len(out) < max_messages:
                pending = sub.ready.pop(0)
                pending.attempts += 1
                pending.ack_id = f"{name}:{pending.message.id}:{pending.attempts}"
                pending.deadline = self.clock() + sub.ack_deadline_s
                sub.outstanding[pending.ack_id] = pending
                out.append(
                    {
                        "ackId": pending.ack_id,
                        "message": pending.message.rest(),
                        "deliveryAttempt": pending.attempts,
                    }
                )
            return out

    def acknowledge(self, name: str, ack_ids: list[str]) -> None:
        with self._cond:
            sub = self._sub(name)
            before = sub.backlog()
            for ack_id in ack_ids:
                sub.outstanding.pop(ack_id, None)
            drained = before > 0 and sub.backlog() == 0
        if drained:
            self._drained(sub)

    def modify_ack_deadline(self, name: str, ack_ids: list[str], seconds: float) -> None:
        with self._cond:
            sub = self._sub(name)
            for ack_id in ack_ids:
                pending = sub.outstanding.get(ack_id)
                if pending is None:
                    continue
                if seconds <= 0:
                    del sub.outstanding[ack_id]
                    sub.ready.insert(0, pending)
                else:
                    pending.deadline = self.clock() + seconds

    def backlog(self, name: str) -> int:
        with self._cond:
            sub = self._sub(name)
            self._expire(sub)
            return sub.backlog()

    def _sub(self, name: str) -> Subscription:
        sub = self.subs.get(name)
        if sub is None:
            raise PermanentError(f"subscription {name!r} not found")
        return sub

    def _expire(self, sub: Subscription) -> None:
        now = self.clock()
        for ack_id, pending in list(sub.outstanding.items()):
            if pending.deadline <= now:
                del sub.outstanding[ack_id]
                sub.ready.insert(0, pending)

    def _drained(self, sub: Subscription) -> None:
        for callback in self.on_drained:
            try:
                callback(sub)
            except Exception as exc:  # a watcher must not break acknowledgements
                logs.warning(f"bus: drained callback failed: {exc}", topic=sub.topic)

    # --- push delivery ------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            for sub in self.subs.values():
                if sub.push_endpoint:
                    self._spawn(sub)

    def _spawn(self, sub: Subscription) -> None:
        for i in range(self.workers_per_push):
            thread = threading.Thread(
                target=self._push_loop, args=(sub,), name=f"bus-{sub.name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _next_due(self, sub: Subscription) -> _Pending | None:
        """Wait for the earliest due message of ``sub``; None when stopping."""
        with self._cond:
            while not self._stopping:
                if sub.heap:
                    due = sub.heap[0][0]
                    wait = due - self.clock()
                    if wait <= 0:
                        _, _, pending = heapq.heappop(sub.heap)
                        sub.in_flight += 1
                        return pending
                    self._cond.wait(min(wait, 0.5))
                else:
                    self._cond.wait(0.5)
            return None

    def _push_loop(self, sub: Subscription) -> None:
        assert sub.push_endpoint is not None
        while True:
            pending = self._next_due(sub)
            if pending is None:
                return
            pending.attempts += 1
            headers, body = envelope.pubsub_event(
                self.project, sub.topic, sub.name, pending.message.rest()
            )
            try:
                status = self.deliver(sub.push_endpoint, headers, body)
                why = f"HTTP {status}"
            except OSError as exc:
                status, why = 0, f"{type(exc).__name__}: {exc}"
            with self._cond:
                sub.in_flight -= 1
                if 200 <= status < 300:
                    sub.delivered += 1
                    drained = sub.backlog() == 0
                elif pending.attempts >= self.max_attempts:
                    self.dead_letters.append((sub.name, pending.message, why))
                    drained = sub.backlog() == 0
                    logs.error(
                        f"bus: dead-lettered after {pending.attempts} attempts: {why}",
                        topic=sub.topic,
                        message_id=pending.message.id,
                    )
                else:
                    backoff = min(
                        self.max_backoff_s, self.min_backoff_s * 2 ** (pending.attempts - 1)
                    )
                    due = self.clock() + backoff
                    heapq.heappush(sub.heap, (due, next(self._seq), pending))
                    self._cond.notify_all()
                    drained = False
                    logs.warning(
                        f"bus: delivery failed ({why}); retry {pending.attempts + 1} "
                        f"in {backoff:.1f}s",
                        topic=sub.topic,
                        message_id=pending.message.id,
                    )
            if drained:
                self._drained(sub)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or in flight on any push subscription (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if all(not s.heap and not s.in_flight for s in self.subs.values()):
                    return True
            time.sleep(0.02)
        return False


# --- the REST surface ---------------------------------------------------------------

_ROUTE = re.compile(r"^/v1/projects/([^/]+)/(topics|subscriptions)/([^/:]+)(?::(\w+))?$")


class BusApp:
    """WSGI app serving the Pub/Sub REST subset for one Broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        match = _ROUTE.match(environ.get("PATH_INFO", ""))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw) if raw else {}
            if match is None:
                return _answer(start_response, 404, {"error": "not found"})
            _, kind, name, verb = match.groups()
            return _answer(start_response, 200, self._route(method, kind, name, verb, body))
        except PermanentError as exc:
            return _answer(start_response, 404, {"error": {"message": str(exc)}})
        except (ValueError, KeyError, TypeError) as exc:
            return _answer(start_response, 400, {"error": {"message": f"bad request: {exc}"}})

    def _route(self, method: str, kind: str, name: str, verb: str | None, body: Any) -> Any:
        b = self.broker
        if kind == "topics" and method == "PUT" and verb is None:
            b.create_topic(name)
            return {"name": f"projects/{b.project}/topics/{name}"}
        if kind == "topics" and verb == "publish":
            ids = []
            for message in body["messages"]:
                data = base64.b64decode(message.get("data", ""))
                attributes = {str(k): str(v) for k, v in message.get("attributes", {}).items()}
                ids.append(b.publish(name, data, attributes))
            return {"messageIds": ids}
        if kind == "subscriptions" and method == "PUT" and verb is None:
            topic = str(body["topic"]).rsplit("/", 1)[-1]
            push = (body.get("pushConfig") or {}).get("pushEndpoint")
            b.create_subscription(
                name, topic, push, body.get("filter", ""), body.get("ackDeadlineSeconds", 60)
            )
            return {"name": f"projects/{b.project}/subscriptions/{name}"}
        if kind == "subscriptions" and method == "GET" and verb is None:
            sub = b._sub(name)
            return {"name": name, "topic": sub.topic, "backlog": b.backlog(name)}
        if kind == "subscriptions" and verb == "pull":
            # Without returnImmediately (deprecated), a pull waits a bounded time for a
            # message, as Pub/Sub's does.
            wait_s = 0.0 if body.get("returnImmediately") else LONG_POLL_S
            return {"receivedMessages": b.pull(name, int(body.get("maxMessages", 1)), wait_s)}
        if kind == "subscriptions" and verb == "acknowledge":
            b.acknowledge(name, list(body["ackIds"]))
            return {}
        if kind == "subscriptions" and verb == "modifyAckDeadline":
            b.modify_ack_deadline(name, list(body["ackIds"]), float(body["ackDeadlineSeconds"]))
            return {}
        raise ValueError(f"{method} {kind}/{name}:{verb} is not supported")


LONG_POLL_S = 2.0  # how long a pull without returnImmediately waits for a message


def _answer(start_response: Callable[..., Any], status: int, doc: Any) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    payload = json.dumps(doc).encode()
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


# --- the client (ports.Publisher) -------------------------------------------------------


class LocalBusPublisher(RestPublisher):
    """ports.Publisher to this bus (adapters/pubsub_rest.py), with the stack's secret."""

    def __init__(
        self, base_url: str, project: str, timeout: float = 10.0, secret: str = ""
    ) -> None:
        hint = "is the local stack running? start it with: yoyoctl local up"
        super().__init__(base_url, project, timeout, secret, unreachable_hint=hint)

    @classmethod
    def from_config(cls, config: Any) -> LocalBusPublisher:
        return cls(
            bus_url(config), config.project, secret=guard.read_secret(config.local.state_dir)
        )


def bus_url(config: Any) -> str:
    """Where the local stack serves the bus (``/bus`` on the one local server)."""
    return f"http://{config.local.host}:{config.local.port}/bus"
