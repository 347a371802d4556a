"""Workloads: request streams derived from the recorded traces by documented, seeded transforms.

The traces (``/work/shared/traces``, or ``$YOYO_TRACES``) are read, never written. A
workload is the trace's arrival process transformed, in this order:

1. **thin** (``k``): keep one request in ``k`` — the requests whose index ``i`` satisfies
   ``i % k == r``, where the offset ``r`` is drawn from ``random.Random(seed)``
   (systematic sampling: the bursts of the original keep their shape, only sparser);
2. **stretch** (``s``): every gap between consecutive kept requests is multiplied by ``s``;
3. **place**: the first request arrives at ``start`` (local time ``at`` on 2027-03-01,
   a Monday, in the workload's time zone); with ``days`` > 1 the stream is repeated
   once per day at that local time, each repetition shifted by a jitter drawn uniformly
   from ``[0, jitter_s)`` by the same seeded generator; with ``week`` (seven characters,
   Monday first, ``x`` a day with traffic, ``.`` one without) the days it marks ``.`` are
   left empty (their jitter is still drawn, so a mask never shifts the other days).

Several streams make one workload with ``+`` (``build_all``): an office day and a
nightly batch are two specs, each built with its own seed, merged by arrival.

Each request's service time comes from its token counts:
``context_tokens / prefill_tps + generated_tokens × tpot_s`` (defaults 8000 tokens/s and
25 ms per generated token; an instance serves any number of requests at once).

Invariants: the same spec (including ``seed``) always gives the same requests; requests
are sorted by arrival; a spec is printable and parseable (``str(parse(text)) == text``
for canonical text), so every figure names the workload that produced it.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

TRACES_ENV = "YOYO_TRACES"
DEFAULT_TRACES = Path("/work/shared/traces")
TRACE_FILES = {
    "code": "AzureLLMInferenceTrace_code.csv",
    "conv": "AzureLLMInferenceTrace_conv.csv",
}
EPOCH_DATE = (2027, 3, 1)


@dataclass(frozen=True)
class Request:
    arrival: float
    service_s: float
    context_tokens: int = 0
    generated_tokens: int = 0


@dataclass(frozen=True)
class WorkloadSpec:
    trace: str = "code"  # "code", "conv" or a path to a CSV with the same columns
    k: int = 1
    s: float = 1.0
    seed: int = 0
    days: int = 1
    at: str = "09:00"  # local time of the first request (each day)
    jitter_s: float = 0.0
    timezone: str = "UTC"
    week: str = ""  # Mon…Sun, "x" = traffic that day, "." = none; "" = every day
    prefill_tps: float = 8000.0
    tpot_s: float = 0.025

    def __str__(self) -> str:
        default = WorkloadSpec()
        parts = [
            f"{f.name}={getattr(self, f.name):g}"
            if isinstance(getattr(self, f.name), float)
            else f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name) or f.name in ("trace", "k", "s")
        ]
        return ",".join(parts)


def parse_spec(text: str) -> WorkloadSpec:
    """``trace=code,k=50,s=30,seed=1`` (any subset of WorkloadSpec's fields)."""
    spec = WorkloadSpec()
    types = {f.name: f.type for f in fields(WorkloadSpec)}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in types:
            raise ValueError(f"workload: {part!r} is not key=value with key in {sorted(types)}")
        kind = types[key]
        converted: object = (
            int(value) if kind == "int" else float(value) if kind == "float" else value
        )
        spec = replace(spec, **{key: converted})
    if spec.k < 1 or spec.s <= 0 or spec.days < 1 or spec.jitter_s < 0:
        raise ValueError(f"workload {text!r}: need k >= 1, s > 0, days >= 1, jitter_s >= 0")
    if spec.week and (len(spec.week) != 7 or set(spec.week) - {"x", "."}):
        raise ValueError(f"workload {text!r}: week is seven of x (traffic) or . (none)")
    return spec


def trace_path(trace: str) -> Path:
    if trace in TRACE_FILES:
        return Path(os.environ.get(TRACES_ENV) or DEFAULT_TRACES) / TRACE_FILES[trace]
    return Path(trace)


def _parse_time(text: str) -> float:
    whole, _, fraction = text.strip().partition(".")
    base = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


@cache
def read_trace(path: str) -> tuple[tuple[float, int, int], ...]:
    """(seconds since the first request, context tokens, generated tokens), sorted."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                (
                    _parse_time(row["TIMESTAMP"]),
                    int(row["ContextTokens"]),
                    int(row["GeneratedTokens"]),
                )
            )
    rows.sort()
    if not rows:
        raise ValueError(f"{path}: no requests")
    t0 = rows[0][0]
    return tuple((t - t0, c, g) for t, c, g in rows)


def start_of(spec: WorkloadSpec, day: int = 0) -> float:
    """When day ``day`` of the workload begins: local ``spec.at`` on EPOCH_DATE + day."""
    hour, minute = (int(x) for x in spec.at.split(":"))
    zone = ZoneInfo(spec.timezone)
    date = datetime.fromordinal(datetime(*EPOCH_DATE).toordinal() + day)
    return datetime(date.year, date.month, date.day, hour, minute, tzinfo=zone).timestamp()


def weekday(day: int) -> int:
    """Monday 0 … Sunday 6 of the workload's day ``day`` (EPOCH_DATE is a Monday)."""
    return (datetime(*EPOCH_DATE).weekday() + day) % 7


def build(spec: WorkloadSpec) -> list[Request]:
    rows = read_trace(str(trace_path(spec.trace)))
    rng = random.Random(spec.seed)
    offset = rng.randrange(spec.k)
    kept = [row for i, row in enumerate(rows) if i % spec.k == offset]
    if not kept:
        kept = [rows[0]]
    first = kept[0][0]
    requests: list[Request] = []
    for day in range(spec.days):
        start = start_of(spec, day) + (rng.uniform(0, spec.jitter_s) if spec.jitter_s else 0.0)
        if spec.week and spec.week[weekday(day)] != "x":
            continue
        for t, context, generated in kept:
            service = context / spec.prefill_tps + generated * spec.tpot_s
            requests.append(Request(start + (t - first) * spec.s, service, context, generated))
    requests.sort(key=lambda r: r.arrival)
    return requests


# Named workloads used by the benchmarks (bench/RESULTS.md names them with their spec).
NAMED: dict[str, str] = {
    "busy-hour": "trace=code,k=1,s=1",
    "steady": "trace=conv,k=20,s=4",
    "bursty": "trace=code,k=25,s=30",
    "sparse": "trace=code,k=400,s=150",
    "office-days": "trace=conv,k=100,s=10,days=5,jitter_s=1800",
}


def build_all(text: str, seed: int = 0) -> list[Request]:
    """The streams of ``a + b + …`` (each resolved, its seed shifted by ``seed``), merged."""
    requests: list[Request] = []
    for part in text.split("+"):
        spec = resolve(part.strip())
        requests += build(replace(spec, seed=spec.seed + seed))
    requests.sort(key=lambda r: r.arrival)
    return requests


def resolve(text: str) -> WorkloadSpec:
    """A named workload, or a spec; ``name,key=value`` overrides a named one's fields."""
    head, _, rest = text.partition(",")
    if head in NAMED:
        base = NAMED[head]
        return parse_spec(base + ("," + rest if rest else ""))
    return parse_spec(text)
