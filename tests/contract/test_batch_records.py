"""The Store contract for batch records, on every adapter: [sqlite], [firestore]."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from yoyo_control.domain import batch as b
from yoyo_control.errors import TemporaryError

T0 = 1_800_000_000.0


def record(batch_id: str = "batch_1", pool: str = "gpu", at: float = T0) -> b.Batch:
    return b.Batch(
        batch_id,
        pool,
        "/v1/chat/completions",
        f"batches/{batch_id}/input.jsonl",
        created_at=at,
        expires_at=at + 86400,
        status=b.Status.IN_PROGRESS,
        shards=(b.Shard(0, 1, 100, 0, 9000), b.Shard(1, 101, 150, 9000, 13000)),
        request_counts=b.RequestCounts(150, 3, 1),
        metadata={"job": "nightly \u00e9"},
        in_progress_at=at + 1,
    )


def test_a_batch_round_trips_every_field(store: Any) -> None:
    assert store.get_batch("batch_1") is None
    stored = store.update_batch("batch_1", lambda current: record() if current is None else None)
    assert stored == record()
    assert store.get_batch("batch_1") == record()


def test_update_sees_the_current_record_and_none_leaves_it(store: Any) -> None:
    store.update_batch("batch_1", lambda _: record())
    cancelled = store.update_batch("batch_1", lambda cur: b.cancel(cur, T0 + 5))
    assert cancelled.status is b.Status.CANCELLING
    assert store.update_batch("batch_1", lambda cur: None) == cancelled
    assert store.get_batch("batch_1") == cancelled


def test_list_filters_by_pool_and_pending_newest_first(store: Any) -> None:
    store.update_batch("a", lambda _: record("a", "gpu", T0))
    store.update_batch("b", lambda _: record("b", "gpu", T0 + 10))
    store.update_batch("c", lambda _: record("c", "cpu", T0 + 5))
    done = replace(record("d", "gpu", T0 + 20), status=b.Status.COMPLETED)
    store.update_batch("d", lambda _: done)
    assert [x.id for x in store.list_batches()] == ["d", "b", "c", "a"]
    assert [x.id for x in store.list_batches(pool="gpu")] == ["d", "b", "a"]
    assert [x.id for x in store.list_batches(pool="gpu", pending=True)] == ["b", "a"]
    assert [x.id for x in store.list_batches(pending=True)] == ["b", "c", "a"]


def test_concurrent_updates_lose_none(store_factory: Any) -> None:
    """Ten writers each add one to ``completed``: read-modify-write is serialised.

    Under contention a store may give up with TemporaryError (the Firestore emulator's
    "Transaction lock timeout" past the adapter's retry deadline): nothing was written,
    and the caller redelivers, as Pub/Sub does. Every update must land exactly once."""
    store_factory().update_batch("batch_1", lambda _: record())

    def bump(cur: b.Batch | None) -> b.Batch | None:
        assert cur is not None
        counts = cur.request_counts
        return replace(cur, request_counts=replace(counts, completed=counts.completed + 1))

    failures: list[BaseException] = []
    redelivered: list[TemporaryError] = []

    def writer(store: Any) -> None:
        try:
            for _ in range(2):
                for _attempt in range(5):
                    try:
                        store.update_batch("batch_1", bump)
                        break
                    except TemporaryError as exc:
                        redelivered.append(exc)
                else:
                    raise AssertionError("an update never landed after 5 deliveries")
        except BaseException as exc:
            failures.append(exc)

    stores = [store_factory() for _ in range(5)]
    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert store_factory().get_batch("batch_1").request_counts.completed == 3 + 10
