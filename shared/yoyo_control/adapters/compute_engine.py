"""Compute Engine adapter: the ``Compute`` port through the google-cloud-compute client.

Invariants:
- Only this module imports google.cloud.compute, and only when the first client is built
  (never at import time). Clients are built once per adapter, under a lock.
- start/stop send ``request_id`` (Compute Engine ignores a repeated id and returns the
  original operation) and then wait for that zone operation through an explicit
  ``ZoneOperationsClient.wait`` loop, bounded by ``operation_timeout_s`` for the whole
  call (the client's ``ExtendedOperation.result()`` is not used: its internal operations
  client ignores client_options and is unbounded).
- No hidden retries: every API call is sent with ``retry=None`` and a timeout; retrying is
  the caller's job (Pub/Sub redelivery, the next tick) with the same request id. Only the
  operation polls repeat (a poll is a read) until the deadline.
- Every failure leaves as TemporaryError or PermanentError, decided in ONE function,
  ``classify`` (HTTP status + error reasons/codes), which both API errors and an
  operation that ends DONE with ``error`` go through:
  * 404 on an instance → InstanceNotFound (a PermanentError the service records as a
    missing instance); 404 on an operation → TemporaryError
    (the retried call with the same request id finds or re-creates it);
  * ZONE_RESOURCE_POOL_EXHAUSTED, ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS,
    REGION_RESOURCE_POOL_EXHAUSTED, STOCKOUT (a resource availability error: the zone
    has no capacity for the instance now; it comes as the error code of an operation that
    ends DONE, typically with httpErrorStatusCode 503, or as the reason of an HTTP 503)
    → CapacityError, whatever the HTTP status, so another zone is tried;
  * 408/409/429/5xx, resourceNotReady, rate limits, timeouts, connection errors, an
    operation still not DONE at the deadline → TemporaryError;
  * QUOTA_EXCEEDED / quotaExceeded (a resource quota: needs an operator), 403
    permission, other 400s → PermanentError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import CapacityError, InstanceNotFound, PermanentError, TemporaryError, YoyoError
from ..ports import ObservedInstance

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud.compute_v1 import InstancesClient, Operation, ZoneOperationsClient

TEMPORARY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
TEMPORARY_REASONS = frozenset(
    {
        # REST error reasons (error.errors[].reason)
        "resourceNotReady",
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "backendError",
        "internalError",
        # operation error codes (operation.error.errors[].code)
        "RESOURCE_NOT_READY",
        "RESOURCE_OPERATION_RATE_EXCEEDED",
        "RATE_LIMIT_EXCEEDED",
        "INTERNAL_ERROR",
        "SERVICE_UNAVAILABLE",
    }
)
CAPACITY_REASONS = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "REGION_RESOURCE_POOL_EXHAUSTED",
        "STOCKOUT",
    }
)
QUOTA_REASONS = frozenset({"quotaExceeded", "QUOTA_EXCEEDED"})
NOT_FOUND_REASONS = frozenset({"notFound", "RESOURCE_NOT_FOUND"})


def classify(
    status: int | None, reasons: Iterable[str], message: str, subject: str
) -> TemporaryError | PermanentError | CapacityError:
    """The one place a Compute Engine failure becomes Temporary or Permanent.

    ``subject`` names what was addressed ("instance vm-0 in zone z", "operation op-1
    of instance vm-0 in zone z"); only an instance that is not found says "not found".
    """
    reasons = {r for r in reasons if r}
    detail = f"{subject}: {status or ''} {', '.join(sorted(reasons))} {message}".strip()
    detail = " ".join(detail.split())
    if status == 404 or reasons & NOT_FOUND_REASONS:
        if subject.startswith("operation"):
            return TemporaryError(f"{detail} (operation vanished; retry with the same request id)")
        return InstanceNotFound(f"{subject} not found: {message}")
    if reasons & CAPACITY_REASONS:
        return CapacityError(detail)
    if status == 429 or reasons & TEMPORARY_REASONS:
        return TemporaryError(detail)
    if reasons & QUOTA_REASONS:
        return PermanentError(f"quota exceeded: {detail}")
    if status in TEMPORARY_STATUSES or (status is not None and status >= 500):
        return TemporaryError(detail)
    return PermanentError(detail)


def translate(exc: BaseException, subject: str) -> YoyoError | None:
    """The control plane's error for a client-side exception, or None if it is not ours."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from requests import exceptions as http

    if isinstance(exc, YoyoError):
        return exc
    if isinstance(exc, api.GoogleAPICallError):
        reasons = [e.get("reason", "") for e in exc.errors if isinstance(e, dict)]
        reasons.append(exc.reason or "")
        code = exc.code if isinstance(exc.code, int) else None
        return classify(code, reasons, exc.message or str(exc), subject)
    if isinstance(exc, api.RetryError):
        return TemporaryError(f"{subject}: retries exhausted: {exc}")
    if isinstance(exc, (http.Timeout, http.ConnectionError, TimeoutError, ConnectionError)):
        return TemporaryError(f"{subject}: {type(exc).__name__}: {exc}")
    if isinstance(exc, auth.RefreshError):
        kind = TemporaryError if getattr(exc, "retryable", False) else PermanentError
        return kind(f"{subject}: credentials: {exc}")
    if isinstance(exc, auth.TransportError):
        return TemporaryError(f"{subject}: transport: {exc}")
    return None


def operation_error(op: Operation, subject: str) -> YoyoError | None:
    """The error of an operation that ended DONE with ``error`` set (else None)."""
    errors = list(op.error.errors) if op.error else []
    if not errors and not op.http_error_status_code:
        return None
    codes = [e.code for e in errors]
    message = "; ".join(f"{e.code}: {e.message}" for e in errors) or op.http_error_message
    return classify(op.http_error_status_code or None, codes, message, subject)


class ComputeEngine:
    """``Compute`` over the Compute Engine API (REST transport)."""

    def __init__(
        self,
        project: str,
        *,
        instances_client: InstancesClient | None = None,
        operations_client: ZoneOperationsClient | None = None,
        operation_timeout_s: float = 90.0,
        request_timeout_s: float = 30.0,
        poll_interval_s: float = 1.0,
        page_size: int = 500,
        client_options: Any = None,
        credentials: Any = None,
        transport: Any = None,
    ) -> None:
        self.project = project
        self.operation_timeout_s = operation_timeout_s
        self.request_timeout_s = request_timeout_s
        self.poll_interval_s = poll_interval_s
        self.page_size = page_size
        self._client_options = client_options
        self._credentials = credentials
        self._transport = transport
        self._instances = instances_client
        self._operations = operations_client
        self._lock = threading.Lock()

    # --- clients (lazy) ------------------------------------------------------------------

    def _kwargs(self, transport: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self._client_options is not None:
            kwargs["client_options"] = self._client_options
        if self._credentials is not None:
            kwargs["credentials"] = self._credentials
        if transport is not None:
            kwargs["transport"] = transport
        return kwargs

    def instances_client(self) -> InstancesClient:
        with self._lock:
            if self._instances is None:
                from google.cloud import compute_v1

                self._instances = compute_v1.InstancesClient(**self._kwargs(self._transport))
            return self._instances

    def operations_client(self) -> ZoneOperationsClient:
        with self._lock:
            if self._operations is None:
                from google.cloud import compute_v1

                # A transport object belongs to one service; only a name can be shared.
                transport = self._transport if isinstance(self._transport, str) else None
                self._operations = compute_v1.ZoneOperationsClient(**self._kwargs(transport))
            return self._operations

    def close(self) -> None:
        """Close the HTTP sessions of the clients this adapter built or was given."""
        with self._lock:
            for client in (self._instances, self._operations):
                if client is not None:
                    client.transport.close()  # type: ignore[no-untyped-call]
            self._instances = self._operations = None

    # --- the port --------------------------------------------------------------------------

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        subject = f"instances of pool {pool} in zone {zone}"
        request = {
            "project": self.project,
            "zone": zone,
            "filter": f'labels.{names.LABEL_POOL} = "{pool}"',
            "max_results": self.page_size,
        }
        try:
            pages = self.instances_client().list(
                request=request, retry=None, timeout=self.request_timeout_s
            )
            return [
                ObservedInstance(i.name, i.status, dict(i.labels))
                for i in pages  # the pager fetches the next pages with the same timeout
            ]
        except Exception as exc:
            raise _mapped(exc, subject) from exc

    def get(self, zone: str, instance: str) -> ObservedInstance:
        subject = f"instance {instance} in zone {zone}"
        try:
            found = self.instances_client().get(
                project=self.project,
                zone=zone,
                instance=instance,
                retry=None,
                timeout=self.request_timeout_s,
            )
        except Exception as exc:
            raise _mapped(exc, subject) from exc
        return ObservedInstance(found.name, found.status, dict(found.labels))

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self._act("start", zone, instance, request_id)

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self._act("stop", zone, instance, request_id)

    # --- internals ---------------------------------------------------------------------------

    def _act(self, kind: str, zone: str, instance: str, request_id: str) -> None:
        deadline = time.monotonic() + self.operation_timeout_s
        subject = f"instance {instance} in zone {zone}"
        client = self.instances_client()
        call = client.start_unary if kind == "start" else client.stop_unary
        try:
            op = call(
                request={
                    "project": self.project,
                    "zone": zone,
                    "instance": instance,
                    "request_id": request_id,
                },
                retry=None,
                timeout=self._remaining(deadline, self.request_timeout_s),
            )
        except Exception as exc:
            raise _mapped(exc, f"{kind} {subject}") from exc
        op = self._wait(zone, op, deadline, f"operation {op.name} ({kind} {subject})")
        error = operation_error(op, f"{kind} {subject}")
        if error is not None:
            raise error

    def _wait(self, zone: str, op: Operation, deadline: float, subject: str) -> Operation:
        from google.cloud.compute_v1 import Operation

        done = Operation.Status.DONE
        while op.status != done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TemporaryError(
                    f"{subject}: not DONE within {self.operation_timeout_s:g}s "
                    f"(status {op.status.name}); retry with the same request id"
                )
            began = time.monotonic()
            try:
                op = self.operations_client().wait(
                    project=self.project,
                    zone=zone,
                    operation=op.name,
                    retry=None,
                    timeout=remaining,
                )
            except Exception as exc:
                error = _mapped(exc, subject)
                if not isinstance(error, TemporaryError):
                    raise error from exc
            if op.status != done:
                # wait() may answer at once (best effort); do not spin.
                pause = self.poll_interval_s - (time.monotonic() - began)
                if pause > 0:
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        return op

    @staticmethod
    def _remaining(deadline: float, cap: float) -> float:
        return max(0.001, min(cap, deadline - time.monotonic()))


def _mapped(exc: BaseException, subject: str) -> YoyoError:
    error = translate(exc, subject)
    if error is None:
        raise exc
    return error
