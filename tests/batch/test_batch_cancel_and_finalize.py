"""Cancel keeps what ran; finalize streams (issue 23 regression tests).

Before: the worker dropped its partial chunk on cancel and the finalize ran at once, so
lines the model had answered were written as ``batch_cancelled``; the finalize read the
input, every checkpoint and built both outputs in memory.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from batch_bench import POOL, Bench, jsonl, request_line
from polling import eventually
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.domain.batch import Status
from yoyo_control.worker.shard import http_post


def records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def test_cancel_keeps_every_line_the_model_answered(bench_factory: Any) -> None:
    bench: Bench = bench_factory(token_latency_s=0.02, max_num_seqs=4)
    batch = bench.service.submit(jsonl([request_line(i) for i in range(300)]), POOL)
    answered: set[str] = set()
    lock = threading.Lock()

    def recording(url: str, body: bytes) -> tuple[int, bytes]:
        status, raw = http_post(url, body)
        if status == 200:
            question = json.loads(body)["messages"][0]["content"]
            with lock:
                answered.add("req-" + question.split()[-1])
        return status, raw

    bench.worker(concurrency=4, chunk_lines=25, post=recording)
    eventually(lambda: len(answered) >= 40, "40 answered lines", 30)
    bench.service.cancel(batch.id)
    done = bench.wait_terminal(batch.id)
    assert done.status is Status.CANCELLED
    output, errors = bench.service.results(batch.id)
    out = {r["custom_id"] for r in records(output)}
    with lock:
        lost = answered - out
    assert not lost, f"{len(lost)} answered lines written off as cancelled: {sorted(lost)[:5]}"
    cancelled = [r for r in records(errors) if r["error"]["code"] == "batch_cancelled"]
    assert len(out) + len(cancelled) == 300


class MeteredStorage(LocalStorage):
    """LocalStorage that remembers the largest piece of an object read in one call."""

    largest_read = 0

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes | None:
        data = super().get(key, start, end)
        self.largest_read = max(self.largest_read, len(data or b""))
        return data


def test_finalize_reads_no_object_whole(bench_factory: Any) -> None:
    """Structural check of the bounded-memory finalize (bench/batch_finalize.py measures
    peak RSS): input, checkpoints and outputs pass in pieces of at most 1 MiB."""
    bench: Bench = bench_factory(max_file_bytes=64 * 1024 * 1024, max_lines=50_000)
    big = "x" * 1000
    lines = [request_line(i, max_tokens=1, user=big) for i in range(3000)]  # ~3.3 MB
    batch = bench.service.submit(jsonl(lines), POOL)
    metered = MeteredStorage(bench.storage.root)
    bench.service.storage = metered
    bench.service.cancel(batch.id)  # nothing ran: every line is written by the finalize
    done = bench.wait_terminal(batch.id)
    assert done.status is Status.CANCELLED and done.request_counts.failed == 3000
    assert metered.largest_read <= 1024 * 1024
