"""MemoryStore (the simulator's ports.Store) and CountingStore (the benchmarks' meter)."""

from __future__ import annotations

import pytest

from yoyo_control.domain.model import Heartbeat, KillSwitch, Lease, PoolState
from yoyo_control.ports import Event
from yoyo_control.sim.counting import CountingStore
from yoyo_control.sim.memory_store import MemoryStore


def event(i: int, pool: str = "p", at: float = 0.0) -> Event:
    return Event(id=f"e{i}", kind="fact", at=at or float(i), pool=pool, reason=str(i))


def beat(instance: str, sent: float, busy: bool = False) -> Heartbeat:
    return Heartbeat(instance, "boot-1", sent, sent, busy=busy)


@pytest.fixture(params=[False, True], ids=["objects", "roundtrip"])
def store(request: pytest.FixtureRequest) -> MemoryStore:
    return MemoryStore(roundtrip=request.param)


def test_a_transaction_reads_its_own_writes_and_commits_them(store: MemoryStore) -> None:
    def txn(tx):
        tx.save_pool(PoolState(pool="p", epoch=3))
        tx.save_kill(KillSwitch(True, "r", "me", 1.0))
        tx.append(event(1))
        return tx.load_pool("p").epoch, tx.load_kill().engaged, tx.has_event("e1")

    assert store.transact(txn) == (3, True, True)
    assert store.get_pool("p").epoch == 3 and store.get_kill().engaged
    assert [e.id for e in store.events()] == ["e1"] and store.list_pools() == ["p"]


def test_a_transaction_that_raises_commits_nothing(store: MemoryStore) -> None:
    def txn(tx):
        tx.save_pool(PoolState(pool="p", epoch=9))
        tx.append(event(1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.transact(txn)
    assert store.get_pool("p") == PoolState(pool="p") and store.events() == []


def test_heartbeats_live_beside_the_pool_and_only_newer_ones_win(store: MemoryStore) -> None:
    assert store.put_heartbeat("p", beat("vm", 10, busy=True)) is None
    assert store.put_heartbeat("p", beat("vm", 5)).sent_at == 10  # stale: kept the newer
    assert store.get_pool("p").heartbeats["vm"].sent_at == 10
    store.put_heartbeat("p", beat("vm", 20))
    stored = store.get_pool("p").heartbeats["vm"]
    assert stored.sent_at == 20 and stored.last_busy_at == 10  # carried over by merge()
    store.transact(lambda tx: tx.save_pool(tx.load_pool("p")))
    assert store.get_pool("p").heartbeats["vm"].sent_at == 20  # save_pool ignores them


def test_an_event_id_is_appended_once_and_events_filter_and_limit(store: MemoryStore) -> None:
    store.transact(lambda tx: [tx.append(event(i, "p" if i % 2 else "q")) for i in range(1, 9)])
    store.transact(lambda tx: tx.append(Event(id="e1", kind="fact", at=99, reason="dup")))
    assert [e.id for e in store.events(limit=3)] == ["e6", "e7", "e8"]
    assert [e.id for e in store.events(pool="p")] == ["e1", "e3", "e5", "e7"]
    assert [e.id for e in store.events(since=6)] == ["e7", "e8"]
    assert store.events()[0].reason == "1"


def test_a_bounded_log_forgets_the_oldest_events() -> None:
    store = MemoryStore(max_events=3)
    store.transact(lambda tx: [tx.append(event(i)) for i in range(5)])
    assert [e.id for e in store.events()] == ["e2", "e3", "e4"]
    assert not store.transact(lambda tx: tx.has_event("e0"))


def test_roundtrip_stores_documents_not_objects() -> None:
    store = MemoryStore(roundtrip=True)
    lease = Lease("cycle", ("a",), 1, 0.0, 10.0, 20.0)
    store.transact(lambda tx: tx.save_pool(PoolState(pool="p", lease=lease)))
    assert isinstance(store._pools["p"], dict)
    assert store.get_pool("p").lease == lease


def test_counting_prices_port_calls_as_firestore_bills_them() -> None:
    inner = MemoryStore()
    inner.put_heartbeat("p", beat("vm-0", 1))
    inner.put_heartbeat("p", beat("vm-1", 1))
    counting = CountingStore(inner)

    def txn(tx):
        tx.load_kill()  # 1 read
        tx.load_pool("p")  # 1 + 2 heartbeat documents
        tx.has_event("fact:1")  # 1 read
        tx.append(event(1, at=5))  # id "e1" not checked: 1 read + 1 write
        tx.append(Event(id="fact:1", kind="fact", at=5))  # checked above: 1 write
        tx.save_pool(PoolState(pool="p"))  # 1 write

    counting.transact(txn)
    assert (counting.reads, counting.writes, counting.counts["deletes"]) == (6, 3, 2)
    counting.get_kill()  # 1
    counting.get_pool("q")  # 1 + a query that found nothing: 1
    counting.put_heartbeat("p", beat("vm-0", 2))  # 1 + 1
    counting.list_pools()  # 1
    assert (counting.reads, counting.writes) == (6 + 1 + 2 + 1 + 1, 3 + 1)
    assert counting.counts["transactions"] == 1 and counting.counts["get_pool.calls"] == 1
    assert inner.get_pool("p").heartbeats["vm-0"].sent_at == 2  # calls went through
