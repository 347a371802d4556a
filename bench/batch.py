"""Batch benchmark: the worker's throughput against the server driven directly, and the
VM-seconds a 1,000-line batch costs on the local stack, cold start included.

``python bench/batch.py [--lines 1000] [--rounds 3] [--write]``

- **throughput ratio** (one process, one run): a simulated inference server (vLLM's
  API, ``max_num_seqs`` 8, 5 ms per token, 16 tokens per line) is driven (a) directly by
  a pool of ``concurrency`` client threads posting every line, and (b) by the real batch
  path: ``BatchService.submit`` → the local bus → ``yoyo_control.worker`` (same
  concurrency) → checkpoints in a local-directory Storage → ``done`` markers, timed from
  the submit to the last shard's ``done``. Rounds alternate (direct, worker, direct, …)
  so both see the same machine load; the ratio is worker lines/s ÷ direct lines/s per
  round. Goal ≥ 0.9×.
- **VM-seconds per 1,000 lines** (``yoyoctl local up``, its own stack): from a pool
  scaled to zero, ``yoyoctl batch submit`` of a 1,000-line file; measured from the VM
  turning RUNNING in the instance table (what Compute Engine bills) to TERMINATED, split
  into boot (RUNNING → the first checkpoint), work (→ the batch completed) and the idle
  tail (→ the VM gone: the pool's fixed 10 s keep-alive plus detection).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _results import machine, parser, report
from local_stack import Stack, free_port

from yoyo_control import names
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.batch import work
from yoyo_control.batch.controller import BatchController
from yoyo_control.batch.service import BatchService
from yoyo_control.config import DEFAULT_LOCAL, parse_config
from yoyo_control.local.bus import Broker, BusApp, LocalBusPublisher
from yoyo_control.local.inference import Engine, make_handler
from yoyo_control.worker.__main__ import Worker, WorkerConfig
from yoyo_control.worker.queue import WorkQueue
from yoyo_control.worker.shard import ShardRunner, http_post

POOL = "default"
SUBSCRIPTION = f"yoyo-{names.TOPIC_WORK}-sub-{POOL}"
MAX_NUM_SEQS = 8
TOKEN_LATENCY_S = 0.005
MAX_TOKENS = 16
CONCURRENCY = 8


def batch_file(n: int, max_tokens: int = MAX_TOKENS) -> bytes:
    lines = []
    for i in range(n):
        body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": max_tokens}
        head = {"custom_id": f"b-{i:05d}", "method": "POST", "url": "/v1/chat/completions"}
        lines.append(json.dumps({**head, "body": body}))
    return ("\n".join(lines) + "\n").encode()


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def inference_server() -> Iterator[str]:
    engine = Engine("bench", TOKEN_LATENCY_S, MAX_NUM_SEQS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(engine, 0.0))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def direct(server_url: str, data: bytes) -> float:
    """Lines/s posting every line straight to the server, CONCURRENCY at a time."""
    bodies = [json.dumps(json.loads(x)["body"]).encode() for x in data.splitlines()]
    url = server_url + "/v1/chat/completions"
    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses = list(pool.map(lambda b: http_post(url, b)[0], bodies))
    took = time.monotonic() - started
    assert statuses == [200] * len(bodies), "the direct run had failures"
    return len(bodies) / took


def through_worker(server_url: str, data: bytes, tmp: Path) -> float:
    """Lines/s from submit to the last shard's ``done``, through the real worker."""
    config = parse_config({**DEFAULT_LOCAL, "local": {"state_dir": str(tmp)}})
    broker = Broker(config.project)
    broker.create_subscription(
        SUBSCRIPTION, config.topic(names.TOPIC_WORK), None, f'attributes.pool = "{POOL}"', 60
    )
    storage = LocalStorage(tmp / "objects")
    store = SqliteStore(tmp / "yoyo.sqlite3")
    with served(BusApp(broker)) as bus_url:
        service = BatchService(
            store, storage, LocalBusPublisher(bus_url, config.project), _Clock(), config
        )
        worker_config = WorkerConfig(
            project=config.project,
            subscription=SUBSCRIPTION,
            server_url=server_url,
            pubsub_url=bus_url,
            storage_dir=str(storage.root),
            concurrency=CONCURRENCY,
        )
        runner = ShardRunner(storage, server_url, concurrency=CONCURRENCY)
        worker = Worker(worker_config, WorkQueue(bus_url, config.project, SUBSCRIPTION), runner)
        thread = threading.Thread(target=worker.serve, daemon=True)
        thread.start()
        try:
            started = time.monotonic()
            batch = service.submit(data, POOL)
            done_keys = {work.done_key(batch.id, s.index) for s in batch.shards}
            while not done_keys <= set(storage.list(work.shards_prefix(batch.id))):
                time.sleep(0.02)
            took = time.monotonic() - started
            BatchController(service, None).run([POOL])  # finalize (the batch controller)
            final = service.get(batch.id)
        finally:
            worker.stop.set()
            thread.join(30)
            store.close()
    assert final.request_counts.completed == len(data.splitlines()), final.request_counts
    return len(data.splitlines()) / took


class _Clock:
    def now(self) -> float:
        return time.time()


def throughput(lines: int, rounds: int) -> dict[str, Any]:
    data = batch_file(lines)
    ratios, direct_rates, worker_rates = [], [], []
    with inference_server() as url:
        direct(url, batch_file(50))  # warm both paths once
        for _ in range(rounds):
            d = direct(url, data)
            with tempfile.TemporaryDirectory(prefix="yoyo-bench-batch-") as tmp:
                w = through_worker(url, data, Path(tmp))
            direct_rates.append(d)
            worker_rates.append(w)
            ratios.append(w / d)
            print(f"direct {d:.1f} lines/s, worker {w:.1f} lines/s, ratio {w / d:.3f}")
    return {"ratios": ratios, "direct": direct_rates, "worker": worker_rates}


# --- VM-seconds on the local stack ----------------------------------------------------


def stack_config(state_dir: Path) -> dict[str, Any]:
    return {
        "backend": "local",
        "budget": {"budget_ids": ["local-budget"]},
        "local": {
            "state_dir": str(state_dir),
            "port": free_port(),
            "tick_interval_s": 2,
            "boot_delay_s": 3,  # the embedded default's model load
            "heartbeat_interval_s": 1,
            "token_latency_s": TOKEN_LATENCY_S,
        },
        "batch": {"concurrency": CONCURRENCY},
        "pools": {
            POOL: {
                "zone": "local",
                "instances": ["batch-0"],
                "hourly_price_usd": 0.35,
                "keepalive": "fixed",
                "idle_timeout_s": 10,
                "heartbeat_gap_s": 15,
                "boot_grace_s": 20,
            }
        },
    }


def vm_seconds(lines: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="yoyo-bench-batch-stack-") as tmp:
        s = Stack(Path(tmp), stack_config)
        try:
            path = Path(tmp) / "batch.jsonl"
            path.write_bytes(batch_file(lines))
            batch_id = s.yoyoctl("batch", "submit", str(path))["id"]
            running = s.wait(lambda: s.running(["batch-0"]), 120, "the VM to start")
            shards = s.state_dir / "objects" / "batches" / batch_id / "shards"
            first = s.wait(lambda: any(shards.rglob("*.jsonl")), 300, "a first checkpoint")
            store = SqliteStore(s.state_dir / "yoyo.sqlite3")
            done = s.wait(
                lambda: (b := store.get_batch(batch_id)) is not None and b.terminal,
                600,
                "the batch to finish (at a batch controller run)",
            )
            store.close()
            gone = s.wait(lambda: s.gone(["batch-0"]), 300, "the VM to stop")
        finally:
            s.stop()
    return {
        "boot": first - running,
        "work": done - first,
        "tail": gone - done,
        "total": gone - running,
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    t = throughput(args.lines, args.rounds)
    v = vm_seconds(args.lines)
    print(json.dumps({"throughput": t, "vm_seconds": v}, indent=2))
    per_k = 1000 / args.lines
    ratios = t["ratios"]
    body = "\n".join(
        [
            f"`python bench/batch.py --lines {args.lines} --rounds {args.rounds} --write` — "
            f"{machine()}.",
            "",
            f"Simulated server: max_num_seqs {MAX_NUM_SEQS}, {TOKEN_LATENCY_S * 1000:.0f} ms "
            f"per token, {MAX_TOKENS} tokens per line; {CONCURRENCY} lines in flight on both "
            "paths; shards of 100 lines, checkpoints of 25.",
            "",
            "| measure | result |",
            "| --- | --- |",
            f"| worker ÷ direct throughput, per round (goal ≥ 0.9×) | "
            f"{', '.join(f'{r:.3f}×' for r in ratios)} (median {statistics.median(ratios):.3f}×) |",
            f"| direct, lines/s per round | {', '.join(f'{x:.1f}' for x in t['direct'])} |",
            f"| worker, lines/s per round (submit → last shard done) | "
            f"{', '.join(f'{x:.1f}' for x in t['worker'])} |",
            f"| VM-seconds per 1,000 lines, local stack, cold start included | "
            f"**{v['total'] * per_k:.1f}** |",
            f"| … boot and model load (RUNNING → first checkpoint) | {v['boot']:.1f} s |",
            f"| … work (first checkpoint → completed, at a tick) | {v['work'] * per_k:.1f} s |",
            f"| … idle tail (completed → VM gone; fixed 10 s keep-alive) | {v['tail']:.1f} s |",
        ]
    )
    return report("batch", body, args.write)


if __name__ == "__main__":
    sys.exit(main())
