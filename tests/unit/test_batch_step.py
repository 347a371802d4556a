"""domain.batch.step: the batch controller's pure reconciler."""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.domain.batch import (
    Act,
    Batch,
    Progress,
    RequestCounts,
    Shard,
    Status,
    StepPolicy,
    pending_shards,
    retry,
    step,
)

POLICY = StepPolicy(cancel_grace_s=120, republish_after_s=900, max_republish=2)
SHARDS = tuple(Shard(i, i * 10 + 1, i * 10 + 10, i * 100, i * 100 + 100) for i in range(3))


def batch(**changes: object) -> Batch:
    base = Batch(
        "batch_" + "a" * 32, "gpu", "/v1/chat/completions", "in", 0.0, 86400.0,
        status=Status.IN_PROGRESS, shards=SHARDS, request_counts=RequestCounts(30),
        in_progress_at=0.0, progress_at=0.0,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_validating_batch_publishes_its_shards_and_starts() -> None:
    b, acts, _ = step(batch(status=Status.VALIDATING), Progress(), 5.0, POLICY)
    assert b.status is Status.IN_PROGRESS and acts == (Act.PUBLISH,)


def test_progress_moves_the_progress_time_and_counts() -> None:
    b, acts, _ = step(batch(), Progress(done=1, completed=9, failed=1, moved=2), 60.0, POLICY)
    assert (b.progress_at, b.moved, b.request_counts.completed) == (60.0, 2, 9) and acts == ()
    assert pending_shards(b, 1) == 2


def test_every_shard_done_finalizes() -> None:
    b, acts, _ = step(batch(), Progress(done=3, moved=6), 60.0, POLICY)
    assert b.status is Status.FINALIZING and acts == (Act.FINALIZE,)


def test_no_progress_republishes_with_backoff_then_fails_saying_why() -> None:
    b = batch()
    b, acts, after = step(b, Progress(), 899.0, POLICY)
    assert acts == () and after == 1.0
    b, acts, _ = step(b, Progress(), 900.0, POLICY)
    assert acts == (Act.REPUBLISH,) and b.republished == 1
    b, acts, _ = step(b, Progress(), 1799.0, POLICY)  # now it waits twice as long
    assert acts == ()
    b, acts, _ = step(b, Progress(), 1800.0, POLICY)
    assert acts == (Act.REPUBLISH,) and b.republished == 2
    b, acts, _ = step(b, Progress(), 3600.0, POLICY)
    assert b.status is Status.FAILED and "no shard moved" in b.errors[0] and acts == ()


def test_a_waiting_pool_neither_republishes_nor_fails_the_batch() -> None:
    b, acts, _ = step(batch(), Progress(waiting="stopped by ops"), 10_000.0, POLICY)
    assert b.status is Status.IN_PROGRESS and acts == () and b.waiting == "stopped by ops"


def test_a_cancel_waits_for_running_shards_to_report_or_the_grace() -> None:
    b = batch(status=Status.CANCELLING, cancelling_at=100.0)
    running = Progress(started=2, done=0, stopped=1)
    assert step(b, running, 150.0, POLICY)[1] == ()
    assert step(b, replace(running, stopped=2), 150.0, POLICY)[1] == (Act.FINALIZE,)
    assert step(b, running, 220.0, POLICY)[1] == (Act.FINALIZE,)


def test_a_cancelling_batch_asks_for_no_vm_and_retry_only_moves_a_pending_one() -> None:
    assert pending_shards(batch(status=Status.CANCELLING), 0) == 0
    assert retry(batch(), 50.0).retry_at == 50.0
    done = batch(status=Status.COMPLETED)
    assert retry(done, 50.0) == done
