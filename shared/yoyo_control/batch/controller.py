"""The batch controller: one reconciler per kind (batches), beside the lifecycle one.

Shape: ``run`` looks at every pending batch of a pool (or of every pool): reads what
Storage shows of its shards (``progress``: ONE listing plus the small done markers),
calls the pure ``domain.batch.step`` and carries out its actions (publish, republish,
finalize), then tells the lifecycle the pool's batch demand as a fact
(BatchDemandObserved → ``PoolState.batch``) — the only way batch work reaches a pool.

Invariants:
- It never runs inside the lifecycle tick, and the tick never reads a batch: a batch
  that is slow or broken to read (its objects are written by VMs) delays only this
  controller, never a stop path. It runs on its own schedule and topic (names.TOPIC_BATCH,
  functions/main.py ``on_batch``; terraform/batch.tf gives it its own memory).
- One batch's failure (an unreadable marker, a store error) is logged and skips that
  batch only; its pool's demand keeps the last count the lifecycle has (it goes stale
  after a lease's length and stops counting).
- Demand is counted in shards (VMs' worth of work) of batches validating or in progress;
  a cancelled, expired or finalizing batch asks for no VM (its unpulled shards are
  acknowledged by the worker without running, when a VM runs for other work).
- The fact is posted only when the count, the progress time or the retry time changed,
  or the lifecycle's copy is a third of a lease old (it must stay fresh to count).
- The finalize streams (batch/finalize.py); the record turns terminal only after both
  result files are whole.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .. import logs
from ..domain import batch as model
from ..domain.batch import Act, Batch, Progress, StepPolicy
from ..domain.facts import BatchDemandObserved, Fact
from . import finalize, work
from .service import BatchService


@dataclass(frozen=True)
class PoolRun:
    """What one run did for one pool."""

    pool: str
    shards: int
    batches: tuple[str, ...] = ()
    posted: bool = False
    requeue_after: float | None = None


class BatchController:
    def __init__(
        self,
        batches: BatchService,
        post: Callable[[Fact], Any] | None,
        policy: StepPolicy | None = None,
    ) -> None:
        self.batches = batches
        self.post = post  # the lifecycle service's handle (None: no lifecycle, tests)
        b = batches.config.batch
        self.policy = policy or StepPolicy(b.cancel_grace_s, b.republish_after_s, b.max_republish)

    @property
    def storage(self) -> Any:
        return self.batches.storage

    def run(self, pools: Iterable[str] | None = None, run_id: str = "") -> list[PoolRun]:
        run_id = run_id or uuid.uuid4().hex
        done = []
        for pool in pools if pools is not None else self.batches.config.pools:
            if pool in self.batches.config.pools:
                done.append(self.reconcile_pool(pool, run_id))
        return done

    def reconcile_pool(self, pool: str, run_id: str) -> PoolRun:
        store = self.batches.store
        state = store.get_pool(pool)
        waiting = state.batch.waiting
        shards, progress_at, retry_at, requeue = 0, None, None, None
        ids = []
        for batch in store.list_batches(pool=pool, pending=True):
            try:
                batch, pending, after = self.reconcile(batch, waiting)
            except Exception as exc:  # this batch only: the others (and the pool) go on
                logs.error(
                    f"batch {batch.id} not reconciled: {type(exc).__name__}: {exc}", pool=pool
                )
                pending, after = model.pending_shards(batch, 0), None
            ids.append(batch.id)
            shards += pending
            if pending:
                progress_at = max(progress_at or 0.0, batch.progress_at or 0.0) or None
                retry_at = max(retry_at or 0.0, batch.asked_at)
            if after is not None:
                requeue = after if requeue is None else min(requeue, after)
        known = state.batch
        policy = self.batches.config.policy(pool)
        now = self.batches.clock.now()
        stale = known.updated_at is None or now - known.updated_at >= policy.lease_s / 3
        changed = (
            known.shards != shards
            or (progress_at is not None and progress_at != known.progress_at)
            or (retry_at is not None and retry_at != known.retry_at)
        )
        posted = False
        if self.post is not None and (changed or (shards and stale)):
            fact = BatchDemandObserved(
                f"{run_id}:{pool}", now, pool, shards, progress_at, retry_at, origin="batch"
            )
            self.post(fact)
            posted = True
        return PoolRun(pool, shards, tuple(ids), posted, requeue)

    def reconcile(self, batch: Batch, waiting: str) -> tuple[Batch, int, float | None]:
        """One batch: (its record after the step, the shards it asks for, when to look
        again)."""
        progress = self.progress(batch, waiting)
        now = self.batches.clock.now()
        stepped, actions, after = model.step(batch, progress, now, self.policy)
        for act in actions:
            if act is Act.PUBLISH:
                self.batches.publish_shards(batch)
            elif act is Act.REPUBLISH:
                pending = {s.index for s in batch.shards} - self._done(batch)
                self.batches.publish_shards(batch, pending)
                logs.warning(
                    f"batch {batch.id}: no shard moved; {len(pending)} pending shards "
                    f"published again ({stepped.republished}/{self.policy.max_republish})",
                    pool=batch.pool,
                )
        if Act.FINALIZE in actions:
            stepped = self._save(batch.status, stepped)
            return self._finalize(stepped), 0, None
        saved = self._save(batch.status, stepped)
        if saved.status is model.Status.FAILED and batch.status is not model.Status.FAILED:
            logs.error(f"batch {batch.id} failed: {'; '.join(saved.errors)}", pool=batch.pool)
        return saved, model.pending_shards(saved, progress.done), after

    def progress(self, batch: Batch, waiting: str = "") -> Progress:
        """What Storage shows of the batch's shards: one listing, and the done markers."""
        keys = self.storage.list(work.shards_prefix(batch.id))
        done = [k for k in keys if k.endswith("/done.json")]
        completed = failed = 0
        for key in done:
            doc = json.loads(self.storage.get(key) or b"{}")
            completed += int(doc.get("completed", 0))
            failed += int(doc.get("failed", 0))
        shard_of = {k: k.rsplit("/", 2)[-2] for k in keys}
        finished = {shard_of[k] for k in done}
        started = {shard_of[k] for k in keys if k.endswith("/started")}
        stopped = {shard_of[k] for k in keys if k.endswith("/stopped")} - finished
        checkpoints = sum(1 for k in keys if work.checkpoint_range(k) is not None)
        return Progress(
            done=len(done),
            completed=completed,
            failed=failed,
            moved=checkpoints + len(done),
            started=len(started | finished),
            stopped=len(stopped),
            waiting=waiting if batch.status is model.Status.IN_PROGRESS else "",
        )

    def _done(self, batch: Batch) -> set[int]:
        keys = self.storage.list(work.shards_prefix(batch.id))
        return {int(k.rsplit("/", 2)[-2]) for k in keys if k.endswith("/done.json")}

    def _save(self, status: model.Status, stepped: Batch) -> Batch:
        """Save the step's record unless another writer moved the batch meanwhile."""

        def change(current: Batch | None) -> Batch | None:
            if current is None or current.status is not status:
                return None
            # A cancel or retry that landed meanwhile is kept (its fields win).
            return replace(
                stepped,
                retry_at=current.retry_at,
                cancelling_at=current.cancelling_at or stepped.cancelling_at,
            )

        return self.batches.store.update_batch(stepped.id, change) or stepped

    def _finalize(self, batch: Batch) -> Batch:
        status = batch.status
        if status not in (model.Status.FINALIZING, model.Status.CANCELLING):
            return batch
        try:
            counts = finalize.finalize(self.storage, batch, model.missing_code(batch))
        except LookupError as exc:
            return self._fail(batch, str(exc))
        now = self.batches.clock.now()

        def finished(current: Batch | None) -> Batch | None:
            if current is None or current.status is not status:
                return None
            named = replace(
                current, output_key=work.output_key(batch.id), error_key=work.error_key(batch.id)
            )
            return model.finish(named, counts, now)

        final = self.batches.store.update_batch(batch.id, finished) or batch
        logs.info(
            f"batch {batch.id} {final.status}: {counts.completed} completed, "
            f"{counts.failed} failed",
            pool=batch.pool,
        )
        return final

    def _fail(self, batch: Batch, reason: str) -> Batch:
        now = self.batches.clock.now()

        def failed(current: Batch | None) -> Batch | None:
            if current is None or current.terminal:
                return None
            return replace(current, status=model.Status.FAILED, failed_at=now, errors=(reason,))

        logs.error(f"batch {batch.id} failed: {reason}", pool=batch.pool)
        return self.batches.store.update_batch(batch.id, failed) or batch
