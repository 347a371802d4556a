"""A Compute Engine REST stub on 127.0.0.1 that behaves like the service, for adapter tests.

It serves the endpoints google-cloud-compute's REST transport calls:

- ``GET  /compute/v1/projects/{p}/zones/{z}/instances`` (``filter``, ``maxResults``, ``pageToken``)
- ``GET  /compute/v1/projects/{p}/zones/{z}/instances/{name}``
- ``POST /compute/v1/projects/{p}/zones/{z}/instances/{name}/start|stop`` (``requestId``)
- ``GET  /compute/v1/projects/{p}/zones/{z}/operations/{op}`` and ``POST …/{op}/wait``

Invariants:
- The world moves only in ticks: ``advance()`` moves every unfinished operation one tick;
  with ``auto_tick`` (default) every operation poll (get or wait) advances one tick first.
  A start takes TERMINATED → PROVISIONING → STAGING → RUNNING, a stop RUNNING → STOPPING →
  TERMINATED; the instance reaches its final status on the tick its operation becomes DONE
  (after ``ticks_to_finish`` ticks). No real sleeping except injected hangs,
  ``wait_hold_s`` and ``latency_s``.
- A ``requestId`` already seen returns the SAME operation and is not acted on again.
- Start of a RUNNING instance and stop of a TERMINATED one are no-op operations (DONE).
  Start of a STOPPING instance answers ``stopping_start_status`` (409 by default) with
  reason ``resourceNotReady``; an unknown instance answers 404 ``notFound``. Error bodies
  use the real API's shape: ``{"error": {"code", "message", "errors": [{"message",
  "domain", "reason"}]}}``.
- Injected faults are consumed in order by the matching calls only: ``fail_next`` (an HTTP
  error), ``hang_next`` (no answer until the client gave up; ``after_acting`` acts first, so
  the response is lost but the action happened), ``never_finish_next`` and
  ``fail_operation_next`` (the next created operations never finish / end DONE with an
  ``error`` like QUOTA_EXCEEDED, the instance returning to its previous status).
- A zone told to refuse (``refuse_zone``) answers every start that would boot an instance
  there as Compute Engine does in a stockout: the operation ends DONE with
  ``error.errors[].code`` ZONE_RESOURCE_POOL_EXHAUSTED (or the code given) and
  ``httpErrorStatusCode`` 503, the instance back in TERMINATED; ``refuse_zone(zone,
  times=n)`` refuses the next n starts only, ``accept_zone`` ends it.
- Every request is recorded in ``calls`` (method, zone, instance, request id, acted, HTTP
  status). ``close()`` releases hangs and stops the server thread; the stub is a context
  manager and closes even when the test fails.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_BASE = "https://www.googleapis.com/compute/v1"
_PATH = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/"
    r"(?:instances(?:/(?P<instance>[^/]+)(?:/(?P<verb>start|stop))?)?"
    r"|operations/(?P<op>[^/]+)(?P<wait>/wait)?)$"
)
_FILTER_TERM = re.compile(
    r"^\(?\s*(?P<field>labels\.[a-z0-9_-]+|name|status)\s*(?P<op>=|!=|eq|ne)\s*"
    r'"?(?P<value>[^"\s()]*)"?\s*\)?$'
)
_START_PATH = {"TERMINATED": ("PROVISIONING", "STAGING"), "SUSPENDED": ("STAGING",)}
_HTTP_TEXT = {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT", 503: "SERVICE_UNAVAILABLE"}


@dataclass
class Call:
    method: str  # list | get | start | stop | operation.get | operation.wait
    zone: str = ""
    instance: str = ""
    request_id: str = ""
    acted: bool = False
    status: int = 200
    operation: str = ""
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Instance:
    name: str
    zone: str
    status: str
    labels: dict[str, str]
    id: int


@dataclass
class _Op:
    name: str
    id: int
    zone: str
    kind: str  # start | stop
    instance: str
    ticks_left: int | None  # None: never finishes
    path: tuple[str, ...]  # statuses to pass through, then ``final``
    final: str
    previous: str
    error: dict[str, Any] | None = None  # {"code", "message", "http_status"}
    done: bool = False
    ticks: int = 0
    inserted: str = ""
    ended: str = ""


@dataclass
class _Fault:
    kind: str  # fail | hang
    methods: frozenset[str] | None
    status: int = 503
    reason: str = ""
    message: str = ""
    seconds: float = 0.0
    after_acting: bool = False


@dataclass
class _OpFault:
    methods: frozenset[str] | None
    never: bool = False
    code: str = ""
    message: str = ""
    http_status: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def error_body(status: int, message: str, reason: str, domain: str = "global") -> dict[str, Any]:
    """The JSON error body Compute Engine answers with."""
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


class _HttpError(Exception):
    def __init__(self, status: int, message: str, reason: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(status, message, reason, domain)


@dataclass
class ComputeStub:
    project: str = "test-project"
    ticks_to_finish: int = 2
    auto_tick: bool = True
    wait_hold_s: float = 0.0  # how long /wait blocks for DONE before answering (real: 120 s)
    latency_s: float = 0.0  # every answer leaves this late (a network round trip; benchmarks)
    page_size: int = 500  # the server's own page limit (maxResults may lower it)
    stopping_start_status: int = 409
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._instances: dict[tuple[str, str], _Instance] = {}
        self._ops: dict[str, _Op] = {}
        self._by_request: dict[str, str] = {}
        self._faults: list[_Fault] = []
        self._op_faults: list[_OpFault] = []
        self._refusing: dict[str, tuple[str, int | None]] = {}  # zone → (code, starts left)
        self._ids = itertools.count(1_000_000_001)
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> ComputeStub:
        stub = self

        class Handler(_Handler):
            pass

        Handler.stub = stub
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        with self._lock:
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ComputeStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "stub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- the world ---------------------------------------------------------------------

    def add(
        self,
        zone: str,
        name: str,
        status: str = "TERMINATED",
        labels: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._instances[(zone, name)] = _Instance(
                name, zone, status, dict(labels or {}), next(self._ids)
            )

    def status(self, zone: str, name: str) -> str:
        with self._lock:
            return self._instances[(zone, name)].status

    def set_status(self, zone: str, name: str, status: str) -> None:
        """Change an instance behind the API's back (preemption, a console stop)."""
        with self._lock:
            self._instances[(zone, name)].status = status

    def operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._op_json(self._ops[name])

    def advance(self, ticks: int = 1) -> None:
        with self._lock:
            for _ in range(ticks):
                self._tick()
            self._lock.notify_all()

    def acted(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.acted and method in (None, c.method)]

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # --- faults ------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        methods: tuple[str, ...] | None = None,
        reason: str = "",
        message: str = "",
    ) -> None:
        reason = reason or {429: "rateLimitExceeded", 403: "forbidden"}.get(status, "backendError")
        message = message or {
            429: "Rate Limit Exceeded",
            403: "Required 'compute.instances.start' permission",
        }.get(status, "Internal error. Please try again or contact Google Support.")
        with self._lock:
            self._faults.extend(
                _Fault("fail", _methods(methods), status, reason, message) for _ in range(n)
            )

    def hang_next(
        self,
        n: int = 1,
        seconds: float = 5.0,
        *,
        methods: tuple[str, ...] | None = None,
        after_acting: bool = False,
    ) -> None:
        with self._lock:
            self._faults.extend(
                _Fault("hang", _methods(methods), seconds=seconds, after_acting=after_acting)
                for _ in range(n)
            )

    def never_finish_next(self, n: int = 1, *, methods: tuple[str, ...] | None = None) -> None:
        with self._lock:
            self._op_faults.extend(_OpFault(_methods(methods), never=True) for _ in range(n))

    def fail_operation_next(
        self,
        code: str = "QUOTA_EXCEEDED",
        message: str = "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
        http_status: int = 403,
        *,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        with self._lock:
            self._op_faults.append(
                _OpFault(_methods(methods), code=code, message=message, http_status=http_status)
            )

    def refuse_zone(
        self, zone: str, code: str = "ZONE_RESOURCE_POOL_EXHAUSTED", times: int | None = None
    ) -> None:
        """Starts in ``zone`` end in a capacity refusal (all of them, or the next ``times``)."""
        with self._lock:
            self._refusing[zone] = (code, times)

    def accept_zone(self, zone: str) -> None:
        with self._lock:
            self._refusing.pop(zone, None)

    def _capacity_fault(self, zone: str) -> _OpFault | None:
        if zone not in self._refusing:
            return None
        code, left = self._refusing[zone]
        if left is not None:
            if left <= 1:
                del self._refusing[zone]
            else:
                self._refusing[zone] = (code, left - 1)
        message = (
            f"The zone 'projects/{self.project}/zones/{zone}' does not have enough resources "
            "available to fulfill the request.  Try a different zone, or try again later."
        )
        return _OpFault(None, code=code, message=message, http_status=503)

    # --- request handling (called by the handler threads) ------------------------------

    def handle(self, verb: str, path: str, query: dict[str, str]) -> tuple[int, Any, float]:
        """(status, body, hang seconds) for one request; body None means drop the answer."""
        match = _PATH.match(path)
        method = _method_of(verb, match)
        call = Call(method, match["zone"] if match else "", (match and match["instance"]) or "")
        call.request_id, call.query = query.get("requestId", ""), dict(query)
        hang = 0.0
        with self._lock:
            self.calls.append(call)
            try:
                if match is None or method == "":
                    raise _HttpError(404, f"Not Found: {verb} {path}", "notFound")
                if match["project"] != self.project:
                    raise _HttpError(
                        404, f"The resource 'projects/{match['project']}' was not found", "notFound"
                    )
                fault = self._take_fault(method)
                if fault is not None and fault.kind == "fail":
                    domain = "usageLimits" if fault.status in (403, 429) else "global"
                    raise _HttpError(fault.status, fault.message, fault.reason, domain)
                if fault is not None and not fault.after_acting:
                    call.status = 0
                    return 0, None, fault.seconds
                body = self._dispatch(method, match, query, call)
                if fault is not None:
                    hang, body = fault.seconds, None
                    call.status = 0
                return 200, body, hang
            except _HttpError as exc:
                call.status = exc.status
                return exc.status, exc.body, 0.0

    def hold_for_done(self, body: dict[str, Any]) -> dict[str, Any]:
        """For /wait: block up to ``wait_hold_s`` until the operation is DONE."""
        if self.wait_hold_s <= 0 or body.get("status") == "DONE":
            return body
        with self._lock:
            op = self._ops[body["name"]]
            self._lock.wait_for(lambda: op.done or self._release.is_set(), self.wait_hold_s)
            return self._op_json(op)

    def _take_fault(self, method: str) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.methods is None or method in fault.methods:
                return self._faults.pop(i)
        return None

    def _dispatch(self, method: str, m: re.Match[str], query: dict[str, str], call: Call) -> Any:
        zone = m["zone"]
        if method == "list":
            return self._list(zone, query)
        if method in ("operation.get", "operation.wait"):
            op = self._ops.get(m["op"])
            call.operation = m["op"]
            if op is None or op.zone != zone:
                raise _HttpError(
                    404,
                    f"The resource 'projects/{self.project}/zones/{zone}/operations/{m['op']}'"
                    " was not found",
                    "notFound",
                )
            if self.auto_tick:
                self._tick()
                self._lock.notify_all()
            return self._op_json(op)
        inst = self._instances.get((zone, m["instance"]))
        if inst is None:
            raise _HttpError(
                404,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{m['instance']}'"
                " was not found",
                "notFound",
            )
        if method == "get":
            return self._instance_json(inst)
        return self._act(method, inst, query.get("requestId", ""), call)

    def _act(self, kind: str, inst: _Instance, request_id: str, call: Call) -> dict[str, Any]:
        if request_id:
            try:
                parsed = uuid.UUID(request_id)
            except ValueError:
                parsed = uuid.UUID(int=0)
            if parsed.int == 0:
                raise _HttpError(
                    400, f"Invalid value for field 'requestId': '{request_id}'.", "invalid"
                )
            if request_id in self._by_request:
                op = self._ops[self._by_request[request_id]]
                call.operation = op.name
                return self._op_json(op)
        if kind == "start" and inst.status in ("STOPPING", "SUSPENDING"):
            raise _HttpError(
                self.stopping_start_status,
                f"The resource '{self._link(inst)}' is not ready",
                "resourceNotReady",
            )
        op_fault = self._take_op_fault(kind)
        if kind == "start" and inst.status in _START_PATH:
            op_fault = self._capacity_fault(inst.zone) or op_fault
            path, final = _START_PATH[inst.status], "RUNNING"
        elif kind == "stop" and inst.status not in ("TERMINATED", "STOPPING"):
            path, final = ("STOPPING",), "TERMINATED"
        else:
            path, final, op_fault = (), inst.status, None  # nothing to do: a no-op operation
        ticks: int | None = self.ticks_to_finish if path else 0
        if op_fault is not None and op_fault.never:
            ticks = None
        op = _Op(
            name=f"operation-{next(self._ids)}-{uuid.uuid4().hex[:12]}",
            id=next(self._ids),
            zone=inst.zone,
            kind=kind,
            instance=inst.name,
            ticks_left=ticks,
            path=path,
            final=final,
            previous=inst.status,
            inserted=_now(),
        )
        if op_fault is not None and not op_fault.never:
            op.error = {
                "code": op_fault.code,
                "message": op_fault.message,
                "http_status": op_fault.http_status,
            }
        self._ops[op.name] = op
        if request_id:
            self._by_request[request_id] = op.name
        call.acted, call.operation = True, op.name
        if path:
            inst.status = path[0]
        self._settle(op)
        return self._op_json(op)

    def _take_op_fault(self, kind: str) -> _OpFault | None:
        for i, fault in enumerate(self._op_faults):
            if fault.methods is None or kind in fault.methods:
                return self._op_faults.pop(i)
        return None

    def _tick(self) -> None:
        for op in self._ops.values():
            if op.done or op.ticks_left is None:
                continue
            op.ticks += 1
            op.ticks_left -= 1
            inst = self._instances.get((op.zone, op.instance))
            if inst is not None and op.ticks < len(op.path):
                inst.status = op.path[op.ticks]
            self._settle(op)

    def _settle(self, op: _Op) -> None:
        if op.done or op.ticks_left is None or op.ticks_left > 0:
            return
        op.done, op.ended = True, _now()
        inst = self._instances.get((op.zone, op.instance))
        if inst is not None:
            inst.status = op.previous if op.error else op.final

    def _list(self, zone: str, query: dict[str, str]) -> dict[str, Any]:
        terms = _parse_filter(query.get("filter", ""))
        items = [
            i
            for (z, _), i in sorted(self._instances.items())
            if z == zone and all(_matches(i, t) for t in terms)
        ]
        size = self.page_size
        if query.get("maxResults"):
            size = max(1, min(size, int(query["maxResults"])))
        start = int(query.get("pageToken") or 0)
        page = items[start : start + size]
        body: dict[str, Any] = {
            "kind": "compute#instanceList",
            "id": f"projects/{self.project}/zones/{zone}/instances",
            "items": [self._instance_json(i) for i in page],
            "selfLink": f"{_BASE}/projects/{self.project}/zones/{zone}/instances",
        }
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return body

    # --- JSON shapes ---------------------------------------------------------------------

    def _link(self, inst: _Instance) -> str:
        return f"projects/{self.project}/zones/{inst.zone}/instances/{inst.name}"

    def _instance_json(self, inst: _Instance) -> dict[str, Any]:
        return {
            "kind": "compute#instance",
            "id": str(inst.id),
            "creationTimestamp": "2030-01-01T00:00:00.000-08:00",
            "name": inst.name,
            "machineType": f"{_BASE}/projects/{self.project}/zones/{inst.zone}"
            "/machineTypes/g2-standard-4",
            "status": inst.status,
            "zone": f"{_BASE}/projects/{self.project}/zones/{inst.zone}",
            "labels": dict(inst.labels),
            "scheduling": {
                "provisioningModel": "SPOT",
                "instanceTerminationAction": "STOP",
                "preemptible": True,
                "automaticRestart": False,
                "onHostMaintenance": "TERMINATE",
            },
            "selfLink": f"{_BASE}/{self._link(inst)}",
        }

    def _op_json(self, op: _Op) -> dict[str, Any]:
        zone_link = f"{_BASE}/projects/{self.project}/zones/{op.zone}"
        body: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(op.id),
            "name": op.name,
            "zone": zone_link,
            "operationType": op.kind,
            "targetLink": f"{zone_link}/instances/{op.instance}",
            "targetId": str(op.id),
            "status": "DONE" if op.done else ("RUNNING" if op.ticks else "PENDING"),
            "user": "yoyo-control@test-project.iam.gserviceaccount.com",
            "progress": 100 if op.done else 0,
            "insertTime": op.inserted,
            "startTime": op.inserted,
            "selfLink": f"{zone_link}/operations/{op.name}",
        }
        if op.done:
            body["endTime"] = op.ended
            if op.error:
                status = op.error["http_status"]
                body["error"] = {
                    "errors": [{"code": op.error["code"], "message": op.error["message"]}]
                }
                body["httpErrorStatusCode"] = status
                body["httpErrorMessage"] = _HTTP_TEXT.get(status, "ERROR")
        return body


class _Handler(BaseHTTPRequestHandler):
    stub: ComputeStub
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if self.stub.latency_s > 0:
            time.sleep(self.stub.latency_s)
        status, body, hang = self.stub.handle(verb, url.path, query)
        if hang:
            self.stub._release.wait(hang)
        if body is None:  # a hang: the client has given up; drop the connection unanswered
            self.close_connection = True
            return
        if verb == "POST" and url.path.endswith("/wait") and status == 200:
            body = self.stub.hold_for_done(body)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _methods(methods: tuple[str, ...] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(methods)


def _method_of(verb: str, m: re.Match[str] | None) -> str:
    if m is None:
        return ""
    if m["op"]:
        return (
            "operation.wait"
            if (m["wait"] and verb == "POST")
            else ("operation.get" if verb == "GET" and not m["wait"] else "")
        )
    if m["verb"]:
        return m["verb"] if verb == "POST" else ""
    if m["instance"]:
        return "get" if verb == "GET" else ""
    return "list" if verb == "GET" else ""


def _parse_filter(text: str) -> list[tuple[str, str, str]]:
    """Terms of ``labels.k = "v" AND name != x``; anything else is the API's 400."""
    if not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+AND\s+|\)\s+\(", text.strip()):
        m = _FILTER_TERM.match(part.strip())
        if m is None:
            raise _HttpError(400, f"Invalid value for field 'filter': '{text}'.", "invalid")
        op = {"eq": "=", "ne": "!="}.get(m["op"], m["op"])
        terms.append((m["field"], op, m["value"]))
    return terms


def _matches(inst: _Instance, term: tuple[str, str, str]) -> bool:
    name, op, value = term
    if name.startswith("labels."):
        actual = inst.labels.get(name.removeprefix("labels."))
    else:
        actual = getattr(inst, name)
    return (actual == value) == (op == "=")
