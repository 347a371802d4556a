"""Pre-warm (pure): start an idle pool ahead of a first request its history predicts.

The evidence is the pool's history (domain/history.py): the first requests that ended a
long idle, on each of the last ``HORIZON_DAYS`` days the history covers. Starting now
(``s``) makes a VM ready at ``s + b`` (``b`` = the pool's expected boot) and holds it,
if nobody comes, until ``s + b + W`` (``W`` = ``prewarm_hold_s``). On each past day the
same local moment ``r`` (``s`` minus whole days) is looked at; with ``a`` the time from
``r`` to that day's next first request, the pre-warm would have been worth, in
VM-seconds (a user-second waiting is worth ``wait_weight`` of them):

- ``a < b`` (it came while booting): its wait shortened by ``a``: ``a × (wait_weight - 1)``;
- ``b <= a <= b + W`` (a hit): its whole wait saved, the idle VM paid:
  ``b × wait_weight - (a - b)``;
- otherwise (a miss): the boot and the hold paid for nothing: ``-(b + W)``.

To the days looked at, ``PRIOR_DAYS`` of misses are added (a pattern seen once is not
yet one). Days are weighted by likeness to today: the same weekday 1, the same kind (weekday or
weekend) 0.5, the other kind 0.25 — 0.05 once a day of today's kind is in the history.
A pre-warm starts at ``now`` when the weighted mean value is above ``MIN_VALUE`` of a
full saving, waiting one more tick would not be worth more (so it starts as late as is
useful), at least ``MIN_EVIDENCE`` weighted days of history back it, the pool holds no
lease, none started in the last ``b + W``, and the day's budget (``prewarm_budget_min``
VM-minutes, local day of the pool's time zone) still holds the whole lease it asks for
(``b + W``): a pre-warm lease can keep a VM no longer, so the
budget bounds the VM-time pre-warms alone can cause (up to the stop's own latency).

Invariants: pure — the same (history, now, settings) always gives the same Verdict; a
budget of 0 never fires; ``charge`` is the only way spent budget grows, and a verdict that
fires never makes the day's charge exceed the budget. The kill switch and the spend caps
are checked by decide() before this rule can run (rules 1 and 2).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from .history import HORIZON_DAYS, History, local, sanitize

DAY = 86400.0
MIN_VALUE = 0.1  # of one full saving (b × wait_weight): below it a pre-warm is not worth it
PRIOR_DAYS = 0.25  # weighted days of misses every estimate starts from
MIN_EVIDENCE = 0.5  # weighted days of history before any pre-warm (one day like today)


@dataclass(frozen=True)
class Settings:
    """What a pre-warm needs from the pool's policy (PoolPolicy's fields of these names)."""

    budget_min: float  # VM-minutes of pre-warm lease a (local) day; 0 = off
    hold_s: float  # a pre-warmed VM waits this long after its expected boot
    boot_s: float  # the expected wake → ready time
    wait_weight: float  # a user-second of waiting is worth this many VM-seconds
    tick_s: float = 60.0
    timezone: str = "UTC"

    @property
    def lease_s(self) -> float:
        return self.boot_s + self.hold_s


@dataclass(frozen=True)
class Verdict:
    fire: bool
    reason: str
    value: float = 0.0  # expected VM-seconds saved (weighted mean over the days)
    evidence: float = 0.0  # weighted days looked at


def _weight(today: int, then: int, kind_seen: bool) -> float:
    """Likeness of a past day to today: the same weekday, the same kind (weekday or
    weekend), else the other kind — which counts for little once a day of today's kind
    is in the history (a weekly pattern shows), and for more until then."""
    if today == then:
        return 1.0
    if (today >= 5) == (then >= 5):
        return 0.5
    return 0.05 if kind_seen else 0.25


def value_at(history: History, s: float, settings: Settings, skip_s: float = 0.0) -> Verdict:
    """The expected value of a pre-warm started at ``s`` (firsts within ``skip_s`` of a
    day's moment came before it would start: worth nothing either way)."""
    b, w, wait = settings.boot_s, settings.hold_s, settings.wait_weight
    if not history.firsts:
        return Verdict(False, "no first requests in the history")
    firsts = [f * 60.0 for f in history.firsts]
    since = (history.since or 0) * 60.0
    today = local(s, settings.timezone).weekday()
    days = [j for j in range(1, HORIZON_DAYS + 1) if s - j * DAY >= since]
    kind_seen = any(((today - j) % 7 >= 5) == (today >= 5) for j in days)
    total = weight_sum = 0.0
    for j in days:
        r = s - j * DAY  # the same local time j days ago (a DST change shifts it: advice)
        weight = _weight(today, (today - j) % 7, kind_seen)
        i = bisect.bisect_left(firsts, r)
        a = firsts[i] - r if i < len(firsts) else None
        if a is not None and a < skip_s:
            worth = 0.0
        elif a is not None and a < b:
            worth = a * (wait - 1.0)
        elif a is not None and a <= b + w:
            worth = b * wait - (a - b)
        else:
            worth = -(b + w)
        total += weight * worth
        weight_sum += weight
    if weight_sum <= 0:
        return Verdict(False, "no history", 0.0, 0.0)
    # A prior of PRIOR_DAYS days that were misses: a pattern must repeat before it pays.
    prior = PRIOR_DAYS * -(b + w)
    return Verdict(False, "", (total + prior) / (weight_sum + PRIOR_DAYS), weight_sum)


def spent_today(history: History, now: float, timezone: str) -> float:
    day = local(now, timezone).date().isoformat()
    return history.prewarm_s if history.prewarm_day == day else 0.0


def decide(history: History, now: float, settings: Settings, has_lease: bool) -> Verdict:
    """Whether to start the pool now, and why (or why not)."""
    if settings.budget_min <= 0:
        return Verdict(False, "pre-warm off (budget 0)")
    h = sanitize(history)
    if has_lease:
        return Verdict(False, "the pool holds a lease")
    if h.prewarm_at is not None and now - h.prewarm_at < settings.lease_s:
        return Verdict(False, "a pre-warm is under way")
    here = value_at(h, now, settings)
    if here.evidence < MIN_EVIDENCE:
        return Verdict(False, f"{here.evidence:.1f} days of history", here.value, here.evidence)
    floor = MIN_VALUE * settings.boot_s * settings.wait_weight
    if here.value <= floor:
        return Verdict(False, f"not worth it ({here.value:.0f} VM-s)", here.value, here.evidence)
    later = value_at(h, now + settings.tick_s, settings, skip_s=settings.tick_s)
    if later.value > here.value:
        return Verdict(False, "better a tick later", here.value, here.evidence)
    spent = spent_today(h, now, settings.timezone)
    if spent + settings.lease_s > settings.budget_min * 60.0 + 1e-6:
        why = f"budget: {spent / 60:.0f} of {settings.budget_min:g} VM-min spent today"
        return Verdict(False, why, here.value, here.evidence)
    why = (
        f"pre-warm: a first request expected (worth {here.value:.0f} VM-s over "
        f"{here.evidence:.1f} days of history); {spent / 60:.0f}+{settings.lease_s / 60:.1f} "
        f"of {settings.budget_min:g} VM-min today"
    )
    return Verdict(True, why, here.value, here.evidence)


def stopped_today(stopped_at: float | None, now: float, timezone: str) -> bool:
    """Whether an operator stopped the pool earlier on ``now``'s local day."""
    if stopped_at is None or stopped_at > now:
        return stopped_at is not None and stopped_at - now < DAY
    return local(stopped_at, timezone).date() == local(now, timezone).date()


def charge(history: History, now: float, settings: Settings) -> History:
    """The history after a pre-warm lease of ``settings.lease_s`` was granted at ``now``."""
    h = sanitize(history)
    day = local(now, settings.timezone).date().isoformat()
    spent = spent_today(h, now, settings.timezone) + settings.lease_s
    return replace(h, prewarm_day=day, prewarm_s=spent, prewarm_at=now)


def next_planned(
    history: History, now: float, settings: Settings, horizon_s: float = DAY
) -> tuple[float, Verdict] | None:
    """When the next pre-warm would start if the pool stays idle (for ``yoyoctl status``)."""
    h = sanitize(history)
    if settings.budget_min <= 0 or not h.firsts:
        return None
    step = max(60.0, settings.tick_s)
    t = now
    while t < now + horizon_s:
        verdict = decide(h, t, settings, has_lease=False)
        if verdict.fire:
            return t, verdict
        t += step
    return None
