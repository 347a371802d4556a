"""``yoyoctl simulate`` / ``python -m yoyo_control.sim``: run workloads against policies.

Usage: ``simulate --workload sparse --policy fixed-15m --policy adaptive [--seed 0]
[--price 0.70] [--wait-weight 5] [--preempt-per-hour 0] [--json]``. ``--list`` prints
the named workloads and policies. Exit codes: 0 ok, 2 usage error (one line on stderr).

Invariant: the command only reads the traces and writes to stdout/stderr; every figure
it prints names its workload spec, policy and seed, so it can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TextIO

from .compute import Dist, Machine
from .engine import SimParams, SimResult, simulate
from .policies import DEFAULT_POLICY, POLICIES, parse_policy
from .report import rows, text
from .workload import NAMED, build, resolve


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yoyoctl simulate",
        description="Replay a derived request trace against the real decide() in virtual "
        "time and compare keep-alive policies with the offline optimum.",
    )
    p.add_argument("--workload", "-w", action="append", default=[], help="name or spec")
    p.add_argument("--policy", "-p", action="append", default=[], help="name or fixed:<s>")
    p.add_argument("--seed", type=int, action="append", default=[], help="(repeatable)")
    p.add_argument("--price", type=float, default=SimParams.hourly_price, help="USD per hour")
    p.add_argument("--wait-weight", type=float, default=SimParams.wait_weight)
    p.add_argument("--boot", type=float, default=Machine.ready.median_s, help="median ready s")
    p.add_argument("--preempt-per-hour", type=float, default=0.0)
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.add_argument("--list", action="store_true", help="list named workloads and policies")
    return p


def params_from(args: argparse.Namespace, seed: int) -> SimParams:
    machine = replace(
        Machine(),
        ready=Dist(args.boot, Machine.ready.sigma),
        preempt_per_hour=args.preempt_per_hour,
    )
    return SimParams(
        hourly_price=args.price,
        wait_weight=args.wait_weight,
        machine=machine,
        timezone=args.timezone,
        seed=seed,
    )


def simulate_main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    p = parser()
    args = p.parse_args(argv)
    if args.list:
        for name, spec in NAMED.items():
            print(f"workload {name}: {spec}", file=out)
        for name in POLICIES:
            print(f"policy {name}", file=out)
        return 0
    try:
        workloads = [(w, resolve(w)) for w in (args.workload or ["sparse"])]
        policies = [parse_policy(x) for x in (args.policy or ["fixed-15m", DEFAULT_POLICY])]
    except ValueError as exc:
        print(f"yoyoctl simulate: {exc}", file=sys.stderr)
        return 2
    results: list[SimResult] = []
    for seed in args.seed or [0]:
        for name, spec in workloads:
            try:
                requests = build(replace(spec, seed=spec.seed + seed, timezone=args.timezone))
            except OSError as exc:
                print(f"yoyoctl simulate: cannot read the trace: {exc}", file=sys.stderr)
                return 2
            for policy in policies:
                result = simulate(requests, policy, params_from(args, seed), workload=name)
                results.append(result)
                if args.json:
                    print(json.dumps({"spec": str(spec), **result.summary()}), file=out)
    if not args.json:
        print(text(rows(results)), file=out)
    return 0


def main() -> None:
    raise SystemExit(simulate_main())
