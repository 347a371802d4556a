"""Keep-alive development: a fast gap-level model of the rules, and the DEV workloads.

``python bench/keepalive_dev.py [--sets bench,dev] [--seeds N]`` prices each policy on
the idle gaps of each workload with the cost model of sim/optimum.py (an idle gap ``g``
costs ``g`` VM-seconds if the timeout ``T`` keeps it warm, else ``T + C/p``; the tail
after the last request costs ``T``), feeding the production rule (decide.idle_timeout on
a PoolState) the gaps one by one. It takes seconds where the simulator takes minutes, but
it is only a model (no tick granularity, boots at their mean): the simulator
(bench/keepalive.py) judges. It was used for issue 18's per-class experiment (commit
ab66ce4, reverted: see bench/RESULTS.md); ``--ka field=value`` overrides the KeepAlive
defaults decide() uses, for tuning.

``DEV`` are development workloads invented for tuning (k, s and seeds that neither the
benchmark, nor bench/heldout.py's HELD_OUT or FRESH use). Only the benchmark (seeds 0…9)
and DEV were used to design and tune rules after FRESH was fixed.

Invariant: deterministic; runs no policy on HELD_OUT or FRESH.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace

from yoyo_control.domain import keepalive
from yoyo_control.domain.decide import idle_timeout
from yoyo_control.domain.model import PoolPolicy, PoolState
from yoyo_control.sim.engine import SimParams
from yoyo_control.sim.fixed_hindsight import CANDIDATES_S
from yoyo_control.sim.optimum import busy_periods, idle_gaps
from yoyo_control.sim.workload import NAMED, build, resolve

DEV: dict[str, str] = {
    # bursty code-trace shapes between the benchmark's bursty and its sparse
    "d-bursty-20": "trace=code,k=20,s=20",
    "d-bursty-40": "trace=code,k=40,s=25",
    "d-bursty-30": "trace=code,k=30,s=50",
    "d-bursty-60": "trace=code,k=60,s=30",
    # mixed: code trace thinned and stretched far
    "d-mixed-100": "trace=code,k=100,s=45",
    "d-mixed-200": "trace=code,k=200,s=100",
    # conv trace: steady, and sparse around the break-even
    "d-steady": "trace=conv,k=50,s=5",
    "d-sparse": "trace=conv,k=120,s=30",
    # office days
    "d-office": "trace=conv,k=90,s=12,days=3,jitter_s=2000,at=08:45",
}
DEV_BURSTY = ("d-bursty-20", "d-bursty-40", "d-bursty-30", "d-bursty-60")
DEV_SEEDS = tuple(range(300, 306))

Rule = Callable[[keepalive.GapHistogram], float]


def gaps_of(spec_text: str, seed: int) -> list[float]:
    spec = resolve(spec_text)
    return idle_gaps(busy_periods(build(replace(spec, seed=spec.seed + seed))))


def production(policy: PoolPolicy, **spec: float) -> Rule:
    """decide()'s keep-alive for ``policy``; ``spec`` overrides KeepAlive's defaults (for
    tuning: the production rule is the one without overrides)."""
    saved = keepalive.KeepAlive.__init__.__defaults__

    def rule(hist: keepalive.GapHistogram) -> float:
        if spec:
            fields = keepalive.KeepAlive.__dataclass_fields__
            keepalive.KeepAlive.__init__.__defaults__ = tuple(
                spec.get(name, f.default) for name, f in fields.items()
            )
        try:
            return idle_timeout(policy, PoolState(pool=policy.pool, idle_gaps=hist))
        finally:
            keepalive.KeepAlive.__init__.__defaults__ = saved

    return rule


def fixed(t: float) -> Rule:
    return lambda hist: t


def run(rule: Rule, gaps: list[float], cold_s: float) -> tuple[float, int]:
    hist = keepalive.GapHistogram()
    cost, cold = 0.0, 0
    for g in gaps:
        t = rule(hist)
        if g <= t:
            cost += g
        else:
            cost += t + cold_s
            cold += 1
        hist = keepalive.record_gap(hist, g)
    return cost + rule(hist), cold


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="bench,dev")
    p.add_argument("--seeds", type=int, default=0, help="0: the set's own seeds")
    p.add_argument("--set", action="append", default=[], help="PoolPolicy field=value")
    p.add_argument("--ka", action="append", default=[], help="KeepAlive field=value")
    args = p.parse_args(argv)
    sim = SimParams()
    base = sim.pool_policy(None)
    over = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        over[k] = type(getattr(base, k))(v) if getattr(base, k) is not None else float(v)
    policy = replace(base, **over)
    model = sim.cost_model()
    cold_s = model.cold_cost / model.price_per_s
    sets = {"bench": (NAMED, range(10), ("bursty",)), "dev": (DEV, DEV_SEEDS, DEV_BURSTY)}
    ka = {k: float(v) for k, _, v in (x.partition("=") for x in args.ka)}
    if "min_samples" in ka:
        ka["min_samples"] = int(ka["min_samples"])
    rules: dict[str, Rule] = {"adaptive": production(policy, **ka)}
    rules |= {f"T{t:g}": fixed(t) for t in CANDIDATES_S}
    rules["break-even"] = fixed(min(1800.0, cold_s))
    total = {"adaptive": 0.0, "T900": 0.0, "best": 0.0}
    print(f"cold start = {cold_s:.0f} VM-s")
    for name in args.sets.split(","):
        workloads, seeds, bursty = sets[name]
        if args.seeds:
            seeds = list(seeds)[: args.seeds]
        for w, spec in workloads.items():
            res = {r: [0.0, 0] for r in rules}
            for seed in seeds:
                gaps = gaps_of(spec, seed)
                for r, rule in rules.items():
                    c, k = run(rule, gaps, cold_s)
                    res[r][0] += c
                    res[r][1] += k
            best = min((res[f"T{t:g}"][0], t) for t in CANDIDATES_S)
            a, f = res["adaptive"], res["T900"]
            be = res["break-even"]
            ok1 = a[0] <= min(f[0], be[0])
            ok2 = a[1] <= f[1]
            ok3 = a[0] <= 1.05 * best[0]
            ok4 = a[0] <= best[0] if w in bursty else None
            flags = "".join(
                "-" if ok is None else ("Y" if ok else "n") for ok in (ok1, ok2, ok3, ok4)
            )
            print(
                f"{w:14s} {flags} adaptive {a[0]:9.0f} cold {a[1]:5d} | 15m {f[0] / a[0]:.3f}x"
                f" cold {f[1]:5d} | best T={best[1]:g} a/best {a[0] / best[0]:.3f}"
                f" | a/15m {a[0] / f[0]:.3f} a/be {a[0] / be[0]:.3f}"
            )
            total["adaptive"] += a[0]
            total["T900"] += f[0]
            total["best"] += best[0]
    print({k: round(v) for k, v in total.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
