"""What only the Firestore adapter promises: its documents' layout (names.py), lenient
reading of a console-written kill switch, valid document ids, laziness, and contention
surfacing as TemporaryError.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds

import emulators
from yoyo_control import names
from yoyo_control.adapters.firestore_store import FirestoreStore, doc_id, kill_from_doc
from yoyo_control.bootstrap import build_store
from yoyo_control.config import parse_config
from yoyo_control.domain.model import Heartbeat, KillSwitch, PoolState
from yoyo_control.errors import TemporaryError
from yoyo_control.ports import Event

T0 = 1_800_000_000.0
AT = datetime.fromtimestamp(T0, UTC)

# --- pure: no emulator ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (None, KillSwitch()),
        ({}, KillSwitch()),
        ({"engaged": True, "reason": "r", "by": "b", "at": T0}, KillSwitch(True, "r", "b", T0)),
        ({"engaged": False, "at": int(T0)}, KillSwitch(False, at=T0)),
        ({"engaged": "true"}, KillSwitch(True)),
        ({"engaged": " TRUE "}, KillSwitch(True)),
        ({"engaged": "yes"}, KillSwitch(True)),
        ({"engaged": "on"}, KillSwitch(True)),
        ({"engaged": "1"}, KillSwitch(True)),
        ({"engaged": 1}, KillSwitch(True)),
        ({"engaged": "false"}, KillSwitch(False)),
        ({"engaged": "No"}, KillSwitch(False)),
        ({"engaged": "off"}, KillSwitch(False)),
        ({"engaged": "0"}, KillSwitch(False)),
        ({"engaged": ""}, KillSwitch(False)),
        ({"engaged": 0}, KillSwitch(False)),
        ({"engaged": None, "reason": "x"}, KillSwitch(False, "x")),
        ({"reason": "only a reason"}, KillSwitch(False, "only a reason")),
        ({"engaged": "maybe"}, KillSwitch(True)),  # not a clear "no": the switch wins
        ({"engaged": {"value": False}}, KillSwitch(True)),
        (
            {"engaged": True, "at": DatetimeWithNanoseconds.fromtimestamp(T0, UTC)},
            KillSwitch(True, at=T0),
        ),
        ({"engaged": True, "at": AT.replace(tzinfo=None)}, KillSwitch(True, at=T0)),  # naive: UTC
        ({"engaged": True, "at": "2027-01-15T08:00:00Z"}, KillSwitch(True, at=1_800_000_000.0)),
        ({"engaged": True, "at": "1800000000"}, KillSwitch(True, at=T0)),
        ({"engaged": True, "at": "yesterday"}, KillSwitch(True)),
        ({"engaged": True, "at": True}, KillSwitch(True)),
        ({"engaged": True, "at": float("nan")}, KillSwitch(True)),
        ({"engaged": True, "reason": 42, "by": None}, KillSwitch(True, "42", "")),
    ],
)
def test_kill_switch_documents_are_read_leniently_and_fail_safe(doc, expected) -> None:
    assert kill_from_doc(doc) == expected


def test_document_ids_are_always_valid_and_distinct() -> None:
    keys = ["fact:Tick:1", "a/b", "a%2Fb", "a%b", "", ".", "..", "__x__", "_x_", "é" * 800]
    keys += ["%H" + "0" * 64, "x" * 1500, "x" * 1501]
    encoded = [doc_id(k) for k in keys]
    assert len(set(encoded)) == len(keys)
    for value in encoded:
        assert "/" not in value and value not in ("", ".", "..")
        assert not re.fullmatch(r"__.*__", value) and len(value.encode()) <= 1500
    assert doc_id("fact:RunRequested:123") == "fact:RunRequested:123"  # ':' is fine as is


def test_the_store_makes_no_client_until_first_used() -> None:
    store = FirestoreStore("no-such-project")  # no credentials, no network here
    assert store._client is None
    store.close()


# --- on the emulator -----------------------------------------------------------------


def raw(factory) -> Any:
    return emulators.firestore_client(factory.host, factory.project)


@pytest.mark.emulator
def test_documents_live_where_names_py_says(firestore_factory) -> None:
    store = firestore_factory(event_ttl_days=7)
    store.transact(lambda tx: tx.save_pool(PoolState("gpu", epoch=3)))
    store.put_heartbeat("gpu", Heartbeat("vm-0", "boot-1", T0, T0 + 1))
    store.transact(lambda tx: tx.save_kill(KillSwitch(True, "drill", "ops", T0)))
    store.transact(lambda tx: tx.append(Event("fact:Tick:1", "fact", T0, "gpu", "1", "Tick")))
    client = raw(firestore_factory)
    try:
        pool = client.document(f"{names.COLLECTION_POOLS}/gpu").get().to_dict()
        assert pool["epoch"] == 3 and "heartbeats" not in pool
        beat = client.document(
            f"{names.COLLECTION_POOLS}/gpu/{names.SUBCOLLECTION_INSTANCES}/vm-0"
        ).get()
        assert beat.to_dict()["boot_id"] == "boot-1"
        kill = client.document(names.KILL_SWITCH_PATH).get().to_dict()
        assert kill == {"engaged": True, "reason": "drill", "by": "ops", "at": T0}
        event = client.document(f"{names.COLLECTION_EVENTS}/fact:Tick:1").get().to_dict()
        assert {k: event[k] for k in ("id", "kind", "at", "pool", "message_id", "reason")} == {
            "id": "fact:Tick:1",
            "kind": "fact",
            "at": T0,
            "pool": "gpu",
            "message_id": "1",
            "reason": "Tick",
        }
        expire_at = event[names.EVENT_TTL_FIELD]
        assert isinstance(expire_at, datetime)  # a timestamp: what a TTL policy needs
        in_a_week = datetime.now(UTC) + timedelta(days=7)
        assert in_a_week - timedelta(minutes=5) < expire_at <= in_a_week
    finally:
        client.close()


@pytest.mark.emulator
def test_a_kill_switch_written_in_the_console_is_obeyed(firestore_factory) -> None:
    store = firestore_factory()
    client = raw(firestore_factory)
    try:
        client.document(names.KILL_SWITCH_PATH).set({"engaged": "TRUE", "at": AT, "by": 7})
    finally:
        client.close()
    expected = KillSwitch(True, "", "7", T0)
    assert store.get_kill() == expected
    assert store.transact(lambda tx: tx.load_kill()) == expected
    # Ordered by the document's update time, whatever the console user typed in ``at``.
    assert store.get_kill().changed_at == pytest.approx(time.time(), abs=5)


@pytest.mark.emulator
def test_bootstrap_builds_a_working_store_for_the_emulator(firestore_factory) -> None:
    config = parse_config(
        {
            "project": firestore_factory.project,
            "pools": {"gpu": {"instances": ["vm-0"]}},
        }
    )
    with emulators.firestore_env(firestore_factory.host):
        store = build_store(config)
        assert isinstance(store, FirestoreStore)
        store.transact(lambda tx: tx.save_pool(PoolState("gpu", epoch=1)))  # client made here
    try:
        assert firestore_factory().get_pool("gpu").epoch == 1
    finally:
        store.close()


@pytest.mark.emulator
def test_contention_that_does_not_clear_is_a_temporary_error(firestore_factory) -> None:
    """Two store objects read the pool, then both commit; with no retries allowed at
    least one transaction fails with TemporaryError and writes nothing. (The emulator
    locks pessimistically: sometimes both time out, so "exactly one wins" would flake.)"""
    stores = [firestore_factory(max_attempts=1, retry_deadline_s=0.0) for _ in range(2)]
    both_read = threading.Barrier(2, timeout=30)
    outcomes: list[str] = []

    def worker(store: FirestoreStore, k: int) -> None:
        def txn(tx: Any) -> None:
            state = tx.load_pool("gpu")
            both_read.wait()
            tx.save_pool(PoolState("gpu", epoch=state.epoch + 1))
            tx.append(Event(f"decision:{k}", "decision", T0, "gpu"))

        try:
            store.transact(txn)
            outcomes.append("committed")
        except TemporaryError:
            outcomes.append("temporary")
        except threading.BrokenBarrierError:
            outcomes.append("not run again")  # a retry would wait on the spent barrier

    threads = [
        threading.Thread(target=worker, args=(s, k), daemon=True) for k, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and "temporary" in outcomes and "not run again" not in outcomes
    committed = outcomes.count("committed")
    assert stores[0].get_pool("gpu").epoch == committed  # the loser wrote nothing
    assert len(stores[0].events()) == committed
    assert sum(s.stats["temporary"] for s in stores) == 2 - committed
