"""Run one shard of a batch: every line once, results durable before the shard is done.

Invariants:
- A shard of a batch that is over (cancelled, or merged because it expired) runs
  nothing and is acknowledged.
- Resumable: the lines already covered by checkpoint objects are skipped, so a
  redelivered shard (a preempted VM, a lost ack) runs only what is missing; the merge
  keeps one record per line, so a chunk written twice duplicates nothing.
- A chunk's checkpoint is written only when every line of it has an answer; the shard's
  ``done`` marker only after its last checkpoint. The caller acknowledges after that.
- A line the server refuses (4xx) is a result (it goes to the error file), never retried;
  408/429, 5xx and connection errors are retried with backoff, then raise ServerUnavailable so the
  shard is redelivered later instead of writing a failure it did not earn.
- The batch's ``cancelled`` marker is checked every ``cancel_poll_s`` while lines run:
  after a cancel no new line starts; the lines already at the server finish, and every
  line answered but not yet checkpointed (the partial chunk) is checkpointed before the
  shard reports ``stopped`` (its marker): the finalize waits for that report, so a cancel
  keeps every answered line. A stop (SIGTERM) checkpoints the same way, then hands back.
- A shard's ``started`` marker is written before its first line runs (the finalize of a
  cancelled batch waits for the shards that have one).
- All of a shard's lines are queued at once, taken in order by ``concurrency`` threads,
  and the runner's slots bound what is in flight across shards, so the server stays full
  across chunk and shard boundaries; checkpoints are written in order.
- At most ``concurrency`` lines are in flight across every shard the runner runs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .. import jsonhttp as http
from ..batch import work
from ..domain import batch as model
from ..ports import Storage

# The server is busy (408, 429) or refuses the worker's own key (401, 403: a rotated
# secret), not the request wrong: retried, then the shard is handed back, never written off.
_RETRYABLE = frozenset({401, 403, 408, 429})
Post = Callable[[str, bytes], tuple[int, bytes]]  # (url, body) -> (status, body)


class ServerUnavailable(RuntimeError):
    """The inference server kept failing (5xx / unreachable): redeliver the shard later."""


@dataclass(frozen=True)
class ShardOutcome:
    status: str  # "done" | "cancelled" | "finished" (batch over) | "stopped" (shutting down)
    ran: int  # lines run by this call (0 when everything was checkpointed already)


def http_poster(api_key: str = "") -> Post:
    """POST JSON to the inference server, with its API key (vLLM's ``--api-key``) if any."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def post(url: str, body: bytes) -> tuple[int, bytes]:
        return http.request("POST", url, body, headers, timeout=600)

    return post


http_post = http_poster()


@dataclass
class ShardRunner:
    storage: Storage
    server_url: str  # e.g. http://127.0.0.1:8000
    concurrency: int = 8  # lines in flight, across every shard this runner runs at once
    chunk_lines: int = 25
    retries: int = 5
    backoff_s: float = 0.5
    cancel_poll_s: float = 0.25
    post: Post = http_post

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.concurrency)

    def cancelled(self, batch_id: str) -> bool:
        return self.storage.size(work.cancel_key(batch_id)) is not None

    def run(self, job: work.ShardWork, stop: threading.Event | None = None) -> ShardOutcome:
        stop = stop or threading.Event()
        if self.storage.size(work.done_key(job.batch_id, job.shard)) is not None:
            return ShardOutcome("done", 0)
        if self.storage.size(work.output_key(job.batch_id)) is not None:
            return ShardOutcome("finished", 0)  # merged already (expired): nothing to add
        if self.cancelled(job.batch_id):
            return ShardOutcome("cancelled", 0)
        data = self.storage.get(job.input, job.start, job.end)
        if data is None:
            raise LookupError(f"input {job.input} is gone")
        requests = model.lines_of_shard(data, job.as_shard)
        if self.storage.size(work.started_key(job.batch_id, job.shard)) is None:
            self.storage.put(work.started_key(job.batch_id, job.shard), b"")
        covered = self._covered(job)
        todo = [(n, r) for n, r in requests if n not in covered]
        chunks = [todo[i : i + self.chunk_lines] for i in range(0, len(todo), self.chunk_lines)]
        halt = threading.Event()
        ran = 0
        # A chunk is checkpointed once all its lines are answered, in order.
        # ``concurrency`` threads take the lines in order (the executor's queue is FIFO).
        with ThreadPoolExecutor(max_workers=max(1, min(len(todo), self.concurrency))) as pool:
            futures = [
                [pool.submit(self._run_slotted, job, n, r, halt, stop) for n, r in chunk]
                for chunk in chunks
            ]
            try:
                for index, (chunk, pending) in enumerate(zip(chunks, futures, strict=True)):
                    records = self._wait(job, pending, halt, stop)
                    if records is None:
                        halt.set()  # no line starts now; those at the server finish
                        rest = [f for later in futures[index:] for f in later]
                        ran += self._flush(job, rest)
                        if stop.is_set():
                            return ShardOutcome("stopped", ran)
                        self.storage.put(work.stopped_key(job.batch_id, job.shard), b"")
                        return ShardOutcome("cancelled", ran)
                    self._checkpoint(job, records)
                    ran += len(chunk)
            finally:
                halt.set()  # on any exit, lines not yet started never start
        self._mark_done(job)
        return ShardOutcome("done", ran)

    def _checkpoint(self, job: work.ShardWork, records: list[dict[str, Any]]) -> None:
        lines = [int(r["line"]) for r in records]
        key = work.checkpoint_key(job.batch_id, job.shard, min(lines), max(lines))
        self.storage.put(key, b"".join(json.dumps(r).encode() + b"\n" for r in records))

    def _flush(self, job: work.ShardWork, futures: list[Future[dict[str, Any] | None]]) -> int:
        """Checkpoint every line of ``futures`` that was answered (after the ones at the
        server finish); the number written. A line whose server failed is not written."""
        wait(futures)
        records = []
        for future in futures:
            if future.exception() is None and future.result() is not None:
                records.append(future.result())
        if records:
            self._checkpoint(job, [r for r in records if r is not None])
        return len(records)

    def _checkpoints(self, job: work.ShardWork) -> list[str]:
        keys = self.storage.list(work.shard_prefix(job.batch_id, job.shard))
        return [k for k in keys if work.checkpoint_range(k) is not None]

    def _covered(self, job: work.ShardWork) -> set[int]:
        covered: set[int] = set()
        for key in self._checkpoints(job):
            raw = self.storage.get(key) or b""
            covered.update(int(json.loads(line)["line"]) for line in raw.splitlines() if line)
        return covered

    def _mark_done(self, job: work.ShardWork) -> None:
        outcome: dict[int, bool] = {}
        for key in self._checkpoints(job):
            for line in (self.storage.get(key) or b"").splitlines():
                result = json.loads(line)
                outcome.setdefault(int(result["line"]), model.is_output(result["record"]))
        completed = sum(outcome.values())
        counts = {"completed": completed, "failed": len(outcome) - completed}
        self.storage.put(work.done_key(job.batch_id, job.shard), json.dumps(counts).encode())

    def _run_slotted(
        self,
        job: work.ShardWork,
        number: int,
        request: Mapping[str, Any],
        halt: threading.Event,
        stop: threading.Event,
    ) -> dict[str, Any] | None:
        while not self.slots.acquire(timeout=0.2):
            if halt.is_set() or stop.is_set():
                return None
        try:
            if halt.is_set() or stop.is_set():
                return None
            return self._run_line(job, number, request)
        finally:
            self.slots.release()

    def _wait(
        self,
        job: work.ShardWork,
        pending: list[Future[dict[str, Any] | None]],
        halt: threading.Event,
        stop: threading.Event,
    ) -> list[dict[str, Any]] | None:
        """The chunk's records once all are answered; None when cancelled or stopping."""
        checked = time.monotonic()
        while not all(f.done() for f in pending):
            time.sleep(0.01)
            if stop.is_set():
                return None
            if time.monotonic() - checked >= self.cancel_poll_s:
                checked = time.monotonic()
                if self.cancelled(job.batch_id):
                    return None
        records = [f.result() for f in pending]  # a line's ServerUnavailable raises here
        if halt.is_set() or any(r is None for r in records):
            return None
        return [r for r in records if r is not None]

    def _run_line(
        self, job: work.ShardWork, number: int, request: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = json.dumps(request["body"]).encode()
        url = self.server_url.rstrip("/") + str(request["url"])
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                status, raw = self.post(url, body)
            except OSError:
                status, raw = 0, b""
            if 200 <= status < 500 and status not in _RETRYABLE:
                try:
                    answer: Any = json.loads(raw) if raw else None
                except ValueError:
                    answer = {"error": {"message": raw.decode("utf-8", "replace")[:2000]}}
                request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{job.batch_id}/{number}").hex
                return model.result_record(
                    number, str(request["custom_id"]), request_id, status, answer
                )
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise ServerUnavailable(
            f"{url}: HTTP {status or 'unreachable'} after {self.retries + 1} tries"
        )
