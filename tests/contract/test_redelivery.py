"""Service behaviours found while running the contract suite, on each real store.

Each pins down a gap found in service.py (not in the stores) and since fixed: a
heartbeat redelivered after its reconcile failed, and a kill engaged between the
start's kill re-read and the start call.
"""

from __future__ import annotations

from typing import Any

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import HeartbeatReceived, KillRequested, RunRequested, Tick
from yoyo_control.domain.model import Heartbeat
from yoyo_control.errors import TemporaryError
from yoyo_control.service import Service

CONFIG = parse_config({"pools": {"gpu": {"zone": "z", "instances": ["vm-0"]}}})


class FailingTransactions:
    """The store, except that its next ``fail`` transact() calls raise TemporaryError
    (contention that outlasted the store's retries)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.fail = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def transact(self, fn: Any) -> Any:
        if self.fail:
            self.fail -= 1
            raise TemporaryError("injected: contention did not clear")
        return self._store.transact(fn)


def world(store: Any) -> tuple[Service, FailingTransactions, FakeCompute, ManualClock]:
    compute = FakeCompute()
    compute.add("gpu", "vm-0")
    clock = ManualClock()
    failing = FailingTransactions(store)
    return Service(failing, compute, clock, CONFIG), failing, compute, clock  # type: ignore[arg-type]


def fact_ids(store: Any) -> set[str]:
    return {e.message_id for e in store.events(limit=1000) if e.kind == "fact"}


def test_a_heartbeat_redelivered_after_a_failed_reconcile_is_recorded_and_reconciled(
    store,
) -> None:
    service, failing, _compute, clock = world(store)
    service.handle(RunRequested("run-1", clock.now(), "gpu", "cycle", "nightly", 1800))
    beat = Heartbeat("vm-0", "boot-1", clock.now(), 0.0, busy=True)
    fact = HeartbeatReceived("hb-1", clock.now(), "gpu", beat)
    failing.fail = 1
    with pytest.raises(TemporaryError):
        service.handle(fact)  # the reconcile fails: nothing of the beat is kept …
    assert "vm-0" not in store.get_pool("gpu").heartbeats
    clock.advance(5)
    service.handle(fact)  # … so Pub/Sub's redelivery still matters
    assert "hb-1" in fact_ids(store)
    assert store.get_pool("gpu").heartbeats["vm-0"].boot_id == "boot-1"


def test_a_kill_engaged_during_a_start_stops_the_vm_without_waiting_for_a_tick(
    store,
) -> None:
    service, _failing, compute, clock = world(store)
    service.handle(Tick("t-0", clock.now()))  # vm-0 observed TERMINATED
    clock.advance(1)
    killed: list[str] = []

    def kill_during_start(kind: str, instance: str, request_id: str) -> None:
        if kind == "start" and not killed:  # after the service's re-read, before the call
            killed.append(request_id)
            service.handle(KillRequested("kill-1", clock.now(), "drill", "ops"))

    compute.on_call = kill_during_start
    service.handle(RunRequested("run-1", clock.now(), "gpu", "cycle", "nightly", 1800))
    assert killed and store.get_kill().engaged
    assert compute.status["vm-0"] == "TERMINATED"


def test_a_vm_started_under_a_racing_kill_is_stopped_by_the_next_tick(store) -> None:
    """The bound that holds today for the gap above: one tick."""
    service, _failing, compute, clock = world(store)
    service.handle(Tick("t-0", clock.now()))
    clock.advance(1)

    def kill_during_start(kind: str, instance: str, request_id: str) -> None:
        if kind == "start" and not store.get_kill().engaged:
            service.handle(KillRequested("kill-1", clock.now(), "drill", "ops"))

    compute.on_call = kill_during_start
    service.handle(RunRequested("run-1", clock.now(), "gpu", "cycle", "nightly", 1800))
    clock.advance(60)
    service.handle(Tick("t-1", clock.now()))
    assert compute.status["vm-0"] == "TERMINATED"
    assert store.get_pool("gpu").lease is None
