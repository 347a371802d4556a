"""Store operations per day at the default configuration, against Firestore's free tier.

``python bench/store_ops.py [--write]``. Each scenario is 24 virtual hours of the real
Service on the real SqliteStore, wrapped by CountingStore (sim/counting.py), which
prices every port call as the Firestore adapter would be billed: document reads,
writes, and the TTL deletes of the event log. The VM agent's own store reads (it reads
the kill switch and its pool every ``poll_s``) go through a second wrapper so they are
counted separately. Defaults are production's: PoolPolicy() (idle 600 s, lease 1800 s,
4 h session cap, 8 h lease cap), tick every minute, agent heartbeat 30 s, agent poll
1 s (exactly, not event-driven), agent idle backstop 1800 s.

Invariant: every count is deterministic (virtual time, seeded boots).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _results import machine, parser, report

from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.domain.model import PoolPolicy
from yoyo_control.sim.counting import CountingStore
from yoyo_control.sim.engine import SimParams, Simulation
from yoyo_control.sim.policies import DEFAULT_POLICY, parse_policy
from yoyo_control.sim.report import markdown
from yoyo_control.sim.workload import build, resolve, start_of

FREE = {"reads": 50_000, "writes": 20_000, "deletes": 20_000}
DAY = 86400.0
DEFAULTS = PoolPolicy(pool="default")
PRODUCTION = SimParams(
    lease_s=DEFAULTS.lease_s,
    max_session_s=DEFAULTS.max_session_s,
    max_lease_s=DEFAULTS.max_lease_s,
    idle_shutdown_s=1800.0,
    exact_agent=True,
    agent_poll_s=1.0,
    tail_s=0.0,
    lead_s=0.0,
)
SCENARIOS: dict[str, tuple[str | None, str, str]] = {
    # name: (workload spec or None for no requests, policy, what it shows)
    "idle": (None, f"fixed:{DEFAULTS.idle_timeout_s:g}", "no request all day: ticks only"),
    "office day": (
        "office-days,days=1",
        DEFAULT_POLICY,
        "the office-days workload's first day (~10 h of traffic)",
    ),
    "busy": (
        "trace=conv,k=1,s=24.6,at=00:00",
        f"fixed:{DEFAULTS.idle_timeout_s:g}",
        "the conv trace stretched over 24 h (a request every ~4.5 s): a VM runs all day",
    ),
}


def run(name: str, workdir: Path) -> dict[str, Any]:
    spec_text, policy, what = SCENARIOS[name]
    inner = SqliteStore(workdir / f"{name.replace(' ', '-')}.sqlite3")
    plane, agent = CountingStore(inner), CountingStore(inner)
    spec = resolve(spec_text or "sparse")
    start = start_of(replace(spec, at="00:00"))  # the day starts at local midnight
    requests = [r for r in build(spec) if r.arrival < start + DAY] if spec_text else []
    sim = Simulation(
        requests,
        parse_policy(policy),
        PRODUCTION,
        store=plane,
        agent_store=agent,
        span=(start, start + DAY),
    )
    began = time.perf_counter()
    result = sim.run()
    wall = time.perf_counter() - began
    inner.close()
    invocations = sum(v for k, v in result.delivered.items() if k not in ("redelivery",))
    return {
        "scenario": name,
        "what": what,
        "policy": policy,
        "requests": len(requests),
        "vm_hours": round(result.gpu_s / 3600, 1),
        "invocations": invocations,
        "plane_reads": plane.reads,
        "plane_writes": plane.writes,
        "deletes": plane.counts["deletes"],
        "agent_reads": agent.reads,
        "reads": plane.reads + agent.reads,
        "writes": plane.writes + agent.writes,
        "wall_s": wall,
        "breakdown": dict(plane.counts),
    }


def verdict(row: dict[str, Any]) -> str:
    over = [k for k in ("reads", "writes", "deletes") if row[k] > FREE[k]]
    if not over:
        return "inside"
    return "**over** (" + ", ".join(f"{k} {row[k] / FREE[k]:.1f}×" for k in over) + ")"


class _Pushed(CountingStore):
    """A store whose kill switch is pushed by a listener (Firestore's on_snapshot): one
    billed read when the listener starts, one per change (none in an hour of traffic)."""

    def watch_kill(self, on_change: Any) -> Any:
        self._add("listen_kill", reads=1)
        on_change(self.inner.get_kill())
        return lambda: None


def gateway_view(workdir: Path, vms: int, pushed: bool, rate: float = 10.0) -> dict[str, Any]:
    """One gateway instance's view (gateway/view.py) under an hour of steady traffic at
    ``rate`` requests a second to one warm pool of ``vms`` VMs: document reads per second."""
    import asyncio

    from yoyo_control.adapters.clock import ManualClock
    from yoyo_control.domain.model import Heartbeat
    from yoyo_control.gateway.view import View

    inner = SqliteStore(workdir / f"view-{vms}-{pushed}.sqlite3")
    now = 1_800_000_000.0
    for i in range(vms):
        inner.put_heartbeat("gpu", Heartbeat(f"vm-{i}", "b", now, now, ready=True, address="x"))
    store = (_Pushed if pushed else CountingStore)(inner)
    clock = ManualClock(now)
    view = View(store, clock, poll_s=1.0)
    hour = 3600.0

    async def traffic() -> None:
        for _ in range(int(hour * rate)):
            await view.read("gpu")
            clock.advance(1 / rate)

    asyncio.run(traffic())
    inner.close()
    per_s = store.reads / hour
    month = per_s * 86400 * 30
    return {
        "pool": f"{vms} VM{'s' if vms > 1 else ''}",
        "kill": "listener (Firestore)" if pushed else "read ≤ 1/s (no listener)",
        "per_s": round(per_s, 2),
        "month": f"{month / 1e6:.1f} M",
        "usd": f"${month / 1e5 * 0.03:.2f}–{month / 1e5 * 0.06:.2f}",
    }


def gateway_section(workdir: Path) -> list[str]:
    rows = [gateway_view(workdir, n, p) for n in (1, 2) for p in (True, False)]
    cols = (
        ("pool", "pool"),
        ("kill", "kill switch"),
        ("per_s", "reads/s (goal ≤ 1 per pool)"),
        ("month", "reads per 30 days"),
        ("usd", "$ per 30 days"),
    )
    return [
        "",
        "#### The gateway's view under steady traffic (per pool, per gateway instance)",
        "",
        "One gateway instance's view (gateway/view.py), 10 requests a second for an hour "
        "of virtual time to one warm pool, counted as above. With Firestore the kill "
        "switch comes by a listener (billed once per change); without one it is read at "
        "most once a second (shared by every pool of the instance). Priced at $0.03–0.06 "
        "per 100,000 reads (Firestore's price by location, "
        "https://cloud.google.com/firestore/pricing). The kill bound either way: 1 s.",
        "",
        markdown(rows, cols),
    ]


def section() -> str:
    with tempfile.TemporaryDirectory(prefix="yoyo-bench-") as tmp:
        rows = [run(name, Path(tmp)) for name in SCENARIOS]
        gateway = gateway_section(Path(tmp))
    for row in rows:
        row["free_tier"] = verdict(row)
        row["plane_only"] = verdict(
            {**row, "reads": row["plane_reads"], "writes": row["plane_writes"]}
        )
    cols = (
        ("scenario", "scenario (24 h)"),
        ("policy", "policy"),
        ("requests", "requests"),
        ("vm_hours", "VM-h"),
        ("invocations", "function invocations"),
        ("plane_reads", "reads: control plane"),
        ("agent_reads", "reads: agent"),
        ("plane_writes", "writes"),
        ("deletes", "TTL deletes"),
        ("plane_only", "control plane vs free tier"),
        ("free_tier", "with the agent"),
    )
    detail_cols = (("scenario", "scenario"), ("what", "what it is"), ("wall_s", "sim wall s"))
    ops = sorted({k for r in rows for k in r["breakdown"] if k.endswith(".calls")})
    breakdown = [
        {"scenario": r["scenario"], **{k[:-6]: r["breakdown"].get(k, 0) for k in ops}} for r in rows
    ]
    return "\n".join(
        [
            "### Store operations per day (default configuration)",
            "",
            "Reproduce: `make bench-store-ops` (= `.venv/bin/python bench/store_ops.py "
            "--write`). Counted by CountingStore over SqliteStore, priced as Firestore bills "
            "the FirestoreStore adapter's calls (sim/counting.py has the table). Free tier: "
            f"{FREE['reads']:,} reads, {FREE['writes']:,} writes, {FREE['deletes']:,} deletes "
            "per day.",
            "",
            markdown(rows, cols),
            "",
            markdown(rows, detail_cols),
            "",
            "Control-plane port calls per day:",
            "",
            markdown(
                breakdown,
                (
                    ("scenario", "scenario"),
                    *((k, k) for k in sorted({c for b in breakdown for c in b} - {"scenario"})),
                ),
            ),
            *gateway,
            "",
            f"_Generated {machine()}._",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    args = p.parse_args(argv)
    return report("store-ops", section(), args.write)


if __name__ == "__main__":
    sys.exit(main())
