"""Keep-alive benchmark: every policy × every derived workload × seeds, in the simulator.

``python bench/keepalive.py [--seeds 3] [--jobs 2] [--write]`` prints the section (and
with ``--write`` replaces it in bench/RESULTS.md). Every run is the real Service on a
MemoryStore in virtual time (sim/engine.py); figures are means over seeds, waits are
pooled over seeds. The "hindsight" row is not a simulation: it is the cost model's best
single fixed timeout for that workload, chosen knowing the whole trace — the floor of
any fixed-timeout policy (sim/optimum.py).

Invariant: deterministic — the same arguments give the same tables (no timing figures
except the benchmark's own run time, printed separately).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from _results import machine, write_section

from yoyo_control.sim.compute import Machine
from yoyo_control.sim.engine import SimParams, percentile, simulate
from yoyo_control.sim.optimum import offline_optimum, timeout_cost
from yoyo_control.sim.policies import DEFAULT_POLICY, POLICIES, parse_policy
from yoyo_control.sim.report import markdown
from yoyo_control.sim.workload import NAMED, build, resolve

POLICY_ORDER = [
    "fixed-5m",
    "fixed-15m",
    "always-on",
    "window",
    "break-even",
    "adaptive",
    "adaptive-neutral",
]
HINDSIGHT = (0, 60, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600, 7200)


def _run(job: tuple[str, str, int, dict[str, Any]]) -> dict[str, Any]:
    workload, policy, seed, overrides = job
    spec = resolve(workload)
    requests = build(replace(spec, seed=spec.seed + seed))
    params = replace(SimParams(seed=seed), **overrides)
    result = simulate(requests, parse_policy(policy), params, workload=workload)
    row = result.summary()
    row["waits"] = result.waits
    row["ledger_error"] = (
        (result.ledger_usd - result.dollars) / result.dollars
        if result.ledger_usd is not None and result.dollars
        else None
    )
    return row


def run_matrix(
    workloads: list[str],
    policies: list[str],
    seeds: int,
    jobs: int,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    work = [(w, p, s, overrides or {}) for w in workloads for p in policies for s in range(seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(_run, work))
    return [_run(j) for j in work]


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["workload"], run["policy"]), []).append(run)
    table = []
    for (workload, policy), group in groups.items():
        waits = [w for run in group for w in run["waits"]]

        def mean(key: str, g: list[dict[str, Any]] = group) -> float:
            return statistics.fmean(run[key] for run in g)

        table.append(
            {
                "workload": workload,
                "policy": policy,
                "requests": group[0]["requests"],
                "gpu_hours": mean("gpu_hours"),
                "dollars": mean("dollars"),
                "cold_starts": mean("cold_starts"),
                "cold_by_seed": "/".join(str(run["cold_starts"]) for run in group),
                "wait_p50_s": percentile(waits, 50),
                "wait_p95_s": percentile(waits, 95),
                "wait_p99_s": percentile(waits, 99),
                "cost_usd": mean("cost_usd"),
                "optimum_usd": mean("optimum_usd"),
                "ratio": mean("ratio"),
                "ratio_max": max(run["ratio"] for run in group),
                "ledger_error": statistics.fmean(
                    run["ledger_error"] for run in group if run["ledger_error"] is not None
                )
                if any(run["ledger_error"] is not None for run in group)
                else None,
            }
        )
    return table


def hindsight(workload: str, seeds: int) -> dict[str, Any]:
    model = SimParams().cost_model()
    ratios, best_ts = [], []
    for seed in range(seeds):
        spec = resolve(workload)
        requests = build(replace(spec, seed=spec.seed + seed))
        opt = offline_optimum(requests, model).cost_usd
        cost, t = min((timeout_cost(requests, model, t), t) for t in HINDSIGHT)
        ratios.append(cost / opt)
        best_ts.append(t)
    return {
        "workload": workload,
        "policy": f"(hindsight best fixed: {'/'.join(f'{t:g}s' for t in best_ts)})",
        "ratio": statistics.fmean(ratios),
        "ratio_max": max(ratios),
    }


COLUMNS = (
    ("policy", "policy"),
    ("gpu_hours", "GPU-h"),
    ("dollars", "$ billed"),
    ("cold_starts", "cold starts (mean)"),
    ("cold_by_seed", "per seed"),
    ("wait_p50_s", "wait p50 s"),
    ("wait_p95_s", "p95 s"),
    ("wait_p99_s", "p99 s"),
    ("cost_usd", "cost $"),
    ("optimum_usd", "optimum $"),
    ("ratio", "× optimum"),
    ("ratio_max", "worst seed"),
)


def goals(table: list[dict[str, Any]], workloads: list[str]) -> str:
    rows = []
    by = {(r["workload"], r["policy"]): r for r in table}
    for w in workloads:
        d, f = by.get((w, DEFAULT_POLICY)), by.get((w, "fixed-15m"))
        if d is None or f is None:
            continue
        d_cold = [int(x) for x in d["cold_by_seed"].split("/")]
        f_cold = [int(x) for x in f["cold_by_seed"].split("/")]
        cold_ok = all(a <= b for a, b in zip(d_cold, f_cold, strict=True))
        rows.append(
            {
                "workload": w,
                "ratio": d["ratio"],
                "ratio_max": d["ratio_max"],
                "within": "yes" if d["ratio_max"] <= 1.2 else "**no**",
                "cold": f"{d['cold_by_seed']} vs {f['cold_by_seed']}",
                "cold_ok": "yes" if cold_ok else "**no**",
            }
        )
    cols = (
        ("workload", "workload"),
        ("ratio", f"{DEFAULT_POLICY} × optimum (mean)"),
        ("ratio_max", "worst seed"),
        ("within", "≤ 1.2× on every seed"),
        ("cold", "cold starts per seed vs fixed-15m"),
        ("cold_ok", "never more"),
    )
    return markdown(rows, cols)


def section(seeds: int, jobs: int) -> str:
    began = time.perf_counter()
    workloads = list(NAMED)
    runs = run_matrix(workloads, POLICY_ORDER, seeds, jobs)
    table = aggregate(runs)
    parts = [
        "### Keep-alive policies (simulated)",
        "",
        f"Reproduce: `make bench-keepalive` (= `.venv/bin/python bench/keepalive.py "
        f"--seeds {seeds} --write`). Seeds 0…{seeds - 1}: each seed shifts the workload's "
        "thinning offset and draws new boot times. Pool: one instance, "
        f"${SimParams.hourly_price:.2f}/h; boot = STAGING 20 s + model load 120 s "
        "(lognormal, σ 0.3 each; mean 147 s), stop 30 s; tick 60 s; agent heartbeat 30 s. "
        "Cost = $ billed + 5 × price × (wait of each cold start's first request); the "
        "optimum is the cheapest reactive schedule knowing the future (sim/optimum.py).",
        "",
    ]
    for w in workloads:
        rows = [r for r in table if r["workload"] == w]
        rows.sort(key=lambda r: POLICY_ORDER.index(r["policy"]))
        rows.append(hindsight(w, seeds))
        parts += [f"**{w}** — `{NAMED[w]}` ({rows[0]['requests']} requests)", ""]
        parts += [markdown(rows, COLUMNS), ""]
    parts += ["#### Goals for the default policy", "", goals(table, workloads), ""]
    ledger = [r for r in table if r["policy"] == DEFAULT_POLICY and r["ledger_error"] is not None]
    parts += [
        "#### Real-time ledger against the billed truth (default policy)",
        "",
        markdown(
            [{"workload": r["workload"], "err": 100 * r["ledger_error"]} for r in ledger],
            (("workload", "workload"), ("err", "ledger − billed, % of billed")),
        ),
        "",
    ]
    parts += sensitivity(jobs)
    parts += [f"_Generated {machine()}; {time.perf_counter() - began:.0f} s._"]
    return "\n".join(parts)


def sensitivity(jobs: int) -> list[str]:
    """Seed 0 only: the cost model's waiting weight, and spot preemptions."""
    pols = ["fixed-5m", "fixed-15m", DEFAULT_POLICY]
    cols = (
        ("workload", "workload"),
        ("policy", "policy"),
        ("dollars", "$ billed"),
        ("cold_starts", "cold starts"),
        ("wait_p99_s", "wait p99 s"),
        ("ratio", "× optimum"),
    )
    dollars_only = aggregate(run_matrix(list(NAMED), pols, 1, jobs, {"wait_weight": 0.0}))
    spot = {"machine": replace(Machine(), preempt_per_hour=0.25)}
    preempted = aggregate(run_matrix(["bursty", "office-days"], pols, 1, jobs, spot))
    return [
        "#### Sensitivity (seed 0)",
        "",
        "Waiting valued at zero (cost = dollars only; the optimum then stops after any gap "
        "longer than the boot's billed time):",
        "",
        markdown(dollars_only, cols),
        "",
        "Spot preemptions, one per 4 running hours on average (Poisson):",
        "",
        markdown(preempted, cols),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = p.parse_args(argv)
    assert set(POLICY_ORDER) <= set(POLICIES)
    body = section(args.seeds, args.jobs)
    print(body)
    if args.write:
        write_section("keepalive", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
