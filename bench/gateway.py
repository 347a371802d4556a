"""Gateway benchmark on `yoyoctl local up`: warm overhead, release delay, a cold burst.

``python bench/gateway.py [--warm 300] [--colds 10] [--burst 1000] [--streams 200]
[--write]`` starts its own stack (own state dir and port, own session; every process
stopped at the end).

- **warm overhead**: the same completion (4 simulated tokens) sent alternately through
  the gateway and straight to the VM's inference server (with its key), one at a time:
  latency p50/p99 through ÷ direct. Then ``THREADS`` clients in parallel for the same
  number of requests each way: throughput through ÷ direct. One HTTP client (urllib3,
  pooled connections) for both, so only the gateway differs.
- **release delay**: the pool is stopped; one request arrives at the cold pool; measured
  from the VM's first ready heartbeat as the control plane stored it (``ready_since``) to
  the request forwarded, read from the cold start's event (its phases).
- **cold burst**: the pool is stopped; ``--burst`` requests (1,000) arrive at once at
  the one gateway instance: how many wakes (lease grants to "wake" and start actions),
  answers, requests lost, and how much the stack process (the gateway's) grew in threads
  and memory at its peak (/proc, every 50 ms).
- **streams**: ``--streams`` (200) concurrent streamed completions on the warm pool: how
  many end with ``[DONE]``.

All figures are wall clock on a loaded two-core machine, measured in one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import urllib3
from _results import machine, parser, report
from local_stack import Stack, free_port, stack, summarise

from yoyo_control.gateway.auth import LOCAL_KEY_FILE, VLLM_KEY_FILE
from yoyo_control.sim.engine import percentile
from yoyo_control.sim.report import markdown

POOL, MODEL, VM = "chat", "bench-model", "chat-0"
THREADS = 8
BODY = {"model": MODEL, "prompt": "bench", "max_tokens": 4}


def config(state_dir: Path) -> dict[str, Any]:
    return {
        "backend": "local",
        "budget": {"budget_ids": ["local-budget"]},
        "gateway": {"poll_s": 0.25, "hold_s": 180, "concurrency": 1000, "max_held": 1000},
        "local": {
            "state_dir": str(state_dir),
            "port": free_port(),
            "tick_interval_s": 2,
            "boot_delay_s": 1,
            "heartbeat_interval_s": 1,
            "token_latency_s": 0.005,
        },
        "pools": {
            POOL: {
                "zone": "local",
                "instances": [VM],
                "model": MODEL,
                "keepalive": "fixed",
                "idle_timeout_s": 600,
                "heartbeat_gap_s": 15,
                "boot_grace_s": 20,
                "lease_s": 120,
                "action_retry_s": 10,
                "restart_backoff_s": 5,
            }
        },
    }


class Client:
    def __init__(self, s: Stack) -> None:
        runtime = json.loads((s.state_dir / "local-up.json").read_text())
        self.gateway = f"{runtime['url']}/v1"
        key = (s.state_dir / LOCAL_KEY_FILE).read_text().strip()
        vllm = (s.state_dir / VLLM_KEY_FILE).read_text().strip()
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.vm_headers = {"Authorization": f"Bearer {vllm}", "Content-Type": "application/json"}
        self.http = urllib3.PoolManager(maxsize=2 * THREADS + 200, retries=False)
        self.s = s

    def vm_url(self) -> str:
        row = self.s.table.row(VM)
        assert row is not None and row.endpoint, "the VM has no endpoint"
        return f"{row.endpoint}/v1"

    def complete(self, base: str, headers: dict[str, str], timeout: float = 30) -> float:
        began = time.perf_counter()
        r = self.http.request(
            "POST", f"{base}/completions", body=json.dumps(BODY), headers=headers, timeout=timeout
        )
        assert r.status == 200, (r.status, r.data[:300])
        assert json.loads(r.data)["choices"], r.data[:300]
        return time.perf_counter() - began


def warm(s: Stack, c: Client, n: int) -> dict[str, Any]:
    c.complete(c.gateway, c.headers, timeout=120)  # wake the pool, then it stays warm
    vm = c.vm_url()
    through, direct = [], []
    for _ in range(20):  # warm both paths' connections
        c.complete(c.gateway, c.headers)
        c.complete(vm, c.vm_headers)
    for _ in range(n):
        through.append(c.complete(c.gateway, c.headers))
        direct.append(c.complete(vm, c.vm_headers))

    def rate(base: str, headers: dict[str, str]) -> float:
        began = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda _: c.complete(base, headers), range(n)))
        return n / (time.perf_counter() - began)

    rates = {"through": [], "direct": []}  # type: dict[str, list[float]]
    for _ in range(2):  # alternate, so drift of the machine's load hits both
        rates["through"].append(rate(c.gateway, c.headers))
        rates["direct"].append(rate(vm, c.vm_headers))
    return {
        "through": through,
        "direct": direct,
        "rate_through": sum(rates["through"]) / 2,
        "rate_direct": sum(rates["direct"]) / 2,
    }


def stop_pool(s: Stack) -> None:
    s.yoyoctl("stop", "--pool", POOL, "--reason", "bench")
    s.wait(lambda: s.gone([VM]), 60, "the pool to be stopped")


def cold_events(s: Stack) -> list[Any]:
    return [e for e in s.store.events(pool=POOL, limit=5000) if e.kind == "cold-start"]


def release(s: Stack, c: Client, colds: int) -> list[float]:
    delays = []
    for _ in range(colds):
        stop_pool(s)
        seen = len(cold_events(s))
        c.complete(c.gateway, c.headers, timeout=120)
        s.wait(lambda: len(cold_events(s)) > seen, 10, "the cold-start event")  # noqa: B023
        phases = cold_events(s)[-1].data["phases"]
        delays.append(phases["forwarded_at"] - phases["ready_at"])
    return delays


def stack_pid(s: Stack) -> int:
    return int(json.loads((s.state_dir / "local-up.json").read_text())["pid"])


def proc_status(pid: int) -> dict[str, int]:
    """The stack process's threads and resident memory (KiB), from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


class Sampler:
    """The peak of the stack process's threads and RSS while a phase runs (every 50 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.before = pid, proc_status(pid)
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = proc_status(self.pid)
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(5)
        return {k: self.peak[k] - self.before[k] for k in self.before}


async def _burst_clients(c: Client, n: int, stream: bool) -> tuple[int, list[str]]:
    """``n`` requests at once (async: the bench's own threads stay few); answers, failures."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    body = {**BODY, "stream": stream}
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=180, limits=limits, trust_env=False) as http:

        async def one() -> bool:
            try:
                if not stream:
                    r = await http.post(f"{c.gateway}/completions", json=body, headers=c.headers)
                    assert r.status_code == 200, (r.status_code, r.text[:200])
                    return bool(r.json()["choices"])
                async with http.stream(
                    "POST", f"{c.gateway}/completions", json=body, headers=c.headers
                ) as r:
                    assert r.status_code == 200, r.status_code
                    text = b"".join([chunk async for chunk in r.aiter_bytes()])
                    return text.rstrip().endswith(b"data: [DONE]")
            except Exception as exc:  # counted, not raised: every request is accounted for
                failures.append(repr(exc)[:200])
                return False

        done = await asyncio.gather(*(one() for _ in range(n)))
    return sum(done), failures


def burst(s: Stack, c: Client, n: int) -> dict[str, int]:
    stop_pool(s)
    since = time.time()
    sampler = Sampler(stack_pid(s))
    answers, failures = asyncio.run(_burst_clients(c, n, stream=False))
    grown = sampler.stop()
    events = s.store.events(pool=POOL, since=since, limit=5000)
    grants = sum("granted to wake" in e.reason for e in events if e.kind == "decision")
    starts = sum(
        1
        for e in events
        if e.kind == "decision"
        for a in e.data.get("actions", [])
        if a["kind"] == "start"
    )
    if failures:
        print("failures:", failures[:5], file=sys.stderr)
    return {
        "sent": n,
        "answered": answers,
        "lost": n - answers,
        "grants": grants,
        "starts": starts,
        "threads": grown["Threads"],
        "rss_mib": grown["VmRSS"] // 1024,
    }


def streams(s: Stack, c: Client, n: int) -> dict[str, int]:
    """``n`` concurrent streams on the warm pool: how many end with ``[DONE]``."""
    c.complete(c.gateway, c.headers, timeout=120)  # warm
    sampler = Sampler(stack_pid(s))
    completed, failures = asyncio.run(_burst_clients(c, n, stream=True))
    grown = sampler.stop()
    if failures:
        print("stream failures:", failures[:5], file=sys.stderr)
    return {"sent": n, "completed": completed, "threads": grown["Threads"]}


def section(n_warm: int, colds: int, n_burst: int, n_streams: int) -> str:
    load_before = os.getloadavg()[0]
    with stack(config) as s:
        c = Client(s)
        w = warm(s, c, n_warm)
        delays = release(s, c, colds)
        b = burst(s, c, n_burst) if n_burst > 0 else None
        st = streams(s, c, n_streams) if n_streams > 0 else None
    load_after = os.getloadavg()[0]
    p50 = percentile(w["through"], 50) / percentile(w["direct"], 50)
    p99 = percentile(w["through"], 99) / percentile(w["direct"], 99)
    tput = w["rate_through"] / w["rate_direct"]
    ms = [x * 1000 for x in w["through"]], [x * 1000 for x in w["direct"]]
    rows = [
        summarise("latency through the gateway (ms)", ms[0]),
        summarise("latency straight to the VM (ms)", ms[1]),
    ]
    if delays:
        goal = f"p99 < 1 s: {'met' if percentile(delays, 99) < 1 else '**not met**'}"
        rows.append(summarise("release delay: VM ready → held request forwarded (s)", delays, goal))
    cols = (
        ("measure", "measure"),
        ("n", "n"),
        ("min", "min"),
        ("p50", "p50"),
        ("p99", "p99"),
        ("max", "max"),
        ("goal", "goal"),
    )
    ratios = [
        {
            "ratio": "latency p50, gateway ÷ direct",
            "value": p50,
            "goal": _goal(p50 <= 1.10, "≤ 1.10"),
        },
        {"ratio": "latency p99, gateway ÷ direct", "value": p99, "goal": ""},
        {
            "ratio": f"throughput ({THREADS} clients), gateway ÷ direct "
            f"({w['rate_through']:.1f} ÷ {w['rate_direct']:.1f} req/s)",
            "value": tput,
            "goal": _goal(tput >= 0.9, "≥ 0.9"),
        },
    ]
    burst_line = "(no cold burst in this run: --burst 0)"
    if b is not None:
        one_wake = b["grants"] == 1 and b["starts"] == 1 and b["lost"] == 0
        small = b["threads"] <= 50 and b["rss_mib"] <= 256
        burst_line = (
            f"{b['sent']} concurrent requests at a cold pool, held by one gateway instance → "
            f"{b['grants']} lease grant(s) to the wake, {b['starts']} start action(s), "
            f"{b['answered']} answers, {b['lost']} lost "
            f"(goal: exactly one wake, none lost: {'met' if one_wake else '**not met**'}); "
            f"the stack process grew by {b['threads']} threads and {b['rss_mib']} MiB at "
            f"its peak (goal ≤ 50 threads, ≤ 256 MiB: {'met' if small else '**not met**'})."
        )
    if st is not None:
        burst_line += (
            f"\n\nThen {st['sent']} concurrent streams on the warm pool → {st['completed']} "
            f"ended with `[DONE]` (goal: all: "
            f"{'met' if st['completed'] == st['sent'] else '**not met**'}; "
            f"+{st['threads']} threads at the peak)."
        )
    return "\n".join(
        [
            "### Gateway: warm overhead, release delay, cold burst (`yoyoctl local up`)",
            "",
            "Reproduce: `make bench-gateway` (= `.venv/bin/python bench/gateway.py "
            f"--warm {n_warm} --colds {colds} --burst {n_burst} --streams {n_streams} --write`). "
            "The gateway is async (uvicorn, as functions-framework serves it). One pool, one local "
            "VM (simulated inference, 4 tokens of 5 ms, at most 4 sequences at once); "
            "latencies alternate gateway/direct request by request; store poll while held "
            "≤ 0.25 s (the local default). Everything runs in the stack's one process "
            "beside the bus, scheduler and functions, on a loaded two-core machine.",
            "",
            markdown(ratios, (("ratio", "ratio"), ("value", "measured"), ("goal", "goal"))),
            "",
            markdown(rows, cols),
            "",
            burst_line,
            "",
            f"_Generated {machine()}; 1-minute load average {load_before:.1f} before the run, "
            f"{load_after:.1f} after ({os.cpu_count()} CPUs)._",
        ]
    )


def _goal(met: bool, goal: str) -> str:
    return f"{goal}: {'met' if met else '**not met**'}"


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--warm", type=int, default=300)
    p.add_argument("--colds", type=int, default=10)
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--streams", type=int, default=200)
    args = p.parse_args(argv)
    text = section(args.warm, args.colds, args.burst, args.streams)
    return report("gateway", text, args.write)


if __name__ == "__main__":
    sys.exit(main())
