"""Keep-alive policies as the simulator runs them: an idle timeout now, and run windows.

The simulator overrides the pool's ``idle_timeout_s`` before each event with the value
``SimPolicy.timeout`` gives (the pure functions of domain/keepalive.py, fed with the idle
gaps the pool has seen so far), and for windowed policies it publishes a ``cycle``
RunRequested at every window start, as the Cloud Scheduler cycle job does.

Names (``parse_policy``): ``fixed-5m``, ``fixed-15m``, ``always-on``, ``window``
(09:00–19:00 local, fixed 5 min outside), ``break-even`` (ski rental on the cold-start
cost), ``histogram`` (the histogram's cheapest timeout, after 3 gaps, up to 30 min),
``adaptive`` — **the default**, under the name the configuration and the README give it:
no override, the pool's own keep-alive (PoolPolicy's default, ``keepalive = "adaptive"``)
computed by decide() from the idle gaps the control plane observes through heartbeats
and wakes, i.e. what production runs; ``adaptive-noprewarm`` (the default with its
pre-warm off), ``oracle-prewarm`` (the default's keep-alive with the simulator's oracle
pre-warm instead of its own: a bound), ``adaptive-neutral`` (the default's rule, but fed
the exact gaps the simulated gateway sees instead of the observed ones), or
``fixed:<seconds>``, ``window:HH:MM-HH:MM``,
``histogram:ref=900,margin=2,min_samples=2,max=1800,min=60`` (any subset).

Invariants: a policy is an immutable value; ``timeout`` is pure given its arguments;
``adaptive-neutral`` carries PoolPolicy's defaults, so it is the default's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..domain import keepalive
from ..domain.keepalive import GapHistogram
from ..domain.model import PoolPolicy

DAY = 86400.0
FOREVER = 366 * DAY  # the configuration's largest duration


@dataclass(frozen=True)
class SimPolicy:
    name: str
    kind: str  # fixed | always | window | break-even | histogram | pool
    timeout_s: float = 600.0  # fixed: the timeout; window: outside it; others: the maximum
    window: tuple[float, float] | None = None  # local seconds of day [start, end)
    reference_s: float | None = None
    min_s: float = 60.0
    min_samples: int = 3
    margin: float = 1.0
    # Pre-warm: "" the pool's own (PoolPolicy; only ``pool`` policies have one), "off" a
    # budget of 0, "oracle" the simulator's oracle (knows each next first request after
    # a long idle; sim/engine.py) with the pool's own pre-warm off.
    prewarm: str = ""

    def windows(self) -> tuple[float, float] | None:
        if self.kind == "always":
            return (0.0, DAY)
        return self.window if self.kind == "window" else None

    def max_keepalive_s(self) -> float:
        """The longest idle time this policy keeps a VM (the agent's backstop sits above)."""
        return FOREVER if self.kind in ("always", "window") else self.timeout_s

    def timeout(
        self,
        now: float,
        timezone: str,
        hist: GapHistogram,
        hourly_price: float,
        cold_cost: float,
    ) -> float:
        if self.kind in ("fixed", "pool"):
            return self.timeout_s
        if self.kind == "always":
            return FOREVER
        if self.kind == "window":
            assert self.window is not None
            start, end = self.window
            return keepalive.window_timeout(now, timezone, start, end, FOREVER, self.timeout_s)
        low = min(self.min_s, self.timeout_s)
        if self.kind == "break-even":
            return keepalive.break_even(hourly_price, cold_cost, low, self.timeout_s)
        return keepalive.histogram_timeout(
            hist,
            hourly_price,
            cold_cost,
            low,
            self.timeout_s,
            min_samples=self.min_samples,
            reference_s=self.reference_s,
            margin=self.margin,
        )


def _hhmm(text: str) -> float:
    hour, minute = (int(x) for x in text.split(":"))
    return hour * 3600.0 + minute * 60.0


# The default keep-alive's parameters, as PoolPolicy gives them to decide().
_DEFAULT = PoolPolicy(pool="default")
_DEFAULT_MAX_S = max(_DEFAULT.keepalive_max_s, _DEFAULT.idle_timeout_s)

POLICIES: dict[str, SimPolicy] = {
    "fixed-5m": SimPolicy("fixed-5m", "fixed", 300.0),
    "fixed-15m": SimPolicy("fixed-15m", "fixed", 900.0),
    "always-on": SimPolicy("always-on", "always"),
    "window": SimPolicy("window", "window", 300.0, window=(_hhmm("09:00"), _hhmm("19:00"))),
    "break-even": SimPolicy("break-even", "break-even", 1800.0),
    "histogram": SimPolicy("histogram", "histogram", 1800.0),
    # No override: the pool's own configured keep-alive, as decide() computes it.
    "adaptive": SimPolicy("adaptive", "pool", _DEFAULT_MAX_S),
    # Issue 28: the default without its pre-warm, and with the oracle's instead.
    "adaptive-noprewarm": SimPolicy("adaptive-noprewarm", "pool", _DEFAULT_MAX_S, prewarm="off"),
    "oracle-prewarm": SimPolicy("oracle-prewarm", "pool", _DEFAULT_MAX_S, prewarm="oracle"),
    "adaptive-neutral": SimPolicy(
        "adaptive-neutral",
        "histogram",
        _DEFAULT_MAX_S,
        reference_s=_DEFAULT.idle_timeout_s,
        min_s=keepalive.KeepAlive.min_s,
        min_samples=keepalive.KeepAlive.min_samples,
        margin=keepalive.KeepAlive.margin,
    ),
}
# The production default as production runs it: PoolPolicy's default keep-alive, computed
# by decide(); the same name as in the configuration and the README.
DEFAULT_POLICY = "adaptive"


def _histogram(name: str, arg: str) -> SimPolicy:
    """``histogram:ref=900,margin=2,min_samples=2,max=1800,min=60``."""
    policy = SimPolicy(name, "histogram", 1800.0)
    keys = {"ref": "reference_s", "margin": "margin", "min_samples": "min_samples"}
    keys |= {"max": "timeout_s", "min": "min_s"}
    values: dict[str, object] = {}
    for part in filter(None, arg.split(",")):
        key, _, value = part.partition("=")
        if key not in keys:
            raise ValueError(f"policy {name!r}: unknown option {key!r} ({sorted(keys)})")
        values[keys[key]] = int(value) if key == "min_samples" else float(value)
    return replace(policy, **values)  # type: ignore[arg-type]


def parse_policy(text: str) -> SimPolicy:
    if text in POLICIES:
        return POLICIES[text]
    kind, _, arg = text.partition(":")
    if kind == "fixed" and arg:
        return SimPolicy(text, "fixed", float(arg))
    if kind == "histogram":
        return _histogram(text, arg)
    if kind == "window" and "-" in arg:
        start, end = arg.split("-")
        return SimPolicy(text, "window", 300.0, window=(_hhmm(start), _hhmm(end)))
    raise ValueError(
        f"unknown policy {text!r}: one of {sorted(POLICIES)}, fixed:<s>, window:HH:MM-HH:MM, "
        "histogram:<options>"
    )
