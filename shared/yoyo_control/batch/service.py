"""The batch service: submit, status, list, cancel, results, and the finalizer.

Invariants:
- ``submit`` validates the whole file before anything is stored or published: a bad
  file raises BatchInputError (line number and reason) and leaves no trace.
- Order of writes on submit: input object → record (validating) → one work message per
  shard → record in_progress → a queue-depth fact for the pool (the wake). A crash in
  between leaves a ``validating`` record that ``refresh`` re-publishes (duplicates are
  harmless: workers resume from checkpoints), so an accepted batch is never dropped.
- ``refresh`` is level-triggered and idempotent: it reads the record and the shards'
  ``done`` markers, moves the state forward, and once finalizing (all shards done, the
  completion window passed, or cancelled) merges the checkpoints into the output and
  error files — every custom_id exactly once — before the terminal state is saved.
- The store holds the record; Storage holds the bytes; work messages hold references.
- ``pending_shards(pool)`` is the pool's demand from its batches: shards' worth of lines
  not yet done (one VM can work one shard: a 40-line batch must not wake three VMs).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import logs, names
from ..config import Config
from ..domain import batch as model
from ..domain.batch import Batch, BatchInputError, RequestCounts, Status
from ..errors import YoyoError
from ..ports import Clock, Publisher, Storage, Store
from . import work


class BatchNotFound(YoyoError):
    """No batch has that id."""


class BatchNotFinished(YoyoError):
    """The batch has no results yet."""


class BatchService:
    def __init__(
        self, store: Store, storage: Storage, publisher: Publisher, clock: Clock, config: Config
    ) -> None:
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.clock = clock
        self.config = config

    # --- commands --------------------------------------------------------------------

    def submit(
        self,
        data: bytes,
        pool: str | None,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        input_file: str = "",
    ) -> Batch:
        """Queue ``data`` for ``pool`` (None: the pool serving the lines' model); with
        ``endpoint``, the lines' url must be it; ``input_file`` is the uploaded file's id."""
        lines, pool = self.check(data, pool)
        if endpoint is not None and endpoint != lines[0].url:
            raise BatchInputError(
                0, f"endpoint {endpoint!r:.80} differs from the input's url {lines[0].url!r}"
            )
        window_s = model.completion_window_s(completion_window)
        metadata_ok = model.check_metadata(metadata or {})
        now = self.clock.now()
        batch_id = f"batch_{uuid.uuid4().hex}"
        self.storage.put(work.input_key(batch_id), data)
        batch = Batch(
            id=batch_id,
            pool=pool,
            endpoint=lines[0].url,
            input_key=work.input_key(batch_id),
            created_at=now,
            expires_at=now + window_s,
            completion_window=completion_window,
            shards=model.plan_shards(lines, self.config.batch.shard_lines),
            request_counts=RequestCounts(total=len(lines)),
            metadata=metadata_ok,
            input_file=input_file,
        )
        self.store.update_batch(batch_id, lambda current: batch if current is None else None)
        logs.info(
            f"batch {batch_id}: {len(lines)} requests in {len(batch.shards)} shards", pool=pool
        )
        started = self._start(batch)
        self._publish_depth(pool, len(batch.shards))
        return started

    def check(self, data: bytes, pool: str | None) -> tuple[list[model.InputLine], str]:
        """The file's requests and its pool (``pool``, or the one serving the lines' model),
        else BatchInputError naming the first bad line."""
        if pool is not None and pool not in self.config.pools:
            raise BatchInputError(
                0, f"unknown pool {pool!r} (configured: {sorted(self.config.pools)})"
            )
        limits = self.config.batch
        lines = model.parse_input(data, limits.max_file_bytes, limits.max_lines)
        return lines, pool or model.pool_by_model(lines, self.config.model_pools())

    def get(self, batch_id: str) -> Batch:
        batch = self.store.get_batch(batch_id) if work.valid_batch_id(batch_id) else None
        if batch is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return self.refresh(batch)

    def list(
        self, pool: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[Batch]:
        """Newest first; ``after`` a batch id (OpenAI's cursor), at most ``limit``."""
        batches = self.store.list_batches(pool=pool)
        if after is not None:
            ids = [b.id for b in batches]
            if after not in ids:
                raise BatchNotFound(f"no batch {after!r} to list after")
            batches = batches[ids.index(after) + 1 :]
        return [self.refresh(b) for b in batches[:limit]]

    def cancel(self, batch_id: str) -> Batch:
        batch = self.get(batch_id)
        if batch.terminal:
            return batch
        self.storage.put(work.cancel_key(batch_id), b"")  # workers stop at their next chunk
        now = self.clock.now()
        cancelling = self.store.update_batch(batch_id, lambda cur: cur and model.cancel(cur, now))
        assert cancelling is not None
        return self.refresh(cancelling)

    def results(self, batch_id: str) -> tuple[bytes, bytes]:
        """(output file, error file) of a finished batch."""
        batch = self.get(batch_id)
        if not batch.terminal or batch.status is Status.FAILED:
            raise BatchNotFinished(f"batch {batch_id} is {batch.status}: no results yet")
        output = self.storage.get(batch.output_key) or b""
        errors = self.storage.get(batch.error_key) or b""
        return output, errors

    # --- progress --------------------------------------------------------------------

    def pending_shards(self, pool: str) -> int:
        """Shards' worth of the pool's requests not done yet (the unit one VM works on)."""
        pending = 0
        for batch in self.store.list_batches(pool=pool, pending=True):
            batch = self.refresh(batch)
            if not batch.terminal:
                counts = batch.request_counts
                lines = max(0, counts.total - counts.completed - counts.failed)
                size = max(1, self.config.batch.shard_lines)
                pending += min(len(batch.shards), -(-lines // size))
        return pending

    def refresh(self, batch: Batch) -> Batch:
        """Move the batch forward from what Storage shows; finalize when it is time."""
        if batch.terminal:
            return batch
        if batch.status is Status.VALIDATING:
            batch = self._start(batch)
        if batch.status is Status.IN_PROGRESS:
            batch = self._progress(batch)
        if batch.status in (Status.FINALIZING, Status.CANCELLING):
            batch = self._finalize(batch)
        return batch

    # --- steps -----------------------------------------------------------------------

    def _start(self, batch: Batch) -> Batch:
        topic = self.config.topic(names.TOPIC_WORK)
        for shard in batch.shards:
            data, attributes = work.encode_shard(
                work.ShardWork(
                    batch.id,
                    batch.pool,
                    batch.endpoint,
                    batch.input_key,
                    shard.index,
                    shard.first_line,
                    shard.last_line,
                    shard.start,
                    shard.end,
                )
            )
            self.publisher.publish(topic, data, **attributes)
        now = self.clock.now()

        def started(current: Batch | None) -> Batch | None:
            if current is None or current.status is not Status.VALIDATING:
                return None
            return replace(current, status=Status.IN_PROGRESS, in_progress_at=now)

        return self.store.update_batch(batch.id, started) or batch

    def _done_counts(self, batch: Batch) -> tuple[int, RequestCounts]:
        done = [
            k for k in self.storage.list(work.shards_prefix(batch.id)) if k.endswith("/done.json")
        ]
        completed = failed = 0
        for key in done:
            doc = json.loads(self.storage.get(key) or b"{}")
            completed += int(doc.get("completed", 0))
            failed += int(doc.get("failed", 0))
        counts = RequestCounts(batch.request_counts.total, completed, failed)
        return len(done), counts

    def _progress(self, batch: Batch) -> Batch:
        shards_done, counts = self._done_counts(batch)
        now = self.clock.now()

        def progressed(current: Batch | None) -> Batch | None:
            if current is None or current.status is not Status.IN_PROGRESS:
                return None
            return model.advance(replace(current, request_counts=counts), shards_done, now)

        return self.store.update_batch(batch.id, progressed) or batch

    def _finalize(self, batch: Batch) -> Batch:
        data = self.storage.get(batch.input_key)
        if data is None:
            return self._fail(batch, "the input object is gone from storage")
        requests = model.parse_input(data, len(data), len(data) + 1)
        results: list[Mapping[str, Any]] = []
        for key in self.storage.list(work.shards_prefix(batch.id)):
            if work.checkpoint_range(key) is not None:
                raw = self.storage.get(key) or b""
                results.extend(json.loads(line) for line in raw.splitlines() if line.strip())
        merged = model.merge(batch.id, requests, results, model.missing_code(batch))
        self.storage.put(work.output_key(batch.id), merged.output)
        self.storage.put(work.error_key(batch.id), merged.errors)
        now = self.clock.now()
        status = batch.status

        def finished(current: Batch | None) -> Batch | None:
            if current is None or current.status is not status:
                return None
            named = replace(
                current, output_key=work.output_key(batch.id), error_key=work.error_key(batch.id)
            )
            return model.finish(named, merged.counts, now)

        final = self.store.update_batch(batch.id, finished) or batch
        logs.info(
            f"batch {batch.id} {final.status}: {merged.counts.completed} completed, "
            f"{merged.counts.failed} failed",
            pool=batch.pool,
        )
        return final

    def _fail(self, batch: Batch, reason: str) -> Batch:
        now = self.clock.now()

        def failed(current: Batch | None) -> Batch | None:
            if current is None or current.terminal:
                return None
            return replace(current, status=Status.FAILED, failed_at=now, errors=(reason,))

        logs.error(f"batch {batch.id} failed: {reason}", pool=batch.pool)
        return self.store.update_batch(batch.id, failed) or batch

    def _publish_depth(self, pool: str, depth: int) -> None:
        """The wake: the same producer fact a queue-depth publisher sends."""
        body = json.dumps({"pool": pool, "depth": depth}).encode()
        self.publisher.publish(self.config.topic(names.TOPIC_QUEUE), body)
