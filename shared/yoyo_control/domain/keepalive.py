"""Keep-alive policies (pure): how long an idle pool keeps its VM before releasing the lease.

The cost model (shared with the simulator's offline optimum, sim/optimum.py):
- an idle VM costs ``p`` per second (the pool's hourly price / 3600);
- a cold start costs ``C = boot_s × (p + w)``: the VM bills while it boots, and the user
  who woke it waits ``boot_s``, valued at ``w = wait_weight × p`` per second;
- in an idle gap of length ``g`` a policy with idle timeout ``T`` pays ``g·p`` when
  ``g <= T`` (stayed on) and ``T·p + C`` otherwise (stopped at ``T``, cold start next).
  The offline optimum pays ``min(g·p, C)``.

Policies, each a function giving the idle timeout ``T`` (seconds) to use now:
- ``fixed``: a constant (the anchors use 5 and 15 minutes);
- ``break_even``: ``T = C / p``, the deterministic ski-rental rule: on every gap it pays at
  most twice the optimum;
- ``histogram``: the ``T`` that minimises the cost above over a decayed histogram of the
  idle gaps this pool has seen (in the spirit of Shahrad et al., "Serverless in the
  Wild", ATC 2020), optionally constrained to cause no more cold starts on that history
  than a reference timeout would; ``break_even`` until ``min_samples`` gaps were seen;
- ``window``: keep warm inside a daily local-time window, another timeout outside it.

Invariants: pure (no clock, no randomness, no I/O); a histogram is bounded (a fixed set
of bins, weights decayed per observation) and ``record_gap`` never mutates its input;
every timeout returned lies in ``[min_s, max_s]`` of its policy (``window``: its inputs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# Lower edges of the histogram's bins (seconds); the last bin is [86400, inf).
EDGES: tuple[float, ...] = (
    0.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0,
    1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0, 14400.0, 21600.0, 28800.0, 43200.0,
    86400.0,
)  # fmt: skip
MEMORY = 64.0  # observations: each new gap multiplies older weights by (1 - 1/MEMORY)
_NEGLIGIBLE = 1e-4  # weights below this are dropped (keeps documents small and stable)

# Lower edges of the per-class histograms' bins (seconds); the last bin is [7200, inf).
# Every edge is a candidate timeout, so 900 s (the reference) and the steps above it are.
CLASS_EDGES: tuple[float, ...] = (
    0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0,
    2700.0, 3600.0, 7200.0,
)  # fmt: skip
SHORT_S = 240.0  # a gap below this is short (about a quarter of the break-even)
LONG_S = 900.0  # … at or above this, long (about the break-even)
RUN_CAP = 10  # short gaps in a row are counted up to this
CLASSES = 6  # gap_class(): none yet, after a long gap, after a medium one, short runs
CLASS_MEMORY = 256.0  # observations: each new gap multiplies older weights by (1 - 1/this)


def cold_start_cost(boot_s: float, hourly_price: float, wait_weight: float) -> float:
    """``C`` in the billing currency: the boot billed plus the wait, valued by weight."""
    return boot_s * (hourly_price / 3600.0) * (1.0 + wait_weight)


def gap_cost(gap_s: float, timeout_s: float, hourly_price: float, cold_cost: float) -> float:
    """What a policy with ``timeout_s`` pays for one idle gap of ``gap_s``."""
    p = hourly_price / 3600.0
    return gap_s * p if gap_s <= timeout_s else timeout_s * p + cold_cost


def optimal_gap_cost(gap_s: float, hourly_price: float, cold_cost: float) -> float:
    """What the offline optimum pays for one idle gap: stay on, or stop at once."""
    return min(gap_s * hourly_price / 3600.0, cold_cost)


def break_even(hourly_price: float, cold_cost: float, min_s: float, max_s: float) -> float:
    """Ski rental: stay idle as long as the idling has cost less than one cold start."""
    if hourly_price <= 0:
        return max_s  # idling is free: never pay a cold start
    return _clamp(cold_cost / (hourly_price / 3600.0), min_s, max_s)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# --- the idle-gap histogram ------------------------------------------------------------


@dataclass(frozen=True)
class GapHistogram:
    """A pool's idle-gap history, bounded: what the keep-alive policies learn from.

    ``weights``/``sums``: decayed weights and weighted gap sums per bin of EDGES (one
    histogram of every gap); ``seen`` counts gaps. ``class_weights``/``class_sums``: the
    same per history class (``CLASSES`` × ``CLASS_EDGES``, flat, class-major: a document
    store may not nest arrays), and ``last_gap``/``short_run`` the history that classifies
    the next gap (``gap_class``). A document written before the per-class fields existed
    decodes with them empty: the adaptive rule then falls back to its reference timeout
    until it has seen ``min_samples`` gaps again.
    """

    weights: tuple[float, ...] = ()
    sums: tuple[float, ...] = ()
    seen: int = 0
    class_weights: tuple[float, ...] = ()
    class_sums: tuple[float, ...] = ()
    last_gap: float | None = None
    short_run: int = 0  # short gaps in a row, the last one included (capped at RUN_CAP)
    class_seen: int = 0  # gaps recorded in the per-class histograms

    def total(self) -> float:
        return sum(self.weights)


def bin_of(gap_s: float) -> int:
    index = 0
    for i, edge in enumerate(EDGES):
        if gap_s >= edge:
            index = i
    return index


def record_gap(
    hist: GapHistogram, gap_s: float, memory: float = MEMORY, class_memory: float = CLASS_MEMORY
) -> GapHistogram:
    """The histogram after one more idle gap (older observations decay)."""
    if not math.isfinite(gap_s) or gap_s < 0:
        return hist
    keep = 1.0 - 1.0 / max(1.0, memory)
    n = len(EDGES)
    weights = list(hist.weights) if hist.weights else [0.0] * n
    sums = list(hist.sums) if hist.sums else [0.0] * n
    for i in range(n):
        weights[i] *= keep
        sums[i] *= keep
        if weights[i] < _NEGLIGIBLE:
            weights[i], sums[i] = 0.0, 0.0
    b = bin_of(gap_s)
    weights[b] += 1.0
    sums[b] += gap_s
    cw, cs = _record_class(hist, gap_s, class_memory)
    return GapHistogram(
        tuple(round(w, 6) for w in weights),
        tuple(round(s, 3) for s in sums),
        hist.seen + 1,
        cw,
        cs,
        round(gap_s, 3),
        min(RUN_CAP, hist.short_run + 1) if gap_s < SHORT_S else 0,
        hist.class_seen + 1,
    )


def _upper(i: int) -> float:
    return EDGES[i + 1] if i + 1 < len(EDGES) else math.inf


def expected_cost(
    hist: GapHistogram, timeout_s: float, hourly_price: float, cold_cost: float
) -> float:
    """Cost of ``timeout_s`` over the history: bins wholly below it stay on, others stop.

    A bin that straddles the timeout is counted as stopped (conservative: a cold start is
    charged for its gaps below the timeout too).
    """
    p = hourly_price / 3600.0
    cost = 0.0
    for i, (w, s) in enumerate(zip(hist.weights, hist.sums, strict=True)):
        if w <= 0:
            continue
        cost += s * p if _upper(i) <= timeout_s else w * (timeout_s * p + cold_cost)
    return cost


def cold_starts(hist: GapHistogram, timeout_s: float) -> float:
    """Weighted number of gaps that a timeout would turn into cold starts (as above)."""
    return sum(w for i, w in enumerate(hist.weights) if _upper(i) > timeout_s)


def histogram_timeout(
    hist: GapHistogram,
    hourly_price: float,
    cold_cost: float,
    min_s: float,
    max_s: float,
    *,
    min_samples: int = 3,
    reference_s: float | None = None,
    margin: float = 1.0,
) -> float:
    """The timeout minimising ``expected_cost`` over the history, within [min_s, max_s].

    Candidates are ``min_s``, ``max_s`` and every bin edge between them. With
    ``reference_s``, a candidate ``t`` is allowed only if ``t / margin`` would cause no
    more cold starts on the history than ``reference_s`` does: every gap seen that the
    reference keeps warm is kept warm with room to spare (``margin`` >= 1).
    Ties go to the shorter timeout (a history of short gaps says nothing about the idle
    tail after the last one, so it is not paid for). Fewer than ``min_samples`` gaps:
    ``reference_s`` when given (so a pool without history behaves exactly like the fixed
    reference), else the break-even timeout; with ``min_samples=0`` an empty history
    gives ``min_s`` (optimistic: nothing seen, nothing to keep warm).
    """
    if hist.seen < min_samples:
        if reference_s is not None:
            return _clamp(reference_s, min_s, max_s)
        return break_even(hourly_price, cold_cost, min_s, max_s)
    candidates = sorted({min_s, max_s, *(e for e in EDGES if min_s < e < max_s)})
    budget = cold_starts(hist, reference_s) if reference_s is not None else math.inf
    best, best_cost = max_s, math.inf
    for t in candidates:
        if reference_s is not None and t < reference_s and cold_starts(hist, t / margin) > budget:
            continue
        cost = expected_cost(hist, t, hourly_price, cold_cost)
        if cost < best_cost * (1 - 1e-9):
            best, best_cost = t, cost
    return best


# --- the default: one timeout per history class, under a cold-start budget --------------


def gap_class(last_gap: float | None, short_run: int) -> int:
    """What the pool knows when a gap begins, as a class: 0 no gap seen yet; 1 the last gap
    was long; 2 medium; 3, 4, 5: it was short, after 1–3, 4–9, 10 or more short gaps in a
    row (sim/bounds.py's history classes)."""
    if last_gap is None:
        return 0
    if last_gap >= LONG_S:
        return 1
    if last_gap >= SHORT_S:
        return 2
    return 3 if short_run < 4 else 4 if short_run < RUN_CAP else 5


def _class_bin(gap_s: float) -> int:
    index = 0
    for i, edge in enumerate(CLASS_EDGES):
        if gap_s >= edge:
            index = i
    return index


def _record_class(
    hist: GapHistogram, gap_s: float, memory: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    n = CLASSES * len(CLASS_EDGES)
    keep = 1.0 - 1.0 / max(1.0, memory)
    weights = list(hist.class_weights) if len(hist.class_weights) == n else [0.0] * n
    sums = list(hist.class_sums) if len(hist.class_sums) == n else [0.0] * n
    for i in range(n):
        weights[i] *= keep
        sums[i] *= keep
        if weights[i] < _NEGLIGIBLE:
            weights[i], sums[i] = 0.0, 0.0
    i = gap_class(hist.last_gap, hist.short_run) * len(CLASS_EDGES) + _class_bin(gap_s)
    weights[i] += 1.0
    sums[i] += gap_s
    return tuple(round(w, 6) for w in weights), tuple(round(s, 3) for s in sums)


def _class_upper(i: int) -> float:
    return CLASS_EDGES[i + 1] if i + 1 < len(CLASS_EDGES) else math.inf


def _class_points(
    weights: tuple[float, ...],
    sums: tuple[float, ...],
    cold_s: float,
    candidates: list[float],
    spread: float,
) -> list[tuple[float, float]]:
    """(expected cold starts, expected cost in VM-seconds) of every candidate on one
    class's gaps, each bin's gaps smoothed into a log-normal around their mean of
    log-scale ``spread``: a gap like those seen may be somewhat longer or shorter, so a
    timeout just above the gaps seen is not trusted to keep the next one warm (choosing
    timeouts on the raw history would be optimistic exactly where it chooses)."""
    means = [s / w if w > 0 else 0.0 for w, s in zip(weights, sums, strict=True)]
    points = []
    for t in candidates:
        cold = cost = 0.0
        for w, mean in zip(weights, means, strict=True):
            if w <= 0:
                continue
            if mean <= 0 or t <= 0:
                q = 1.0 if t <= 0 < mean else 0.0
            elif spread <= 0:
                q = 1.0 if mean > t else 0.0
            else:
                q = 0.5 * math.erfc(math.log(t / mean) / (spread * math.sqrt(2.0)))
            cold += w * q
            cost += w * ((1.0 - q) * mean + q * (t + cold_s))
        points.append((cold, cost))
    return points


@functools.lru_cache(maxsize=512)
def class_plan(
    weights: tuple[float, ...],
    sums: tuple[float, ...],
    cold_s: float,
    min_s: float,
    max_s: float,
    reference_s: float,
    budget: float,
    min_weight: float,
    spread: float = 0.0,
) -> tuple[float, ...]:
    """One timeout per history class: the cheapest on the history subject to a budget.

    Minimises the classes' summed cost (idling + ``cold_s`` VM-seconds per cold start) on
    the decayed per-class histograms, subject to their summed cold starts being at most
    ``budget`` × those of ``reference_s`` on the same history. This is a Lagrangian choice
    made greedily: every class starts at its cheapest timeout, then while the cold starts
    exceed the budget, the class whose next step along its lower convex hull saves a cold
    start at the least extra cost moves (the order in which a rising price per cold start
    moves them). Candidates: ``min_s``, ``max_s`` and the CLASS_EDGES between; ties go to
    the shorter timeout. A class with less than ``min_weight`` of history keeps
    ``reference_s``.
    """
    n = len(CLASS_EDGES)
    candidates = sorted({min_s, max_s, *(e for e in CLASS_EDGES if min_s < e < max_s)})
    ref = _clamp(reference_s, min_s, max_s)
    chosen: list[float] = []
    paths: list[list[tuple[float, float, float]]] = []  # per class: (cold, cost, t) hull
    allowed = 0.0
    for c in range(CLASSES):
        w, s = weights[c * n : (c + 1) * n], sums[c * n : (c + 1) * n]
        ref_cold = _class_points(w, s, cold_s, [ref], spread)[0][0]
        allowed += ref_cold
        if sum(w) < min_weight:
            chosen.append(ref)
            paths.append([(ref_cold, 0.0, ref)])
            continue
        points = _class_points(w, s, cold_s, candidates, spread)
        start = min(range(len(candidates)), key=lambda k: (points[k][1], candidates[k]))
        path = [(points[start][0], points[start][1], candidates[start])]
        while True:
            cold, cost, _ = path[-1]
            steps = [
                ((pc - cost) / (cold - pk), pk, k)
                for k, (pk, pc) in enumerate(points)
                if pk < cold - 1e-9
            ]
            if not steps:
                break
            _, _, k = min(steps)
            path.append((points[k][0], points[k][1], candidates[k]))
        chosen.append(path[0][2])
        paths.append(path)
    at = [0] * CLASSES
    total = sum(path[0][0] for path in paths)
    limit = budget * allowed * (1 + 1e-9) + 1e-9
    while total > limit:
        moves = [
            ((paths[c][at[c] + 1][1] - paths[c][at[c]][1])
             / (paths[c][at[c]][0] - paths[c][at[c] + 1][0]), c)
            for c in range(CLASSES)
            if at[c] + 1 < len(paths[c])
        ]  # fmt: skip
        if not moves:
            break
        _, c = min(moves)
        total -= paths[c][at[c]][0] - paths[c][at[c] + 1][0]
        at[c] += 1
        chosen[c] = paths[c][at[c]][2]
    return tuple(chosen)


def class_timeout(
    hist: GapHistogram,
    hourly_price: float,
    cold_cost: float,
    min_s: float,
    max_s: float,
    *,
    reference_s: float,
    min_samples: int = 2,
    margin: float = 2.0,
    warmup: int = 30,
    budget: float = 1.0,
    min_weight: float = 5.0,
    spread: float = 0.0,
) -> float:
    """The adaptive rule: the timeout ``class_plan`` gives the class of the gap beginning
    now, once ``warmup`` gaps were recorded per class; before that, ``histogram_timeout``
    on all gaps, capped at ``reference_s`` (itself ``reference_s`` until ``min_samples``
    gaps were seen)."""
    ref = _clamp(reference_s, min_s, max_s)
    if hist.class_seen < warmup or hourly_price <= 0:
        return histogram_timeout(
            hist, hourly_price, cold_cost, min_s, ref, min_samples=min_samples,
            reference_s=ref, margin=margin,
        )  # fmt: skip
    plan = class_plan(
        hist.class_weights,
        hist.class_sums,
        round(cold_cost / (hourly_price / 3600.0), 6),
        min_s,
        max_s,
        ref,
        budget,
        min_weight,
        spread,
    )
    return plan[gap_class(hist.last_gap, hist.short_run)]


# --- daily windows ---------------------------------------------------------------------


def seconds_of_day(now: float, timezone: str) -> float:
    """Local wall-clock seconds since midnight in ``timezone``."""
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(timezone))
    return local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond / 1e6


def in_window(second_of_day: float, start_s: float, end_s: float) -> bool:
    """Whether a local time of day lies in [start, end); windows may wrap past midnight."""
    if start_s <= end_s:
        return start_s <= second_of_day < end_s
    return second_of_day >= start_s or second_of_day < end_s


def window_timeout(
    now: float, timezone: str, start_s: float, end_s: float, inside_s: float, outside_s: float
) -> float:
    """``inside_s`` while the local time is in the daily window, else ``outside_s``."""
    inside = in_window(seconds_of_day(now, timezone), start_s, end_s)
    return inside_s if inside else outside_s


# --- one entry point for a pool's configuration ------------------------------------------


@dataclass(frozen=True)
class KeepAlive:
    """A pool's keep-alive configuration (what PoolPolicy would carry)."""

    kind: str = "fixed"  # fixed | break-even | adaptive
    idle_timeout_s: float = 600.0  # fixed: the timeout; others: the upper bound
    boot_s: float = 150.0  # expected wake → ready time, for the cold-start cost
    wait_weight: float = 5.0  # a user-second waiting is worth this many VM-seconds
    min_s: float = 30.0
    min_samples: int = 2  # one gap says too little: bench/RESULTS.md
    reference_s: float | None = None  # adaptive: no more cold starts than this timeout
    margin: float = 2.0  # with a reference: head-room over the longest warm gap
    warmup: int = 60  # adaptive: gaps seen before the per-class plan is trusted
    budget: float = 1.0  # adaptive: cold starts on the history ≤ this × the reference's
    min_weight: float = 5.0  # adaptive: a class with less history keeps the reference
    spread: float = 0.0  # adaptive: log-scale spread of a gap around those seen like it

    def cold_cost(self, hourly_price: float) -> float:
        return cold_start_cost(self.boot_s, hourly_price, self.wait_weight)


KINDS = ("fixed", "break-even", "adaptive")


def idle_timeout(spec: KeepAlive, hourly_price: float, hist: GapHistogram) -> float:
    """The idle timeout a pool uses now, from its configuration and its observed gaps."""
    low, high = min(spec.min_s, spec.idle_timeout_s), spec.idle_timeout_s
    if spec.kind == "break-even":
        return break_even(hourly_price, spec.cold_cost(hourly_price), low, high)
    if spec.kind == "adaptive":
        return class_timeout(
            hist,
            hourly_price,
            spec.cold_cost(hourly_price),
            low,
            high,
            reference_s=spec.reference_s if spec.reference_s is not None else high,
            min_samples=spec.min_samples,
            margin=spec.margin,
            warmup=spec.warmup,
            budget=spec.budget,
            min_weight=spec.min_weight,
            spread=spec.spread,
        )
    return spec.idle_timeout_s
