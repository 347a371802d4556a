"""The pool's history (domain/history.py) and its codec: advice that never breaks a load."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from yoyo_control.domain import history as H
from yoyo_control.domain.codec import from_doc, to_doc
from yoyo_control.domain.facts import HeartbeatReceived, RunRequested, apply_fact
from yoyo_control.domain.model import Heartbeat, Holder, PoolPolicy, PoolState

MONDAY = 1_803_859_200.0  # Monday 2027-03-01 00:00 UTC
POLICY = PoolPolicy(pool="p", instances=("vm-0",))


def test_monday_is_a_monday() -> None:
    assert H.local(MONDAY, "UTC").strftime("%a %H:%M") == "Mon 00:00"


def test_a_long_gap_records_its_first_request_and_its_class() -> None:
    h = H.record(H.EMPTY, MONDAY + 3 * 3600, MONDAY + 8 * 3600, "UTC")
    assert h.firsts == (int((MONDAY + 8 * 3600) // 60),)
    assert h.since == int((MONDAY + 3 * 3600) // 60)
    assert h.rows()[0][H.bin_of(5 * 3600)] == 1.0  # weekday 00-06
    short = H.record(h, MONDAY + 9 * 3600, MONDAY + 9 * 3600 + 120, "UTC")
    assert short.firsts == h.firsts  # a short gap is no "first request"
    assert short.rows()[1][H.bin_of(120)] == 1.0
    assert h == H.record(H.EMPTY, MONDAY + 3 * 3600, MONDAY + 8 * 3600, "UTC")  # pure


def test_the_history_stays_bounded_and_decays() -> None:
    h = H.EMPTY
    for day in range(200):
        t = MONDAY + day * 86400
        h = H.record(h, t - 6 * 3600, t + 8 * 3600, "Europe/Paris")
        h = H.record(h, t + 8 * 3600 + 60, t + 8 * 3600 + 400, "Europe/Paris")
    assert len(h.firsts) <= H.MAX_FIRSTS
    assert min(h.firsts) >= h.firsts[-1] - H.HORIZON_DAYS * 1440
    assert all(c <= H.MEMORY + 1 for c in h.classes)
    assert all(not isinstance(v, list) for v in to_doc(h)["classes"])  # Firestore: no nesting
    assert len(json.dumps(to_doc(h))) < 2048  # a few KiB at most


@pytest.mark.parametrize(
    "began,ended", [(math.nan, 1.0), (5.0, 1.0), (0.0, math.inf), (0.0, 1e300)]
)
def test_impossible_gaps_change_nothing(began: float, ended: float) -> None:
    assert H.record(H.EMPTY, began, ended, "UTC") == H.EMPTY


def test_a_bad_time_zone_falls_back_to_utc() -> None:
    assert H.class_of(MONDAY, "Not/AZone") == H.class_of(MONDAY, "UTC")


def _load(history: object) -> PoolState:
    doc = to_doc(PoolState(pool="p", epoch=7))
    doc["history"] = history
    return from_doc(PoolState, json.loads(json.dumps(doc)))


GOOD = to_doc(H.record(H.EMPTY, MONDAY, MONDAY + 5 * 3600, "UTC"))


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        42,
        [1, 2, 3],
        {"version": 1, "firsts": "nope"},
        {"version": 1, "firsts": [1e308, -1e308, "x", None, True]},
        {"version": 1, "classes": [[1, 2], [3]]},
        {"version": 1, "classes": [1.0] * 71},
        {"version": 1, "classes": ["a"] * 72},
        {"version": 1, "classes": [-1.0] * 72},
        {"version": 1, "since": "yesterday", "prewarm_s": "lots"},
        {"version": 1, "prewarm_s": 1e300, "prewarm_at": "soon", "prewarm_day": 5},
        {"version": 0, "firsts": [1, 2, 3]},  # an older format: ignored
        {"version": 2, "firsts": [1, 2, 3], "new": {"x": 1}},  # a newer one: ignored
        {"version": 1, "firsts": list(range(1_000_000))},  # huge
        {"version": 1, "classes": [0.0] * 1_000_000},  # huge
        {**GOOD, "unknown": "kept out"},
    ],
)
def test_a_bad_huge_or_old_history_loads_as_a_valid_bounded_one(bad: object) -> None:
    state = _load(bad)
    assert state.pool == "p" and state.epoch == 7  # the pool document still loads
    h = state.history
    assert h == H.sanitize(h)  # valid
    assert len(h.firsts) <= H.MAX_FIRSTS and len(h.classes) in (0, H.CLASSES * len(H.BINS))
    assert math.isfinite(h.prewarm_s) and 0 <= h.prewarm_s <= 86400 * 1000
    H.describe(h, "UTC")  # and shows


def test_a_good_history_survives_the_codec() -> None:
    assert _load(GOOD).history == from_doc(H.History, GOOD)
    assert _load(None).history == H.EMPTY


def test_facts_feed_the_history_in_the_write_that_ends_the_gap() -> None:
    idle = PoolState(pool="p", idle_since=MONDAY + 3600)
    wake = RunRequested("m1", MONDAY + 9 * 3600, "p", Holder.WAKE, "1 waiting", 600)
    woke, _ = apply_fact(idle, wake, POLICY, MONDAY + 9 * 3600)
    assert woke.history.firsts == (int((MONDAY + 9 * 3600) // 60),)
    assert woke.idle_since is None
    beat = Heartbeat("vm-0", "b", MONDAY + 9 * 3600, MONDAY + 9 * 3600, busy=True)
    again, _ = apply_fact(
        replace(idle), HeartbeatReceived("m2", beat.sent_at, "p", beat), POLICY, beat.sent_at
    )
    assert again.history.firsts == woke.history.firsts


def test_status_describes_the_learned_pattern() -> None:
    h = H.EMPTY
    for day in range(5):
        t = MONDAY + day * 86400
        h = H.record(h, t - 10 * 3600, t + 8 * 3600, "UTC")
    lines = H.describe(h, "UTC")
    assert lines[0].startswith("history since")
    assert any("first requests after a long idle (5)" in line and "08:00" in line for line in lines)
    assert H.describe(H.EMPTY, "UTC") == ["no history yet"]
