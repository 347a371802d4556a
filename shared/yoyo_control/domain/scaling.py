"""Scaling on load (pure): how many VMs the pool's online load wants, and whether the
spend caps let it have them (README "Scaling on load").

The load is ``max(in flight at the gateway, running + waiting on the VMs) + held at the
gateway``: the gateway's report (``PoolState.load``, fact ``LoadReported``) while it is
fresh, the VMs' heartbeats while they are fresh; each source is read on its own (the
producer's queue depth, ``PoolState.demand``, and batch demand are other inputs of
rule 4, never added here). The pool wants ``ceil(load / target)`` VMs.

Invariants:
- Scale-out is immediate: a report above the target adds VMs in the decision it lands
  in (a burst of twice the target, Knative's panic threshold, within seconds of its
  report); scale-in waits: a VM count the load wanted stays wanted for
  ``scale_window_s`` after the load last wanted it (the stable window), then the pool
  steps down to the most it wanted since; so a VM is never stopped for load within a
  window of being wanted. Which VMs stop is rule 4's choice: never one with work in
  flight nor one still loading (decide.running()).
- Budget: a scale-out whose spend, at the pool's run rate with the new VMs, would carry
  a day's or month's total past a cap (the pool's own or the overall one) before that
  period ends is refused, in part or whole (``affordable``); VMs already running keep
  serving.
- Pure: the same inputs always give the same answer; nothing reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .facts import LoadReported
from .ledger import period_keys
from .model import Heartbeat, Ledger, Load, PoolPolicy
from .spend import Spend, period_bounds

__all__ = [
    "REPORT_EVERY_S",
    "affordable",
    "concurrency",
    "load_matters",
    "load_report",
    "report_due",
    "track",
    "wanted",
]

# While it has load, the gateway reports at least this often (a report counts for
# ``heartbeat_gap_s``, 180 s by default, so one lost report changes nothing).
REPORT_EVERY_S = 30.0


def _fresh(at: float | None, now: float, within: float) -> bool:
    return at is not None and now - at <= within


def concurrency(
    load: Load, heartbeats: Mapping[str, Heartbeat], policy: PoolPolicy, now: float
) -> int:
    """The pool's online load now: requests running on its VMs (the larger of what the
    gateway and the VMs say, each while fresh) plus the queued ones (waiting on a VM,
    held at the gateway) at ``scale_backlog_weight``."""
    gap = policy.heartbeat_gap_s
    fresh = [hb for hb in heartbeats.values() if _fresh(hb.received_at, now, gap)]
    running = sum(max(0, hb.running) for hb in fresh)
    waiting = sum(max(0, hb.waiting) for hb in fresh)
    if _fresh(load.updated_at, now, policy.heartbeat_gap_s):
        # The gateway's in flight counts both (sent, not finished); never count twice.
        on_vms = max(running + waiting, max(0, load.in_flight))
        waiting = min(waiting, on_vms)
        running, queued = on_vms - waiting, waiting + max(0, load.held)
    else:
        queued = waiting
    return running + math.ceil(queued * policy.scale_backlog_weight)


def wanted(load: int, policy: PoolPolicy) -> int:
    """VMs a load wants at the pool's target (0 for no load)."""
    if load <= 0:
        return 0
    return math.ceil(load / policy.target)


def track(load: Load, want: int, now: float, window_s: float) -> Load:
    """The stable window: ``vms`` is the most VMs wanted within the last ``window_s``
    (exactly: ``marks`` keeps, for each count still the window's maximum from some
    time on, when it was last wanted). A count wanted again is re-marked only after a
    quarter window, so a steady load writes the pool at most four times a window; it
    holds for at least three quarters of a window after it was last wanted. A pool
    with no load and no count held is left as it is (its decision writes nothing)."""
    marks = [(v, at) for v, at in load.marks if now - at < window_s]
    if want > 0:
        same = [at for v, at in marks if v == want]
        if not same or now - same[0] >= window_s / 4:
            marks = [(v, at) for v, at in marks if v > want] + [(want, now)]
    vms = marks[0][0] if marks else 0
    fresh = tuple(marks)
    if fresh == load.marks and vms == load.vms:
        return load
    return replace(load, vms=vms, marks=fresh)


def affordable(
    ledger: Ledger,
    spend: Spend,
    policy: PoolPolicy,
    running_prices: Iterable[float],
    new_prices: list[float],
    now: float,
) -> tuple[int, str]:
    """How many of the new VMs (in start order, at ``new_prices``) the caps allow, and
    why the others are refused ("" if none is). ``ledger`` is accrued to ``now``;
    ``running_prices``: the hourly price of each VM already up."""
    rate = sum(running_prices)
    day_key, month_key = period_keys(now, policy.timezone)
    _, day_end, _, month_end = period_bounds(now, policy.timezone)
    day = ledger.day_usd if ledger.day == day_key else 0.0
    month = ledger.month_usd if ledger.month == month_key else 0.0
    others_day = spend.day_usd if spend.day == day_key else 0.0
    others_month = spend.month_usd if spend.month == month_key else 0.0
    caps = (
        ("daily", policy.daily_cap_usd, day, day_end),
        ("monthly", policy.monthly_cap_usd, month, month_end),
        ("overall daily", spend.daily_cap_usd, day + others_day, day_end),
        ("overall monthly", spend.monthly_cap_usd, month + others_month, month_end),
    )
    allowed = 0
    for price in new_prices:
        over = _over(caps, rate + price, now)
        if over:
            added = len(new_prices)
            return allowed, f"scale-out refused ({allowed} of {added} VM(s) added): {over}"
        rate += price
        allowed += 1
    return allowed, ""


def _over(caps: tuple[tuple[str, float | None, float, float], ...], rate: float, now: float) -> str:
    for name, cap, spent, end in caps:
        if cap is None:
            continue
        projected = spent + rate * max(0.0, end - now) / 3600.0
        if projected > cap:
            return (
                f"{name} cap {cap:.2f} would be crossed: {spent:.2f} spent + "
                f"{rate:.2f}/h to the period's end = {projected:.2f}"
            )
    return ""


def load_matters(previous: Heartbeat | None, new: Heartbeat, policy: PoolPolicy) -> bool:
    """A heartbeat whose VM's load crosses a half-target step: the pool is re-decided
    (one that only moves within a step is stored, like any report that does not
    matter, and the next decision reads it; a tick comes every ``tick_s``)."""
    before = 0 if previous is None else max(0, previous.running) + max(0, previous.waiting)
    after = max(0, new.running) + max(0, new.waiting)
    step = policy.target / 2
    return math.floor(before / step) != math.floor(after / step)


def report_due(
    last: tuple[int, int, float] | None, in_flight: int, held: int, now: float, target: float
) -> bool:
    """Whether the gateway should report its load now (``LoadReported``), given its last
    report ``(in_flight, held, at)``: when the load crosses a half-target step, when it
    ends (falls to zero), or every ``REPORT_EVERY_S`` while there is any."""
    total = max(0, in_flight) + max(0, held)
    if last is None:
        return total > 0
    before = max(0, last[0]) + max(0, last[1])
    if total == 0:
        return before > 0
    step = max(1.0, target / 2)
    if math.floor(before / step) != math.floor(total / step) or (held > 0) != (last[1] > 0):
        return True
    return now - last[2] >= REPORT_EVERY_S


def load_report(
    pool: str,
    last: tuple[int, int, float] | None,
    in_flight: int,
    held: int,
    now: float,
    target: float,
    reporter: str = "gateway",
    seq: int | None = None,
) -> LoadReported | None:
    """What the gateway calls with its counts for ``pool`` (``last``: its previous
    report's ``(in_flight, held, at)``): the ``LoadReported`` fact to hand to
    ``Service.handle`` now, or None. ``reporter`` names the gateway instance (letters,
    digits, ``-``); with the pool and ``seq`` (the reporter's own counter; by default
    the time in milliseconds) it makes the message id unique per report (a repeated id
    is a duplicate: recorded once)."""
    if not report_due(last, in_flight, held, now, target):
        return None
    serial = int(now * 1000) if seq is None else seq
    message_id = f"gateway-load-{pool}-{reporter}-{serial}"
    return LoadReported(message_id, now, pool, max(0, in_flight), max(0, held))
