"""ports.PoolDocuments on both stores: many pools' documents in one call (the brake)."""

from __future__ import annotations

from typing import Any

from yoyo_control.domain.model import Heartbeat, PoolState
from yoyo_control.ports import PoolDocuments


def test_get_pools_reads_every_pool_document_and_only_those(store: Any) -> None:
    assert isinstance(store, PoolDocuments)
    for i in range(5):
        store.transact(lambda tx, i=i: tx.save_pool(PoolState(pool=f"p{i}", epoch=i + 1)))
    store.put_heartbeat("p1", Heartbeat("vm", "boot", 1.0, 1.0))
    found = store.get_pools(["p0", "p1", "p3", "missing", "a/b"])
    assert sorted(found) == ["p0", "p1", "p3"]  # a pool without a document is absent
    assert [found[p].epoch for p in ("p0", "p1", "p3")] == [1, 2, 4]
    assert found["p1"].heartbeats == {}  # heartbeats live in their own documents
    assert found["p1"] == PoolState(pool="p1", epoch=2)
    assert store.get_pools([]) == {}
