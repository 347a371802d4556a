"""The Store contract (ports.py), one suite run against every adapter: [sqlite], [firestore].

Each test states one promise the service relies on and checks it on the stored result.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from yoyo_control.domain import history
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Demand,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    LeaseRequest,
    Ledger,
    PoolState,
)
from yoyo_control.ports import Event

T0 = 1_800_000_000.0


def full_state(pool: str = "gpu", epoch: int = 7) -> PoolState:
    record = ActionRecord(
        ActionKind.START, epoch, "5f0c1d2e-0000-5000-8000-000000000001", T0 + 1, "4-lease: x",
        outcome="done", attempts=2,
    )  # fmt: skip
    return PoolState(
        pool=pool,
        epoch=epoch,
        lease=Lease("cycle", ("nightly", "queue depth 3"), epoch, T0, T0 + 1800, T0 + 8 * 3600),
        requests=(LeaseRequest("operator", "wake", T0 + 600),),
        instances={
            "vm-0": Instance(
                "vm-0", Desired.RUNNING, "RUNNING", T0 + 2, T0 + 2, record, restarts=1
            ),
            "vm-1": Instance("vm-1", next_start_at=T0 + 60, retired_epoch=6, error="quota"),
            "stray": Instance("stray", observed="TERMINATED", orphan=True),
        },
        demand=Demand(3, "monitoring", T0 + 3),
        ledger=Ledger("2027-01-15", "2027-01", 1.25, 20.5, T0 + 4),
        paused="daily cap 5.00 reached",
        # The pool's history (issue 28): a field of the pool document, with no array
        # inside an array (Firestore refuses those).
        history=replace(
            history.record(
                history.record(history.EMPTY, T0 - 9 * 3600, T0 - 3600, "Europe/Paris"),
                T0 - 3000,
                T0 - 2900,
                "Europe/Paris",
            ),
            prewarm_day="2027-01-15",
            prewarm_s=1050.0,
            prewarm_at=T0 - 3600,
        ),
        last_decision="lease epoch 7 granted to cycle: nightly",
        updated_at=T0 + 5,
    )


def beat(instance: str, sent_at: float, busy: bool = False, boot: str = "boot-1") -> Heartbeat:
    return Heartbeat(instance, boot, sent_at, sent_at + 0.5, busy=busy, running=int(busy))


def event(event_id: str, at: float, pool: str = "gpu", reason: str = "") -> Event:
    return Event(event_id, "decision", at, pool, "m-" + event_id, reason or event_id, {"n": 1})


def save(store: Any, state: PoolState) -> None:
    store.transact(lambda tx: tx.save_pool(state))


def ids(events: list[Event]) -> list[str]:
    return [e.id for e in events]


# --- pools ---------------------------------------------------------------------------


def test_a_missing_pool_loads_as_an_empty_state(store) -> None:
    assert store.get_pool("gpu") == PoolState(pool="gpu")
    assert store.transact(lambda tx: tx.load_pool("gpu")) == PoolState(pool="gpu")
    assert store.list_pools() == []


def test_a_full_pool_state_round_trips(store) -> None:
    state = full_state()
    save(store, state)
    assert store.get_pool("gpu") == state
    assert store.transact(lambda tx: tx.load_pool("gpu")) == state
    assert store.list_pools() == ["gpu"]


def test_pools_are_listed_in_name_order_and_kept_apart(store) -> None:
    save(store, full_state("zeta", 1))
    save(store, full_state("alpha", 2))
    assert store.list_pools() == ["alpha", "zeta"]
    assert store.get_pool("alpha").epoch == 2 and store.get_pool("zeta").epoch == 1


# --- heartbeats ----------------------------------------------------------------------


def test_heartbeats_are_stored_per_instance_and_loaded_with_the_pool(store) -> None:
    save(store, full_state())
    assert store.put_heartbeat("gpu", beat("vm-0", T0 + 10, busy=True)) is None
    assert store.put_heartbeat("gpu", beat("vm-1", T0 + 11)) is None
    expected = {
        "vm-0": Heartbeat(
            "vm-0",
            "boot-1",
            T0 + 10,
            T0 + 10.5,
            busy=True,
            running=1,
            last_busy_at=T0 + 10.5,
            ready_since=T0 + 10.5,
        ),
        "vm-1": replace(beat("vm-1", T0 + 11), ready_since=T0 + 11.5),
    }
    assert store.get_pool("gpu").heartbeats == expected
    assert store.transact(lambda tx: tx.load_pool("gpu")).heartbeats == expected
    # Saving the pool never writes or erases heartbeats: they live in their own documents.
    store.transact(lambda tx: tx.save_pool(tx.load_pool("gpu")))
    save(store, full_state())
    assert store.get_pool("gpu").heartbeats == expected
    assert store.get_pool("other").heartbeats == {}


def test_get_heartbeat_reads_one_instance_document(store) -> None:
    assert store.get_heartbeat("gpu", "vm-0") is None
    store.put_heartbeat("gpu", beat("vm-0", T0 + 10))
    assert store.get_heartbeat("gpu", "vm-0") == store.get_pool("gpu").heartbeats["vm-0"]
    assert store.get_heartbeat("gpu", "vm-1") is None
    assert store.get_heartbeat("other", "vm-0") is None


def test_put_heartbeat_returns_the_previous_one_and_never_stores_a_stale_one(store) -> None:
    first = beat("vm-0", T0 + 10, busy=True)
    assert store.put_heartbeat("gpu", first) is None
    stored_first = store.get_pool("gpu").heartbeats["vm-0"]
    assert stored_first.last_busy_at == first.received_at
    second = beat("vm-0", T0 + 40)
    assert store.put_heartbeat("gpu", second) == stored_first
    stored_second = store.get_pool("gpu").heartbeats["vm-0"]
    assert stored_second.sent_at == T0 + 40 and stored_second.last_busy_at == first.received_at
    # Reordered delivery: an older report returns the current one and changes nothing.
    assert store.put_heartbeat("gpu", beat("vm-0", T0 + 20, busy=True)) == stored_second
    assert store.put_heartbeat("gpu", second) == stored_second  # same sent_at: stale too
    assert store.get_pool("gpu").heartbeats["vm-0"] == stored_second


# --- kill switch ---------------------------------------------------------------------


def test_the_kill_switch_defaults_to_released_and_round_trips(store) -> None:
    assert store.get_kill() == KillSwitch()
    assert store.transact(lambda tx: tx.load_kill()) == KillSwitch()
    engaged = KillSwitch(True, "budget: 120.00 of 100.00 USD", "budget", T0)
    store.transact(lambda tx: tx.save_kill(engaged))
    assert store.get_kill() == engaged
    assert store.transact(lambda tx: tx.load_kill()) == engaged
    released = KillSwitch(False, "lifted by ops", "ops", T0 + 60)
    store.transact(lambda tx: tx.save_kill(released))
    assert store.get_kill() == released


def test_the_kill_switch_changed_at_is_the_commit_time_not_the_writers_at(store) -> None:
    """A writer outside the control plane (``yoyoctl --direct``, a console) says ``at``
    with its own clock: the switch is ordered by the store's commit time instead."""
    before = time.time()
    store.transact(lambda tx: tx.save_kill(KillSwitch(True, "x", "client", before + 600)))
    after = time.time()
    for kill in (store.get_kill(), store.transact(lambda tx: tx.load_kill())):
        assert kill.at == before + 600  # shown as written …
        assert kill.changed_at is not None and before - 1 <= kill.changed_at <= after + 1


# --- event log -----------------------------------------------------------------------


def test_append_is_idempotent_on_the_event_id_and_the_first_wins(store) -> None:
    assert store.transact(lambda tx: tx.has_event("fact:Tick:1")) is False
    store.transact(lambda tx: tx.append(event("fact:Tick:1", T0, reason="first")))
    assert store.transact(lambda tx: tx.has_event("fact:Tick:1")) is True
    store.transact(lambda tx: tx.append(event("fact:Tick:1", T0 + 1, reason="second")))

    def twice_in_one_transaction(tx: Any) -> None:
        tx.append(event("fact:Tick:2", T0 + 2, reason="first"))
        tx.append(event("fact:Tick:2", T0 + 3, reason="second"))

    store.transact(twice_in_one_transaction)
    logged = store.events()
    assert [(e.id, e.reason, e.at) for e in logged] == [
        ("fact:Tick:1", "first", T0),
        ("fact:Tick:2", "first", T0 + 2),
    ]
    assert logged[0] == event("fact:Tick:1", T0, reason="first")


def test_events_are_ordered_by_time_then_by_insertion(store) -> None:
    store.transact(lambda tx: tx.append(event("b", T0 + 2)))
    store.transact(lambda tx: tx.append(event("a", T0 + 1)))  # logged later, happened earlier

    def same_instant(tx: Any) -> None:  # a fact and its decisions share one ``now``
        for name in ("e3", "e1", "e2"):
            tx.append(event(name, T0 + 3))

    store.transact(same_instant)
    store.transact(lambda tx: tx.append(event("e0", T0 + 3)))  # a tie across transactions
    assert ids(store.events()) == ["a", "b", "e3", "e1", "e2", "e0"]


def test_events_filter_by_pool_and_since_and_keep_the_newest_limit(store) -> None:
    def log(tx: Any) -> None:
        for i in range(6):
            tx.append(event(f"gpu-{i}", T0 + i, pool="gpu"))
            tx.append(event(f"cpu-{i}", T0 + i + 0.5, pool="cpu"))
        tx.append(Event("rejected:control:x", "rejected", T0 + 9, reason="bad json"))

    store.transact(log)
    assert ids(store.events(pool="gpu")) == [f"gpu-{i}" for i in range(6)]
    assert ids(store.events(pool="gpu", since=T0 + 3)) == ["gpu-4", "gpu-5"]  # strictly after
    assert ids(store.events(pool="gpu", limit=2)) == ["gpu-4", "gpu-5"]
    assert ids(store.events(since=T0 + 4.5, limit=2)) == ["cpu-5", "rejected:control:x"]
    assert ids(store.events(limit=3)) == ["gpu-5", "cpu-5", "rejected:control:x"]
    assert len(store.events(limit=100)) == 13
    assert store.events(pool="none") == []


def test_event_ids_with_any_characters_round_trip(store) -> None:
    odd = ["fact:Tick:a/b", "rejected:control:%2F", "..", "__x__", "fact:x:" + "é" * 900]

    def log(tx: Any) -> None:
        for i, event_id in enumerate(odd):
            tx.append(event(event_id, T0 + i))

    store.transact(log)
    assert ids(store.events()) == odd
    assert all(store.transact(lambda tx, i=i: tx.has_event(i)) for i in odd)
    assert store.transact(lambda tx: tx.has_event("fact:Tick:a")) is False


def test_event_data_comes_back_as_plain_json(store) -> None:
    data = {"fact": "StatusObserved", "statuses": {"vm-0": "RUNNING"}, "pairs": [[1, 2]]}
    data["tuple"] = ("a", 1.5, None, True)  # type: ignore[assignment]
    store.transact(lambda tx: tx.append(Event("x", "fact", T0, "gpu", "m", "r", data)))
    (logged,) = store.events()
    assert logged.data == {
        "fact": "StatusObserved",
        "statuses": {"vm-0": "RUNNING"},
        "pairs": [[1, 2]],
        "tuple": ["a", 1.5, None, True],
    }


# --- transactions --------------------------------------------------------------------


def test_a_transaction_reads_its_own_buffered_writes(store) -> None:
    def txn(tx: Any) -> tuple[Any, ...]:
        tx.save_pool(full_state())
        tx.save_kill(KillSwitch(True, "test", "me", T0))
        tx.append(event("e", T0))
        return tx.load_pool("gpu"), tx.load_kill(), tx.has_event("e")

    pool, kill, seen = store.transact(txn)
    assert (pool, kill, seen) == (full_state(), KillSwitch(True, "test", "me", T0), True)


def test_a_transaction_whose_fn_raises_writes_nothing(store) -> None:
    save(store, full_state(epoch=1))

    class Boom(Exception):
        pass

    def txn(tx: Any) -> None:
        tx.save_pool(full_state(epoch=2))
        tx.save_kill(KillSwitch(True, "never", "test", T0))
        tx.append(event("never", T0))
        raise Boom("after the writes")

    with pytest.raises(Boom, match="after the writes"):
        store.transact(txn)
    assert store.get_pool("gpu").epoch == 1
    assert store.get_kill() == KillSwitch()
    assert store.events() == []
    assert store.transact(lambda tx: tx.has_event("never")) is False


def test_concurrent_read_modify_write_transactions_serialise(store_factory) -> None:
    """Two threads (two store objects, like two function instances) each add 1 to the
    pool's epoch N times: the result is exactly 2N, as if they had run one after the other.

    On Firestore both threads' first attempts read the same epoch before either commits
    (a barrier forces the overlap), so at least one commit fails and ``fn`` is re-run.
    SQLite serialises writers on its lock (BEGIN IMMEDIATE) instead, so there ``fn``
    runs exactly 2N times.
    """
    n = 2 if store_factory.kind == "firestore" else 20
    stores = [store_factory(), store_factory()]
    overlap = threading.Barrier(2, timeout=30) if store_factory.kind == "firestore" else None
    calls = [0, 0]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        def increment(tx: Any) -> None:
            calls[k] += 1
            state = tx.load_pool("gpu")
            if overlap is not None and calls[k] == 1:
                overlap.wait()  # both have read epoch 0 and are about to write 1
            tx.save_pool(PoolState("gpu", epoch=state.epoch + 1))

        try:
            for _ in range(n):
                stores[k].transact(increment)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)  # daemon threads: a hang fails the test, not the session
    assert not any(t.is_alive() for t in threads), "a transaction never finished"
    assert errors == []
    assert stores[0].get_pool("gpu").epoch == 2 * n
    if store_factory.kind == "firestore":
        assert sum(calls) > 2 * n  # contention was real and was retried
    else:
        assert sum(calls) == 2 * n
