"""Batch service + worker on the local bus and the simulated server: results exactly once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from batch_bench import POOL, SUBSCRIPTION, Bench, jsonl, request_line
from polling import eventually
from yoyo_control.batch import work
from yoyo_control.domain.batch import BatchInputError, Status
from yoyo_control.worker.shard import ServerUnavailable, http_post


def records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def test_a_batch_runs_every_line_once_and_4xx_lines_go_to_the_error_file(bench: Bench) -> None:
    lines = [request_line(i) for i in range(120)]
    lines[7] = json.dumps(
        {
            "custom_id": "req-7",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": []},
        }
    )  # fmt: skip  (the server answers 400: an empty conversation)
    batch = bench.service.submit(jsonl(lines), POOL)
    assert batch.status is Status.IN_PROGRESS and len(batch.shards) == 3
    assert bench.broker.backlog(SUBSCRIPTION) == 3  # one reference per shard, no payloads
    bench.worker()
    done = bench.wait_terminal(batch.id)
    assert done.status is Status.COMPLETED
    assert (done.request_counts.total, done.request_counts.completed) == (120, 119)
    output, errors = bench.service.results(batch.id)
    out, err = records(output), records(errors)
    assert sorted(r["custom_id"] for r in out + err) == sorted(f"req-{i}" for i in range(120))
    assert [r["custom_id"] for r in err] == ["req-7"]
    assert err[0]["response"]["status_code"] == 400 and err[0]["error"] is None
    assert out[0]["response"]["status_code"] == 200
    assert out[0]["response"]["body"]["object"] == "chat.completion"
    assert bench.engine.succeeded["stop"] + bench.engine.succeeded["length"] == 119


def test_a_redelivered_shard_resumes_from_its_checkpoints(bench: Bench) -> None:
    """The server dies after 23 answers: the shard goes back; the rerun runs only the rest."""
    batch = bench.service.submit(jsonl([request_line(i) for i in range(50)]), POOL)
    calls: list[str] = []

    def flaky(url: str, body: bytes) -> tuple[int, bytes]:
        calls.append(url)
        if len(calls) > 23:
            raise OSError("connection refused")
        return http_post(url, body)

    bench.worker(concurrency=1, chunk_lines=10, post=flaky, retries=0)
    shard = bench.service.store.get_batch(batch.id).shards[0]

    def checkpoints() -> list[str]:
        keys = bench.storage.list(work.shard_prefix(batch.id, 0))
        return [k for k in keys if work.checkpoint_range(k)]

    eventually(lambda: len(checkpoints()) >= 2, "checkpoints", 20)
    bench.stop_workers()
    assert bench.storage.size(work.done_key(batch.id, 0)) is None
    ranges = [r for r in map(work.checkpoint_range, checkpoints()) if r is not None]
    checkpointed = sum(last - first + 1 for first, last in ranges)
    # 20: the failure was seen first (the partial chunk's 3 answers are lost); 23: the
    # stop came first, and a stop checkpoints every answered line before handing back.
    assert checkpointed in (20, 23) and shard.last_line == 50

    served_before = sum(bench.engine.succeeded.values())
    bench.worker()
    done = bench.wait_terminal(batch.id)
    assert done.request_counts.completed == 50
    # Only the lines without a checkpoint ran again.
    assert sum(bench.engine.succeeded.values()) - served_before == 50 - checkpointed
    ids = [r["custom_id"] for r in records(bench.service.results(batch.id)[0])]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(50))


def test_cancel_stops_the_worker_and_accounts_for_every_line(bench_factory: Any) -> None:
    bench = bench_factory(token_latency_s=0.05, max_num_seqs=2)
    batch = bench.service.submit(jsonl([request_line(i) for i in range(200)]), POOL)
    bench.worker(concurrency=2, chunk_lines=5)
    eventually(lambda: bench.storage.list(work.shards_prefix(batch.id)), "a shard's checkpoint", 20)
    assert bench.service.cancel(batch.id).status is Status.CANCELLING
    cancelled = bench.wait_terminal(batch.id)
    assert cancelled.status is Status.CANCELLED
    time.sleep(1.0)  # one heartbeat interval of the local stack
    settled = sum(bench.engine.succeeded.values())
    time.sleep(1.0)
    assert sum(bench.engine.succeeded.values()) == settled  # nothing started after it
    assert settled < 200
    counts = cancelled.request_counts
    assert counts.total == 200 and counts.completed + counts.failed == 200
    output, errors = bench.service.results(batch.id)
    err = records(errors)
    assert {r["error"]["code"] for r in err} == {"batch_cancelled"}
    assert len(records(output)) + len(err) == 200


def test_the_completion_window_expires_what_did_not_run(bench: Bench) -> None:
    batch = bench.service.submit(jsonl([request_line(i) for i in range(10)]), POOL)
    bench.clock.offset = 86400 + 1  # no worker ran; a day passed
    expired = bench.wait_terminal(batch.id)
    assert expired.status is Status.EXPIRED
    err = records(bench.service.results(batch.id)[1])
    assert [r["error"]["code"] for r in err] == ["batch_expired"] * 10
    # Its shards still queued are acknowledged without running a line.
    bench.worker()
    eventually(lambda: not bench.broker.backlog(SUBSCRIPTION), "an empty backlog", 10)
    assert sum(bench.engine.succeeded.values()) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jsonl([request_line(0), "{oops"]), "line 2: not valid JSON"),
        (jsonl([request_line(0, url="/v1/images/generations")]), "line 1: url"),
        (jsonl([request_line(i) for i in range(30)]), "the limit is 2000"),
    ],
)
def test_a_bad_file_is_a_clear_error_and_nothing_is_submitted(
    bench_factory: Any, data: bytes, message: str
) -> None:
    bench = bench_factory(max_file_bytes=2000)
    with pytest.raises(BatchInputError, match=message):
        bench.service.submit(data, POOL)
    assert bench.service.list() == []
    assert bench.storage.list("") == []
    assert bench.broker.backlog(SUBSCRIPTION) == 0


def test_a_foreign_work_message_is_acknowledged_and_logged(bench: Bench, capsys: Any) -> None:
    bench.broker.publish("yoyo-work", b'{"prompt": "old style"}', {"pool": POOL})
    bench.worker()
    eventually(lambda: not bench.broker.backlog(SUBSCRIPTION), "an empty backlog", 10)
    assert "refused: not a batch_shard v1 message; acknowledged" in capsys.readouterr().out


def test_pending_shards_are_the_pools_demand_until_the_batch_completes(bench: Bench) -> None:
    """Demand counts shards, the unit one VM works on, not lines: a batch of N shards asks
    for N instances at most (queue_threshold 1), however many lines it has."""
    batch = bench.service.submit(jsonl([request_line(i) for i in range(100)]), POOL)
    (run,) = bench.controller.run([POOL])
    assert len(batch.shards) == 2 and run.shards == 2
    bench.worker()
    bench.wait_terminal(batch.id)
    assert bench.controller.run([POOL])[0].shards == 0


def test_the_server_failing_hands_the_shard_back(bench: Bench) -> None:
    def down(url: str, body: bytes) -> tuple[int, bytes]:
        return 503, b"{}"

    batch = bench.service.submit(jsonl([request_line(i) for i in range(5)]), POOL)
    worker = bench.worker(post=down, retries=1, backoff_s=0.01)
    with pytest.raises(ServerUnavailable):
        worker.runner.run(work.decode_shard(*work.encode_shard(_job(bench, batch.id))))
    keys = bench.storage.list(work.shards_prefix(batch.id))
    assert [k for k in keys if not k.endswith("/started")] == []  # no line written off


@pytest.mark.parametrize("status", [401, 403])
def test_a_server_refusing_the_workers_key_hands_the_shard_back(bench: Bench, status: int) -> None:
    """401/403 say the worker's key is wrong (a rotated vLLM secret), not the request:
    no line is written off as the model's answer; the shard goes back to the queue."""

    def refused(url: str, body: bytes) -> tuple[int, bytes]:
        return status, b'{"error": "Unauthorized"}'

    batch = bench.service.submit(jsonl([request_line(i) for i in range(5)]), POOL)
    worker = bench.worker(post=refused, retries=1, backoff_s=0.01)
    with pytest.raises(ServerUnavailable):
        worker.runner.run(work.decode_shard(*work.encode_shard(_job(bench, batch.id))))
    keys = bench.storage.list(work.shards_prefix(batch.id))
    assert [k for k in keys if not k.endswith("/started")] == []  # no line written off


def _job(bench: Bench, batch_id: str) -> work.ShardWork:
    b = bench.service.store.get_batch(batch_id)
    s = b.shards[0]
    return work.ShardWork(
        b.id, b.pool, b.endpoint, b.input_key, 0, s.first_line, s.last_line, s.start, s.end
    )


def test_the_worker_sends_the_local_stacks_secret_when_it_has_one(tmp_path: Any) -> None:
    from yoyo_control.local.guard import HEADER
    from yoyo_control.worker.__main__ import WorkerConfig, build

    secret = tmp_path / "stack-secret"
    secret.write_text("s3cret\n")
    config = WorkerConfig(
        project="p", subscription="s", pubsub_url="http://127.0.0.1:9", storage_dir=str(tmp_path),
        bus_secret_file=str(secret),
    )  # fmt: skip
    assert build(config).queue.headers == {HEADER: "s3cret"}
    without = WorkerConfig(project="p", subscription="s", pubsub_url="http://x", storage_dir="d")
    assert build(without).queue.headers == {}


def test_the_worker_long_polls_without_return_immediately(monkeypatch: Any) -> None:
    """Pub/Sub deprecates returnImmediately (it "adversely impacts the performance of Pull
    operations"); a pull that outlasts the worker's own bound got nothing."""
    from yoyo_control import jsonhttp
    from yoyo_control.worker.queue import WorkQueue

    sent: list[tuple[dict[str, Any], float]] = []

    def fake(method: str, url: str, body: bytes, headers: Any, timeout: float) -> Any:
        sent.append((json.loads(body), timeout))
        if len(sent) == 2:
            raise TimeoutError("the long poll outlasted its bound")
        return 200, b"{}"

    monkeypatch.setattr(jsonhttp, "request", fake)
    queue = WorkQueue("http://127.0.0.1:9", "p", "s", pull_timeout_s=25.0)
    assert queue.pull(1) == [] and queue.pull(1) == []
    assert sent[0] == ({"maxMessages": 1}, 25.0)


def test_a_named_pool_must_serve_the_lines_model(bench: Bench) -> None:
    """Issue 23: `yoyoctl batch submit` woke a pool that does not serve the lines' model."""
    lines = [request_line(0), request_line(1, model="other/model")]
    with pytest.raises(BatchInputError, match="line 2: model 'other/model' is not served"):
        bench.service.submit(jsonl(lines), POOL)
    assert bench.service.list() == [] and bench.broker.backlog(SUBSCRIPTION) == 0
