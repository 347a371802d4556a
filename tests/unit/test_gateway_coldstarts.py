"""Cold starts read back from the event log: phases (missing ends tolerated), histogram."""

from __future__ import annotations

from yoyo_control.gateway.coldstarts import cold_starts, histogram
from yoyo_control.ports import Event

T0 = 1_800_000_000.0


def test_phases_are_durations_between_known_marks() -> None:
    phases = {
        "arrived_at": T0,
        "wake_at": T0 + 0.1,
        "running_at": T0 + 30,
        "ready_at": T0 + 90,
        "forwarded_at": T0 + 90.4,
        "first_byte_at": T0 + 90.5,
    }
    events = [
        Event(
            "cold-start:gpu:2",
            "cold-start",
            T0 + 91,
            "gpu",
            data={"instance": "vm-0", "held_s": 90.4, "phases": phases},
        ),
        Event("cold-start:gpu:1", "cold-start", T0 - 5, "gpu", data={"phases": {"ready_at": None}}),
        Event("decision:x", "decision", T0, "gpu"),
    ]
    older, newer = cold_starts(events)
    assert older.held_s == 0.0 and all(d is None for _, d in older.phases)
    durations = dict(newer.phases)
    assert round(durations["wake→running"], 1) == 29.9
    assert round(durations["running→ready"], 1) == 60.0
    assert round(durations["ready→forwarded"], 1) == 0.4
    assert "held 90.4s on vm-0" in newer.line() and "running→ready 60.0s" in newer.line()


def test_histogram_buckets_cover_every_value() -> None:
    counts = dict(histogram([0.5, 5, 9.99, 95, 150, 700], edges=(1, 10, 60, 120, 600)))
    assert counts == {"<1s": 1, "1–10s": 2, "10–60s": 0, "60–120s": 1, "120–600s": 1, "≥600s": 1}
