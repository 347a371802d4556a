"""Autoscaling benchmark: VM-hours, time to first token and cold starts per workload for
today's rule, Knative's KPA, Yo-Yo's scaling on load and the oracle (sim/autoscale.py).

``python bench/autoscale.py [--minutes 0] [--seeds 1] [--write]`` prints the section
(``--write`` replaces it in bench/RESULTS.md). The default plays each workload's whole
trace hour once per seed (about a minute of wall time on a busy machine); the full size
is ``--seeds 3`` (boot times drawn three ways, averaged: three times longer);
``--minutes 20`` plays only the first 20 trace minutes (a quick look).

Workloads: sim/loadgen.py (TUNED: the policy's settings were chosen on these; HELD_OUT:
fixed, in a commit of its own, before any tuning). VMs: sim/autoscale.Server (64
sequences, 3000 tokens/s, 50 tokens/s per sequence), boot ≈ 140 s. KPA runs with
Knative's defaults (target 70 % of the 64 sequences: 44.8 requests per VM); Yo-Yo with
its own (PoolPolicy: 90 %, 57.6 per VM; queued requests at weight 0.5; a 30 s stable
window: chosen on the TUNED workloads only).

Goal (issue 27): on every workload, fewer VM-hours than KPA at a p99 no worse than
KPA's, and within 1.2× of the oracle's VM-hours.

Invariant: deterministic — the same arguments give the same tables.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(__file__))

from _results import machine, parser, report

from yoyo_control.sim.autoscale import AutoscaleParams, Outcome, oracle, simulate
from yoyo_control.sim.loadgen import HELD_OUT, TUNED, LoadSpec, build

POLICIES = ("today", "kpa", "yoyo")


def run(spec: LoadSpec, seeds: int) -> dict[str, list[Outcome]]:
    arrivals = build(spec)
    out: dict[str, list[Outcome]] = {k: [] for k in (*POLICIES, "oracle")}
    for seed in range(seeds):
        params = AutoscaleParams(seed=seed)
        for kind in POLICIES:
            out[kind].append(simulate(arrivals, kind, params))
        out["oracle"].append(oracle(arrivals, params))
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--minutes", type=float, default=0.0, help="trace minutes (0: all)")
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args()
    began = time.perf_counter()
    rows, verdicts = [], []
    sets = [("tuned", TUNED), ("held-out", HELD_OUT)]
    for split, specs in sets:
        for name, spec in specs.items():
            if args.minutes > 0:
                spec = replace(spec, minutes=args.minutes)
            out = run(spec, args.seeds)
            stats = {}
            for kind, runs in out.items():
                vmh = _mean([o.vm_hours for o in runs])
                p50 = _mean([o.p(50) for o in runs])
                p99 = _mean([o.p(99) for o in runs])
                boots = _mean([o.boots for o in runs])
                lost = sum(o.unserved for o in runs)
                stats[kind] = (vmh, p99)
                rows.append(
                    f"| {name} ({split}) | {kind} | {vmh:.2f} | {p50:.1f} | {p99:.1f} | "
                    f"{boots:.1f} | {lost} |"
                )
            (y_vmh, y_p99), (k_vmh, k_p99), (o_vmh, _) = (
                stats["yoyo"],
                stats["kpa"],
                stats["oracle"],
            )
            verdicts.append(
                f"| {name} ({split}) | {y_vmh / k_vmh:.2f} {'✔' if y_vmh < k_vmh else '✘'} | "
                f"{y_p99:.1f} vs {k_p99:.1f} {'✔' if y_p99 <= k_p99 else '✘'} | "
                f"{y_vmh / o_vmh:.2f} {'✔' if y_vmh <= 1.2 * o_vmh else '✘'} |"
            )
    size = "whole trace" if args.minutes <= 0 else f"first {args.minutes:g} trace minutes"
    load = os.getloadavg()
    body = "\n".join(
        [
            "## Autoscaling on load (bench/autoscale.py)",
            "",
            f"Simulated (sim/autoscale.py; `today` and `yoyo` run the production Service and "
            f"decide()), {size} of each workload (sim/loadgen.py), {args.seeds} seed(s). "
            "VM-hours: billed time (RUNNING + STOPPING) from 5 min before the load (one VM "
            "warm) to 2 min after its last arrival. TTFT: arrival → first token (held at "
            "the gateway + cold start + the VM's batch). Boots: VM starts. Lost: requests "
            "never served (today's rule leaves some still queued when the window ends).",
            "",
            "| workload | policy | VM-hours | TTFT p50 (s) | TTFT p99 (s) | boots | lost |",
            "|---|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Goals per workload: Yo-Yo's VM-hours ÷ KPA's (< 1), p99 Yo-Yo vs KPA (≤), "
            "Yo-Yo's VM-hours ÷ the oracle's (≤ 1.2).",
            "",
            "| workload | VM-h ÷ KPA | p99 vs KPA | VM-h ÷ oracle |",
            "|---|---|---|---|",
            *verdicts,
            "",
            f"Run: {machine()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"{time.perf_counter() - began:.0f} s wall.",
        ]
    )
    return report("autoscale", body, args.write)


if __name__ == "__main__":
    sys.exit(main())
