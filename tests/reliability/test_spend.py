"""Money: the real-time ledger against what the simulated Compute really billed.

DESIGN.md §4: the control plane integrates observed running time × the hourly price and
enforces daily and monthly caps itself; an overrun beyond a cap is bounded by one tick.
Ground truth is the simulated Compute's bill (instance seconds in BILLED_STATUSES).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from reliability.harness import World, pool_config, quiet_logs, scratch_dir
from reliability.invariants import TALLY
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import QueueDepthObserved, RunRequested, StopRequested, Tick
from yoyo_control.errors import TemporaryError

SUITE = "spend"
PER_TICK = 3.6 / 3600 * 60  # one instance, one minute


@pytest.fixture
def make_world() -> Iterator[Any]:
    worlds: list[World] = []
    with scratch_dir() as directory, quiet_logs():

        def make(config: Any) -> World:
            sub = directory / str(len(worlds))
            sub.mkdir()
            worlds.append(World.build(config, sub))
            return worlds[-1]

        try:
            yield make
        finally:
            for w in worlds:
                w.close()


def minutes(w: World, n: int) -> None:
    """``n`` minutes with a tick at each; Compute's operations move one step a minute."""
    for _ in range(n):
        w.clock.advance(60)
        w.sim.advance()
        with contextlib.suppress(TemporaryError):  # Pub/Sub redelivers; the next tick heals
            w.service.handle(Tick(f"tick-{w.clock.now():.0f}", w.clock.now()))


def run(w: World, pool: str = "gpu", instances: int = 1) -> None:
    now = w.clock.now()
    w.service.handle(RunRequested(f"run-{pool}-{now:.0f}", now, pool, "cycle", "nightly", 7200))
    if instances > 1:  # demand for every instance of the pool
        fact = QueueDepthObserved(f"queue-{pool}-{now:.0f}", now, pool, instances, "producer")
        w.service.handle(fact)


def test_one_instance_overruns_a_daily_cap_by_at_most_one_tick(make_world: Any) -> None:
    w = make_world(pool_config(daily_cap_usd=0.5, idle_timeout_s=7200, max_session_s=7200))
    run(w)
    minutes(w, 20)
    spent = w.sim.day_spend("gpu")
    TALLY[SUITE]["cap-overrun-one-instance"].add(relevant=True)
    assert not w.sim.running("vm-0") and w.store.get_pool("gpu").paused
    assert 0.5 <= spent <= 0.5 + PER_TICK + 1e-9, spent


def test_n_instances_overrun_a_daily_cap_by_at_most_one_tick_each(make_world: Any) -> None:
    w = make_world(
        pool_config(
            instances=("vm-0", "vm-1"), daily_cap_usd=0.5, idle_timeout_s=7200, max_session_s=7200
        )
    )
    run(w, instances=2)
    assert w.sim.running("vm-0") and w.sim.running("vm-1")
    minutes(w, 20)
    spent = w.sim.day_spend("gpu")
    TALLY[SUITE]["cap-overrun-n-instances"].add(relevant=True)
    assert w.store.get_pool("gpu").paused and not w.sim.running("vm-0")
    assert 0.5 - 2 * PER_TICK <= spent <= 0.5 + 2 * PER_TICK + 1e-9, spent


def test_n_instances_overrun_a_daily_cap_by_at_most_one_instance_tick(make_world: Any) -> None:
    w = make_world(
        pool_config(
            instances=("vm-0", "vm-1"), daily_cap_usd=0.5, idle_timeout_s=7200, max_session_s=7200
        )
    )
    run(w, instances=2)
    minutes(w, 20)
    spent = w.sim.day_spend("gpu")
    assert spent <= 0.5 + PER_TICK + 1e-9, f"spent {spent:.3f} against a cap of 0.50"


def test_the_ledger_charges_the_time_a_vm_spends_stopping(make_world: Any) -> None:
    """B3 (fixed in 42c50c1): STOPPING was a billed status the ledger never charged."""
    w = make_world(pool_config(idle_timeout_s=7200, max_session_s=7200))
    run(w)
    minutes(w, 10)
    w.sim.mode, w.sim.lag_steps = "timeout", 5  # the stop's operation takes five minutes
    with contextlib.suppress(TemporaryError):  # the wait for the operation ran out
        w.service.handle(StopRequested("stop", w.clock.now(), "gpu", "alice", "done"))
    w.sim.mode = "instant"
    minutes(w, 8)
    assert w.sim.instances["vm-0"].status == "TERMINATED"
    truth, ledger = w.sim.day_spend("gpu"), w.store.get_pool("gpu").ledger.day_usd
    TALLY[SUITE]["ledger-vs-bill"].add(relevant=True)
    assert abs(truth - ledger) <= PER_TICK + 1e-9, f"billed {truth:.3f}, ledger {ledger:.3f}"


def test_the_ledger_follows_the_bill_through_starts_stops_and_preemptions(
    make_world: Any,
) -> None:
    w = make_world(pool_config(idle_timeout_s=7200, max_session_s=7200, restart_backoff_s=60))
    for _ in range(3):
        run(w)
        minutes(w, 7)
        w.sim.preempt("vm-0")  # restarted by rule 8 after its backoff
        minutes(w, 4)
        w.service.handle(StopRequested(f"stop-{w.clock.now()}", w.clock.now(), "gpu", "a", "b"))
        minutes(w, 3)
    truth, ledger = w.sim.day_spend("gpu"), w.store.get_pool("gpu").ledger.day_usd
    TALLY[SUITE]["ledger-vs-bill"].add(relevant=True)
    # The ledger may charge up to a tick more per preemption (it learns of it at a tick),
    # never less than what was billed.
    assert truth - 1e-9 <= ledger <= truth + 3 * PER_TICK + 1e-9, (truth, ledger)


def test_the_overall_daily_cap_holds_across_pools(make_world: Any) -> None:
    """B6 (fixed in 00f0f73): config.caps were parsed but not enforced."""
    pool = {
        "zone": "z",
        "hourly_price_usd": 3.6,
        "idle_timeout_s": 7200,
        "max_session_s": 7200,
        "lease_s": 7200,
    }
    config = parse_config(
        {
            "budget": {"budget_ids": ["b-1"]},
            "caps": {"daily_usd": 0.5},
            "pools": {
                "gpu": {**pool, "instances": ["vm-0"]},
                "cpu": {**pool, "instances": ["c-0"]},
            },
        }
    )
    w = make_world(config)
    run(w, "gpu")
    run(w, "cpu")
    minutes(w, 20)
    total = w.sim.day_spend("gpu") + w.sim.day_spend("cpu")
    assert total <= 0.5 + 2 * PER_TICK + 1e-9, f"spent {total:.2f} across pools, cap 0.50"


def test_a_start_whose_answer_was_lost_still_overruns_a_cap_by_at_most_one_tick(
    make_world: Any,
) -> None:
    w = make_world(pool_config(daily_cap_usd=0.5, idle_timeout_s=7200, max_session_s=7200))
    w.sim.fail_next("lost", 1, ("start",))  # Compute starts the VM; the answer is lost
    with contextlib.suppress(TemporaryError):
        run(w)
    assert w.sim.running("vm-0")
    minutes(w, 20)
    spent = w.sim.day_spend("gpu")
    assert not w.sim.running("vm-0")
    assert spent <= 0.5 + PER_TICK + 1e-9, f"spent {spent:.3f} against a cap of 0.50"
