"""ComputeEngine through the real google-cloud-compute client against the REST stub."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from compute_stub import ComputeStub
from yoyo_control import names
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.compute_engine import ComputeEngine, classify
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import RunRequested, StopRequested
from yoyo_control.errors import CapacityError, InstanceNotFound, PermanentError, TemporaryError
from yoyo_control.service import Service

ZONE = "us-central1-a"
GPU = {names.LABEL_POOL: "gpu"}


def rid() -> str:
    return str(uuid.uuid4())


# --- reads ---------------------------------------------------------------------------


def test_list_returns_only_the_pool_s_instances_across_pages(stub, make_engine) -> None:
    for i in range(5):
        stub.add(ZONE, f"gpu-{i}", "RUNNING" if i == 2 else "TERMINATED", GPU)
    stub.add(ZONE, "cpu-0", "RUNNING", {names.LABEL_POOL: "cpu"})
    stub.add("europe-west4-a", "gpu-far", "RUNNING", GPU)

    listed = make_engine(page_size=2).list_instances("gpu", ZONE)

    assert [(i.name, i.status) for i in listed] == [
        ("gpu-0", "TERMINATED"),
        ("gpu-1", "TERMINATED"),
        ("gpu-2", "RUNNING"),
        ("gpu-3", "TERMINATED"),
        ("gpu-4", "TERMINATED"),
    ]
    assert all(i.labels == GPU for i in listed)
    pages = stub.calls_of("list")
    assert len(pages) == 3
    assert {c.query["filter"] for c in pages} == {f'labels.{names.LABEL_POOL} = "gpu"'}


def test_get_reads_status_and_labels(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "STAGING", GPU)
    got = engine.get(ZONE, "vm-0")
    assert (got.name, got.status, dict(got.labels)) == ("vm-0", "STAGING", GPU)


def test_an_unknown_instance_is_permanent_and_says_not_found(stub, engine) -> None:
    with pytest.raises(InstanceNotFound, match="not found"):
        engine.get(ZONE, "ghost")
    with pytest.raises(InstanceNotFound, match="not found"):
        engine.start(ZONE, "ghost", rid())
    assert stub.acted() == []


# --- start / stop ----------------------------------------------------------------------


def test_start_waits_for_the_operation_and_the_instance_is_running(stub, engine) -> None:
    stub.ticks_to_finish = 3
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    request_id = rid()

    engine.start(ZONE, "vm-0", request_id)

    assert stub.status(ZONE, "vm-0") == "RUNNING"
    [call] = stub.acted("start")
    assert call.request_id == request_id
    assert stub.operation(call.operation)["status"] == "DONE"
    assert len(stub.calls_of("operation.wait")) == 3  # polled until DONE, not beyond


def test_stop_waits_for_the_operation_and_the_instance_is_terminated(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "RUNNING", GPU)
    engine.stop(ZONE, "vm-0", rid())
    assert stub.status(ZONE, "vm-0") == "TERMINATED"
    [call] = stub.acted("stop")
    assert stub.operation(call.operation)["status"] == "DONE"


def test_start_of_a_running_and_stop_of_a_stopped_instance_are_no_ops(stub, engine) -> None:
    stub.add(ZONE, "up", "RUNNING", GPU)
    stub.add(ZONE, "down", "TERMINATED", GPU)
    engine.start(ZONE, "up", rid())
    engine.stop(ZONE, "down", rid())
    assert (stub.status(ZONE, "up"), stub.status(ZONE, "down")) == ("RUNNING", "TERMINATED")
    assert stub.calls_of("operation.wait") == []  # the no-op operations were DONE at once


def test_a_repeated_request_id_is_not_acted_on_twice(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    request_id = rid()
    engine.start(ZONE, "vm-0", request_id)
    stub.set_status(ZONE, "vm-0", "TERMINATED")  # preempted meanwhile
    engine.start(ZONE, "vm-0", request_id)  # a retry of the SAME decision

    first, second = stub.calls_of("start")
    assert (first.acted, second.acted) == (True, False)
    assert first.operation == second.operation
    assert stub.status(ZONE, "vm-0") == "TERMINATED"  # the retry did not start it again


def test_a_lost_response_is_temporary_and_the_retry_does_not_act_twice(stub, make_engine) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.hang_next(1, seconds=30, methods=("start",), after_acting=True)
    engine = make_engine(request_timeout_s=0.3)
    request_id = rid()

    with pytest.raises(TemporaryError, match="Timeout"):
        engine.start(ZONE, "vm-0", request_id)
    engine.start(ZONE, "vm-0", request_id)

    assert [c.acted for c in stub.calls_of("start")] == [True, False]
    assert stub.status(ZONE, "vm-0") == "RUNNING"


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_unavailability_are_temporary(stub, engine, status: int) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.fail_next(1, status, methods=("start",))
    with pytest.raises(TemporaryError, match=str(status)):
        engine.start(ZONE, "vm-0", rid())
    assert stub.acted() == []
    stub.fail_next(1, status, methods=("list",))
    with pytest.raises(TemporaryError):
        engine.list_instances("gpu", ZONE)


def test_a_permission_error_is_permanent_and_not_a_missing_instance(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.fail_next(1, 403, methods=("start",))
    with pytest.raises(PermanentError) as info:
        engine.start(ZONE, "vm-0", rid())
    assert "not found" not in str(info.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("wait_hold_s", [0.0, 30.0], ids=["wait-answers-at-once", "wait-holds"])
def test_an_operation_that_never_finishes_is_temporary_after_the_bound(
    stub, make_engine, wait_hold_s: float
) -> None:
    stub.wait_hold_s = wait_hold_s
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.never_finish_next()
    engine = make_engine(operation_timeout_s=0.3, poll_interval_s=0.02)

    with pytest.raises(TemporaryError, match=r"not DONE within 0\.3s"):
        engine.start(ZONE, "vm-0", rid())

    [call] = stub.acted("start")
    assert stub.operation(call.operation)["status"] != "DONE"
    assert stub.status(ZONE, "vm-0") in ("PROVISIONING", "STAGING")


def test_an_operation_ending_with_quota_exceeded_is_permanent(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.fail_operation_next("QUOTA_EXCEEDED", http_status=403)
    with pytest.raises(PermanentError, match=r"quota exceeded.*QUOTA_EXCEEDED"):
        engine.start(ZONE, "vm-0", rid())
    assert stub.status(ZONE, "vm-0") == "TERMINATED"


def test_an_operation_ending_with_a_zone_stockout_is_a_capacity_refusal(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    stub.fail_operation_next(
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        f"The zone 'projects/{stub.project}/zones/{ZONE}' does not have enough resources available",
        http_status=503,
    )
    with pytest.raises(CapacityError, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        engine.start(ZONE, "vm-0", rid())
    assert stub.status(ZONE, "vm-0") == "TERMINATED"


def test_starting_a_stopping_instance_is_temporary(stub, engine) -> None:
    stub.add(ZONE, "vm-0", "STOPPING", GPU)
    with pytest.raises(TemporaryError, match="resourceNotReady"):
        engine.start(ZONE, "vm-0", rid())
    assert stub.acted() == []


def test_an_unreachable_endpoint_is_temporary(make_engine) -> None:
    with ComputeStub() as gone:
        endpoint = gone.endpoint
    engine = make_engine(client_options={"api_endpoint": endpoint}, request_timeout_s=2.0)
    with pytest.raises(TemporaryError, match="ConnectionError"):
        engine.get(ZONE, "vm-0")


@pytest.mark.parametrize(
    ("status", "reasons", "subject", "expected"),
    [
        (400, ["resourceNotReady"], "instance vm-0", TemporaryError),
        (409, [], "instance vm-0", TemporaryError),
        (403, ["rateLimitExceeded"], "instance vm-0", TemporaryError),
        (403, ["quotaExceeded"], "instance vm-0", PermanentError),
        (400, ["invalid"], "instance vm-0", PermanentError),
        (502, [], "instance vm-0", TemporaryError),
        (504, [], "instance vm-0", TemporaryError),
        (None, ["ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"], "instance vm-0", CapacityError),
        (503, ["ZONE_RESOURCE_POOL_EXHAUSTED"], "instance vm-0", CapacityError),
        (503, ["STOCKOUT"], "instance vm-0", CapacityError),
        (None, ["REGION_RESOURCE_POOL_EXHAUSTED"], "instance vm-0", CapacityError),
        (404, ["notFound"], "operation op-1 (start instance vm-0)", TemporaryError),
    ],
)
def test_classify_maps_each_failure_once(status, reasons, subject, expected) -> None:
    error = classify(status, reasons, "message", subject)
    assert type(error) is expected
    assert "not found" not in str(error)  # only a missing instance says so


def test_importing_the_adapter_builds_no_client() -> None:
    code = (
        "import sys; from yoyo_control.adapters.compute_engine import ComputeEngine; "
        "ComputeEngine('p'); print('google.cloud.compute_v1' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


# --- the service end to end ----------------------------------------------------------


CONFIG = parse_config(
    {"pools": {"gpu": {"zone": ZONE, "instances": ["vm-0"], "action_retry_s": 60}}}
)


@pytest.fixture
def service(stub: ComputeStub, engine: ComputeEngine, tmp_path: Path):
    stub.add(ZONE, "vm-0", "TERMINATED", GPU)
    store = SqliteStore(tmp_path / "yoyo.sqlite3")
    clock = ManualClock()
    yield Service(store, engine, clock, CONFIG), store, clock
    store.close()


def test_service_starts_once_for_a_redelivered_fact_and_stops_on_request(stub, service) -> None:
    svc, store, clock = service
    run = RunRequested("m-1", clock.now(), "gpu", "cycle", "nightly", 1800)

    assert not svc.handle(run).duplicate
    assert svc.handle(run).duplicate
    assert stub.status(ZONE, "vm-0") == "RUNNING"
    assert len(stub.acted("start")) == 1
    assert store.get_pool("gpu").instances["vm-0"].last_action.outcome == "done"

    clock.advance(60)
    svc.handle(StopRequested("m-2", clock.now(), "gpu", "operator", "done for today"))
    assert stub.status(ZONE, "vm-0") == "TERMINATED"
    assert [len(stub.acted("start")), len(stub.acted("stop"))] == [1, 1]


def test_service_retry_after_a_lost_response_reuses_the_request_id(stub, service) -> None:
    svc, store, clock = service
    svc.compute.request_timeout_s = 0.3
    stub.hang_next(1, seconds=30, methods=("start",), after_acting=True)
    run = RunRequested("m-1", clock.now(), "gpu", "cycle", "nightly", 1800)

    with pytest.raises(TemporaryError):
        svc.handle(run)  # the start happened but its answer was lost
    clock.advance(61)  # past action_retry_s
    assert svc.handle(run).duplicate  # Pub/Sub redelivers the message

    first, retry = stub.calls_of("start")
    assert retry.request_id == first.request_id
    assert (first.acted, retry.acted) == (True, False)
    assert retry.operation == first.operation  # the retry waited for the original operation
    assert stub.status(ZONE, "vm-0") == "RUNNING"
    assert store.get_pool("gpu").instances["vm-0"].last_action.outcome == "done"
