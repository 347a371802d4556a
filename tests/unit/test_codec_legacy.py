"""Documents written before the action outcome, the lease holder and the rules were typed
still load: the outcome's text becomes its kind and detail, and means what it meant."""

from __future__ import annotations

import json
import sqlite3

import pytest

from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.domain import actions
from yoyo_control.domain.codec import from_doc, to_doc
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Holder,
    KillSource,
    KillSwitch,
    OutcomeKind,
    PoolState,
)

T0 = 1_760_000_000.0


def _record(outcome: str | None) -> dict[str, object]:
    return {
        "kind": "start",
        "epoch": 3,
        "request_id": "rid-3",
        "issued_at": T0,
        "reason": "4-lease: lease epoch 3 held by cycle",
        "outcome": outcome,
        "attempts": 1,
    }


# A pool document as the version before typed outcomes stored it (no ``detail`` key).
LEGACY_POOL = {
    "pool": "gpu",
    "epoch": 3,
    "lease": {
        "holder": "wake",
        "reasons": ["gateway: request waiting"],
        "epoch": 3,
        "granted_at": T0,
        "expires_at": T0 + 1800,
        "max_until": T0 + 8 * 3600,
        "active_at": None,
    },
    "requests": [{"holder": "operator", "reason": "operator start", "until": T0 + 600}],
    "instances": {
        "vm-0": {"name": "vm-0", "desired": "RUNNING", "observed": "RUNNING",
                 "last_action": _record("retry: 503 backend error")},
        "vm-1": {"name": "vm-1", "observed": "MISSING", "error": "not found: vm-1",
                 "last_action": _record("error: not found: vm-1")},
        "vm-2": {"name": "vm-2", "observed": "TERMINATED",
                 "last_action": _record("done; then preempted")},
        "vm-3": {"name": "vm-3", "observed": "RUNNING",
                 "last_action": _record("done (observed)")},
        "vm-4": {"name": "vm-4", "last_action": _record("capacity: ZONE_RESOURCE_POOL_EXHAUSTED")},
        "vm-5": {"name": "vm-5", "last_action": _record("error: gave up after 5 attempts: 503")},
        "vm-6": {"name": "vm-6", "last_action": _record("skipped: kill switch engaged")},
        "vm-7": {"name": "vm-7", "last_action": _record(None)},
    },
    "last_decision": "lease epoch 3 granted to wake: gateway: request waiting",
}  # fmt: skip

EXPECTED = {
    "vm-0": (OutcomeKind.RETRY, "503 backend error"),
    "vm-1": (OutcomeKind.NOT_FOUND, "vm-1"),
    "vm-2": (OutcomeKind.SUPERSEDED, "preempted"),
    "vm-3": (OutcomeKind.OBSERVED, ""),
    "vm-4": (OutcomeKind.CAPACITY, "ZONE_RESOURCE_POOL_EXHAUSTED"),
    "vm-5": (OutcomeKind.ERROR, "gave up after 5 attempts: 503"),
    "vm-6": (OutcomeKind.SKIPPED, "kill switch engaged"),
    "vm-7": (None, ""),
}


def test_a_legacy_pool_document_decodes_into_typed_fields() -> None:
    state = from_doc(PoolState, LEGACY_POOL)
    assert state.lease is not None and state.lease.holder is Holder.WAKE
    assert state.requests[0].holder is Holder.OPERATOR
    for name, (kind, detail) in EXPECTED.items():
        record = state.instances[name].last_action
        assert record is not None
        assert (record.outcome, record.detail) == (kind, detail), name
        # …and reads as it did: the status page and the event log show the same line.
        assert record.said == LEGACY_POOL["instances"][name]["last_action"]["outcome"]  # type: ignore[index]


def test_legacy_outcomes_keep_their_meaning_in_the_action_protocol() -> None:
    state = from_doc(PoolState, LEGACY_POOL)
    record = {name: inst.last_action for name, inst in state.instances.items()}
    assert [n for n, r in record.items() if actions.pending(r)] == ["vm-0", "vm-7"]
    assert [n for n, r in record.items() if actions.done(r)] == ["vm-3"]


def test_a_decoded_legacy_document_is_written_back_typed() -> None:
    state = from_doc(PoolState, LEGACY_POOL)
    doc = json.loads(json.dumps(to_doc(state)))
    assert doc["instances"]["vm-0"]["last_action"]["outcome"] == "retry"
    assert doc["instances"]["vm-0"]["last_action"]["detail"] == "503 backend error"
    assert from_doc(PoolState, doc) == state


def test_the_sqlite_store_loads_a_legacy_pool_row(tmp_path) -> None:
    path = tmp_path / "yoyo.db"
    SqliteStore(path)  # creates the schema
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO pools (pool, doc) VALUES (?, ?)", ("gpu", json.dumps(LEGACY_POOL))
        )
    state = SqliteStore(path).get_pool("gpu")
    assert state.instances["vm-1"].last_action == ActionRecord(
        ActionKind.START, 3, "rid-3", T0, "4-lease: lease epoch 3 held by cycle",
        OutcomeKind.NOT_FOUND, attempts=1, detail="vm-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "source"),
    [
        ("budget: 152.37 of 150.00 USD", KillSource.BUDGET),
        ("budget: 10.00 of 10.00 USD (threshold 1 crossed)", KillSource.BUDGET),
        ("maintenance", KillSource.OPERATOR),
        ("", KillSource.OPERATOR),
    ],
)
def test_a_stored_kill_switch_says_who_engaged_it(reason: str, source: KillSource) -> None:
    kill = from_doc(KillSwitch, {"engaged": True, "reason": reason, "by": "x", "at": T0})
    assert kill.source is source
