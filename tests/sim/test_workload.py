"""Workloads: seeded, documented transforms of a trace (sim/workload.py)."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from yoyo_control.sim import workload as W


@pytest.fixture
def trace(tmp_path: Path) -> str:
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(20):  # one request every 2 s, 10.5 s apart after the 10th
        t = 2 * i + (8.5 if i >= 10 else 0)
        rows.append(f"2023-11-16 18:00:{t:010.7f},{800 * (i + 1)},{i}")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_the_trace_is_read_relative_to_its_first_request(trace: str) -> None:
    rows = W.read_trace(trace)
    assert len(rows) == 20 and rows[0] == (0.0, 800, 0)
    assert rows[1][0] == pytest.approx(2.0) and rows[10][0] == pytest.approx(28.5)


def test_k1_s1_places_every_request_at_9_local(trace: str) -> None:
    spec = W.WorkloadSpec(trace=trace, timezone="Europe/Paris")
    requests = W.build(spec)
    assert len(requests) == 20
    nine = datetime(2027, 3, 1, 9, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert requests[0].arrival == nine
    assert requests[1].arrival - requests[0].arrival == pytest.approx(2.0)


def test_service_time_comes_from_the_tokens(trace: str) -> None:
    r = W.build(W.WorkloadSpec(trace=trace))[3]
    assert r.service_s == pytest.approx(3200 / 8000 + 3 * 0.025)


def test_thinning_keeps_one_in_k_at_a_seeded_offset(trace: str) -> None:
    a = W.build(W.WorkloadSpec(trace=trace, k=5, seed=1))
    b = W.build(W.WorkloadSpec(trace=trace, k=5, seed=1))
    assert a == b and len(a) == 4
    tokens = [r.context_tokens // 800 - 1 for r in a]  # the original indices
    assert len({i % 5 for i in tokens}) == 1
    offsets = {
        W.build(W.WorkloadSpec(trace=trace, k=5, seed=s))[0].context_tokens for s in range(8)
    }
    assert len(offsets) > 1  # the seed picks the offset


def test_stretching_multiplies_every_gap(trace: str) -> None:
    base = W.build(W.WorkloadSpec(trace=trace))
    slow = W.build(W.WorkloadSpec(trace=trace, s=30))
    for (a, b), (c, d) in zip(pairwise(base), pairwise(slow), strict=True):
        assert d.arrival - c.arrival == pytest.approx(30 * (b.arrival - a.arrival))
    assert [r.service_s for r in slow] == [r.service_s for r in base]


def test_days_repeat_at_the_same_local_time_across_dst(trace: str) -> None:
    tz = "America/New_York"  # DST starts on 2027-03-14
    requests = W.build(W.WorkloadSpec(trace=trace, days=20, at="08:30", timezone=tz))
    firsts = requests[::20]
    assert len(requests) == 400 and len(firsts) == 20
    for day, r in enumerate(firsts):
        local = datetime.fromtimestamp(r.arrival, ZoneInfo(tz))
        assert (local.day, local.hour, local.minute) == (1 + day, 8, 30)


def test_jitter_is_seeded_and_bounded(trace: str) -> None:
    spec = W.WorkloadSpec(trace=trace, days=5, jitter_s=600, seed=3)
    assert W.build(spec) == W.build(spec)
    firsts = sorted(W.build(spec), key=lambda r: r.arrival)[::20]
    for day, r in enumerate(firsts):
        assert 0 <= r.arrival - W.start_of(spec, day) < 600


def test_a_week_mask_leaves_the_marked_days_empty_and_shifts_no_other(trace: str) -> None:
    every = W.WorkloadSpec(trace=trace, days=14, jitter_s=900, seed=5)
    office = W.parse_spec(f"trace={trace},days=14,jitter_s=900,seed=5,week=xxxxx..")
    assert W.parse_spec(str(office)) == office
    kept = W.build(office)
    days = {datetime.fromtimestamp(r.arrival, ZoneInfo("UTC")).weekday() for r in kept}
    assert days == {0, 1, 2, 3, 4} and len(kept) == 10 * 20
    assert set(kept) <= set(W.build(every))  # the other days' jitter is unchanged
    for bad in ("week=xxxxx", "week=xxxxxyz", "week=1111100"):
        with pytest.raises(ValueError):
            W.parse_spec(bad)


def test_streams_joined_with_a_plus_are_merged_by_arrival(trace: str) -> None:
    day = f"trace={trace},days=2,at=09:00"
    night = f"trace={trace},days=2,at=02:00"
    merged = W.build_all(f"{day} + {night}", seed=3)
    assert len(merged) == 80
    assert [r.arrival for r in merged] == sorted(r.arrival for r in merged)
    assert merged == W.build_all(f"{day} + {night}", seed=3)


def test_specs_parse_print_and_resolve_names() -> None:
    spec = W.parse_spec("trace=conv,k=40,s=10,days=5,jitter_s=1800")
    assert (spec.trace, spec.k, spec.s, spec.days, spec.jitter_s) == ("conv", 40, 10.0, 5, 1800)
    assert W.parse_spec(str(spec)) == spec
    assert W.resolve("sparse") == W.parse_spec(W.NAMED["sparse"])
    assert W.resolve("sparse,seed=4").seed == 4
    for bad in ("k=0", "nope=1", "k", "s=-1"):
        with pytest.raises(ValueError):
            W.parse_spec(bad)


TRACES = W.trace_path("code").parent


@pytest.mark.skipif(not TRACES.is_dir(), reason=f"the recorded traces are not at {TRACES}")
def test_the_named_workloads_come_from_the_recorded_traces() -> None:
    before = {p: p.stat().st_mtime_ns for p in TRACES.glob("*.csv")}
    busy = W.build(W.resolve("busy-hour"))
    assert len(busy) == 8819  # the whole code trace
    sparse = W.build(W.resolve("sparse"))
    assert len(sparse) == 22 and sparse[-1].arrival - sparse[0].arrival > 5 * 86400
    assert {p: p.stat().st_mtime_ns for p in TRACES.glob("*.csv")} == before  # read-only
