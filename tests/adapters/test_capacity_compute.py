"""Capacity across zones through the real google-cloud-compute client and the REST stub:
a stockout in the first zone, and the wake is served from the second one."""

from __future__ import annotations

from pathlib import Path

import pytest

from compute_stub import ComputeStub
from yoyo_control import names
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.compute_engine import ComputeEngine
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import RunRequested, Tick
from yoyo_control.errors import CapacityError
from yoyo_control.service import Service

Z1, Z2 = "us-central1-a", "us-east4-c"
GPU = {names.LABEL_POOL: "gpu"}
CONFIG = parse_config(
    {
        "pools": {
            "gpu": {
                "zone": Z1,
                "hourly_price_usd": 0.7,
                "instances": ["vm-a", {"name": "vm-b", "zone": Z2, "hourly_price_usd": 0.8}],
                "zone_backoff_s": 120,
            }
        }
    }
)


@pytest.fixture
def patient(make_engine) -> ComputeEngine:
    """An engine with generous timeouts: these tests assert outcomes, not latency (the
    machine is shared; a loaded stub must not turn a refusal into a timeout)."""
    return make_engine(request_timeout_s=30.0, operation_timeout_s=60.0)


def test_the_stub_refuses_a_zone_in_the_real_error_format(stub, patient) -> None:
    engine = patient
    stub.add(Z1, "vm-a", "TERMINATED", GPU)
    stub.refuse_zone(Z1, "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", times=1)
    with pytest.raises(CapacityError, match="does not have enough resources"):
        engine.start(Z1, "vm-a", "6f1d1c7e-3b1a-5d2e-9a47-7d0f3c9b2a11")
    assert stub.status(Z1, "vm-a") == "TERMINATED"
    op = stub.operation(stub.calls_of("start")[0].operation)
    assert op["httpErrorStatusCode"] == 503
    assert op["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    engine.start(Z1, "vm-a", "6f1d1c7e-3b1a-5d2e-9a47-7d0f3c9b2a12")  # times=1: then it serves
    assert stub.status(Z1, "vm-a") == "RUNNING"


@pytest.fixture
def service(stub: ComputeStub, patient: ComputeEngine, tmp_path: Path):
    stub.add(Z1, "vm-a", "TERMINATED", GPU)
    stub.add(Z2, "vm-b", "TERMINATED", GPU)
    store = SqliteStore(tmp_path / "yoyo.sqlite3")
    yield Service(store, patient, ManualClock(), CONFIG), store
    store.close()


def test_a_wake_refused_in_the_first_zone_is_served_from_the_second(stub, service) -> None:
    svc, store = service
    stub.refuse_zone(Z1)

    svc.handle(RunRequested("m-1", svc.clock.now(), "gpu", "wake", "request", 600))

    assert (stub.status(Z1, "vm-a"), stub.status(Z2, "vm-b")) == ("TERMINATED", "RUNNING")
    assert [(c.zone, c.instance) for c in stub.acted("start")] == [(Z1, "vm-a"), (Z2, "vm-b")]
    state = store.get_pool("gpu")
    assert state.instances["vm-a"].last_action.said.startswith("capacity: ")
    assert state.instances["vm-a"].error is None
    assert state.zones[Z1].refusals == 1 and state.zones[Z1].backoff_until is not None
    reasons = [e.reason for e in store.events("gpu")]
    assert any("zone us-central1-a skipped: 1 capacity refusal(s)" in r for r in reasons)
    assert any("vm-a: capacity: " in r and "ZONE_RESOURCE_POOL_EXHAUSTED" in r for r in reasons)

    # The next ticks see both zones and start nothing more: the demand is served.
    for i in range(3):
        svc.clock.advance(60)
        svc.handle(Tick(f"t-{i}", svc.clock.now()))
    assert len(stub.acted("start")) == 2
    listed = {c.zone for c in stub.calls_of("list")}
    assert listed == {Z1, Z2}
