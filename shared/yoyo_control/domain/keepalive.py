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
    """Decayed weights and weighted gap sums per bin of EDGES; ``seen`` counts gaps."""

    weights: tuple[float, ...] = ()
    sums: tuple[float, ...] = ()
    seen: int = 0

    def total(self) -> float:
        return sum(self.weights)


def bin_of(gap_s: float) -> int:
    index = 0
    for i, edge in enumerate(EDGES):
        if gap_s >= edge:
            index = i
    return index


def record_gap(hist: GapHistogram, gap_s: float, memory: float = MEMORY) -> GapHistogram:
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
    return GapHistogram(
        tuple(round(w, 6) for w in weights), tuple(round(s, 3) for s in sums), hist.seen + 1
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
    margin: float = 2.0  # adaptive with reference: head-room over the longest warm gap

    def cold_cost(self, hourly_price: float) -> float:
        return cold_start_cost(self.boot_s, hourly_price, self.wait_weight)


KINDS = ("fixed", "break-even", "adaptive")


def idle_timeout(spec: KeepAlive, hourly_price: float, hist: GapHistogram) -> float:
    """The idle timeout a pool uses now, from its configuration and its observed gaps."""
    low, high = min(spec.min_s, spec.idle_timeout_s), spec.idle_timeout_s
    if spec.kind == "break-even":
        return break_even(hourly_price, spec.cold_cost(hourly_price), low, high)
    if spec.kind == "adaptive":
        return histogram_timeout(
            hist,
            hourly_price,
            spec.cold_cost(hourly_price),
            low,
            high,
            min_samples=spec.min_samples,
            reference_s=spec.reference_s,
            margin=spec.margin,
        )
    return spec.idle_timeout_s
