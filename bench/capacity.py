"""Capacity benchmark: wakes served within 5 minutes and dollars per served hour, for a
pool of spot instances in 1, 2 and 3 zones, with and without a standard fallback, under
per-zone spot stockouts and preemptions (sim/capacity.py), on the real Service.

``python bench/capacity.py [--seeds 3] [--days 30] [--jobs 1] [--write]`` prints the
section (``--write`` replaces it in bench/RESULTS.md).

Calibration (parameters, not measured data; change them on the command line):
- a zone is out of spot capacity ``--stockout 0.3`` of the time (the issue's goal), in
  episodes of mean ``--stockout-mean`` = 0.3 × 24 h / 4 = 6480 s ("several times a
  day": four episodes a day), zones independent;
- spot preemptions at ``--preempt 0.05`` per running hour (Compute Engine publishes no
  rate; a parameter);
- prices: spot $0.70/h, standard $1.90/h (an L4-class VM; spot ≈ 63% off);
- work: sessions arriving at random (Poisson, mean gap 4 h), each one request that keeps
  a VM busy 30 min — so nearly every session is a wake (a cold pool) — plus the re-wakes
  that preemptions cause. A wake is served when an instance is ready for it.

Invariant: deterministic — the same arguments give the same tables.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _results import machine, parser, report

from yoyo_control.config import parse_config
from yoyo_control.sim.capacity import CapacitySimulation, Weather
from yoyo_control.sim.params import SimParams
from yoyo_control.sim.policies import parse_policy
from yoyo_control.sim.workload import Request

T0 = 1_800_000_000.0
SPOT_USD, STANDARD_USD = 0.70, 1.90
SESSION_S, GAP_S = 1800.0, 4 * 3600.0
WITHIN_S = 300.0


def sessions(seed: int, days: float) -> list[Request]:
    rng = random.Random(f"capacity-sessions/{seed}")
    t, end, out = T0, T0 + days * 86400, []
    while True:
        t += rng.expovariate(1 / GAP_S)
        if t > end:
            return out
        out.append(Request(t, SESSION_S))


def pool(zones: int, fallback: bool, fallback_after_s: float, backoff_max_s: float) -> Any:
    instances: list[Any] = [
        {"name": f"spot-{i}", "zone": f"zone-{i}", "hourly_price_usd": SPOT_USD}
        for i in range(zones)
    ]
    if fallback:
        instances.append(
            {
                "name": "standard-0",
                "zone": "zone-0",
                "hourly_price_usd": STANDARD_USD,
                "provisioning": "standard",
            }
        )
    raw = {
        "instances": instances,
        "fallback_after_s": fallback_after_s,
        "zone_backoff_max_s": backoff_max_s,
    }
    return parse_config({"pools": {"gpu": raw}}).pools["gpu"]


def run_one(job: tuple[int, bool, int, dict[str, float]]) -> dict[str, Any]:
    zones, fallback, seed, knobs = job
    requests = sessions(seed, knobs["days"])
    weather = Weather(
        stockout_share=knobs["stockout"],
        stockout_mean_s=knobs["stockout_mean"],
        preempt_per_hour=knobs["preempt"],
        seed=seed,
    )
    sim = CapacitySimulation(
        requests,
        parse_policy("adaptive"),
        pool(zones, fallback, knobs["fallback_after"], knobs["backoff_max"]),
        weather,
        params=SimParams(seed=seed),
    )
    result = sim.run()
    served_h = sum(r.service_s for i, r in enumerate(requests) if i in sim.waits) / 3600
    standard_h = sim.compute.billed_s("standard-0") / 3600 if fallback else 0.0
    return {
        "zones": zones,
        "fallback": fallback,
        "wakes": len(sim.wake_waits),
        "within": sum(w <= WITHIN_S for w in sim.wake_waits),
        "waits": sim.wake_waits,
        "dollars": sim.compute.dollars(),
        "served_h": served_h,
        "standard_h": standard_h,
        "refusals": sum(sim.compute.refusals.values()),
        "preemptions": result.preemptions,
    }


def table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for zones in (1, 2, 3):
        for fallback in (False, True):
            group = [r for r in runs if r["zones"] == zones and r["fallback"] == fallback]
            if not group:
                continue
            waits = sorted(w for r in group for w in r["waits"])
            wakes, within = sum(r["wakes"] for r in group), sum(r["within"] for r in group)
            dollars, served = sum(r["dollars"] for r in group), sum(r["served_h"] for r in group)
            rows.append(
                {
                    "zones": zones,
                    "fallback": fallback,
                    "wakes": wakes,
                    "share": within / wakes if wakes else 0.0,
                    "by_seed": "/".join(
                        f"{r['within'] / r['wakes']:.1%}" if r["wakes"] else "-" for r in group
                    ),
                    "p99_s": waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0,
                    "usd_per_h": dollars / served if served else 0.0,
                    "standard_share": sum(r["standard_h"] for r in group) / served
                    if served
                    else 0.0,
                    "refusals": statistics.fmean(r["refusals"] for r in group),
                    "preemptions": statistics.fmean(r["preemptions"] for r in group),
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], knobs: dict[str, float], seeds: int) -> str:
    lines = [
        "## Capacity: pools across zones (bench/capacity.py)",
        "",
        f"Simulated (sim/capacity.py on the real Service): {seeds} seed(s) × "
        f"{knobs['days']:.0f} days per row; a zone out of spot capacity "
        f"{knobs['stockout']:.0%} of the time in episodes of mean "
        f"{knobs['stockout_mean'] / 3600:.1f} h, zones independent; spot preemptions "
        f"{knobs['preempt']:g}/running h; spot ${SPOT_USD:.2f}/h, standard "
        f"${STANDARD_USD:.2f}/h; fallback after {knobs['fallback_after']:.0f} s of spot "
        f"refused in every zone; zone backoff 60 s doubling up to {knobs['backoff_max']:.0f} s"
        ". Sessions: Poisson, mean gap 4 h, 30 min busy each. "
        "A wake is served when an instance is ready for it (boot ≈ 140 s). "
        "$ per served h: all instance spend ÷ session hours served (sessions that overlap "
        "share a VM).",
        "",
        "| zones | fallback | wakes | served ≤ 5 min | by seed | wait p99 | $ per served h "
        "| standard h per served h | refusals/run | preemptions/run |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['zones']} | {'standard' if r['fallback'] else 'none'} | {r['wakes']} "
            f"| {r['share']:.1%} | {r['by_seed']} | {r['p99_s']:.0f} s "
            f"| ${r['usd_per_h']:.3f} | {r['standard_share']:.3f} | {r['refusals']:.0f} "
            f"| {r['preemptions']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--stockout", type=float, default=0.3)
    p.add_argument("--stockout-mean", type=float, default=0.3 * 86400 / 4)
    p.add_argument("--preempt", type=float, default=0.05)
    p.add_argument("--fallback-after", type=float, default=60.0)
    p.add_argument("--backoff-max", type=float, default=1800.0, help="zone_backoff_max_s")
    p.add_argument("--zones", type=int, nargs="*", default=[1, 2, 3])
    args = p.parse_args(argv)
    knobs = {
        "days": args.days,
        "stockout": args.stockout,
        "stockout_mean": args.stockout_mean,
        "preempt": args.preempt,
        "fallback_after": args.fallback_after,
        "backoff_max": args.backoff_max,
    }
    jobs = [(z, f, s, knobs) for z in args.zones for f in (False, True) for s in range(args.seeds)]
    began = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as workers:
            runs = list(workers.map(run_one, jobs))
    else:
        runs = [run_one(j) for j in jobs]
    body = markdown(table(runs), knobs, args.seeds) + f"\n\nRun: {machine()}."
    code = report("capacity", body, args.write)
    print(f"\n({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
