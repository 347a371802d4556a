"""Online-load workloads for the autoscaling benchmark (bench/autoscale.py).

A workload is a recorded Azure trace (``/work/shared/traces``, or ``$YOYO_TRACES``)
transformed by a seeded, documented recipe, in this order:

1. **window** (``minutes``): only the trace's first ``minutes`` of arrivals (None: all
   of its hour);
2. **thin** (``k``): keep one request in ``k``, those with ``i % k == r``, ``r`` drawn
   from ``random.Random(seed)`` (the bursts keep their shape);
3. **repeat** (``repeat``): the kept stream played that many times back to back;
4. **speed** (``speed``): every arrival time divided by ``speed`` (the same requests,
   ``speed`` times as often), so that the pool needs several VMs;
5. **tokens** (``tokens``): every request's generated tokens multiplied by ``tokens``.

Each request keeps its context and generated token counts: the simulated VM's cost of
a request (sim/autoscale.py) comes from them.

The split is fixed in this file BEFORE any tuning of the scaling policy (git history:
the commit that adds this file precedes every change of the policy's settings): the
policy may be tuned on ``TUNED`` only; ``HELD_OUT`` is what its goals are checked on
as well, with transforms it was never tuned on (other speeds, thinning offsets, token
lengths and repetitions).

Invariants: the same spec always gives the same requests, sorted by arrival.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .workload import read_trace, trace_path


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds from the workload's start
    context_tokens: int
    generated_tokens: int


@dataclass(frozen=True)
class LoadSpec:
    trace: str  # "code" or "conv" (or a CSV path with the same columns)
    speed: float
    k: int = 1
    seed: int = 0
    repeat: int = 1
    tokens: float = 1.0
    minutes: float | None = None

    def __str__(self) -> str:
        parts = [f"trace={self.trace}", f"speed={self.speed:g}"]
        for name, default in (("k", 1), ("seed", 0), ("repeat", 1), ("tokens", 1.0)):
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name}={value:g}")
        if self.minutes is not None:
            parts.append(f"minutes={self.minutes:g}")
        return ",".join(parts)


TUNED: dict[str, LoadSpec] = {
    "conv-x4": LoadSpec("conv", speed=4),
    "code-x16": LoadSpec("code", speed=16, repeat=2),
}

HELD_OUT: dict[str, LoadSpec] = {
    "conv-x6": LoadSpec("conv", speed=6, repeat=2),
    "conv-x8-thin2": LoadSpec("conv", speed=8, k=2, seed=7),
    "code-x24-long": LoadSpec("code", speed=24, repeat=3, tokens=2.0),
}


def build(spec: LoadSpec) -> list[Arrival]:
    rows = read_trace(str(trace_path(spec.trace)))
    if spec.minutes is not None:
        rows = tuple(r for r in rows if r[0] < spec.minutes * 60.0) or rows[:1]
    rng = random.Random(spec.seed)
    offset = rng.randrange(spec.k)
    kept = [row for i, row in enumerate(rows) if i % spec.k == offset] or [rows[0]]
    length = kept[-1][0] + (kept[-1][0] - kept[0][0]) / max(1, len(kept) - 1)
    arrivals = []
    for turn in range(spec.repeat):
        for t, context, generated in kept:
            at = (turn * length + t - kept[0][0]) / spec.speed
            arrivals.append(Arrival(at, context, max(1, round(generated * spec.tokens))))
    arrivals.sort(key=lambda a: a.at)
    return arrivals
