"""The batch service: submit, status, list, cancel, retry and results (no reconciling).

Invariants:
- ``submit`` validates the whole file before anything is stored or published: a bad
  file raises BatchInputError (line number and reason) and leaves no trace; with a pool
  named, every line's ``body.model`` must be one that pool serves.
- Order of writes on submit: input object → record (validating) → one work message per
  shard → record in_progress → a nudge to the batch controller (its topic), which counts
  the pool's demand at once. A crash in between leaves a ``validating`` record that the
  controller re-publishes (duplicates are harmless: workers resume from checkpoints), so
  an accepted batch is never dropped.
- Reads never write: ``get``, ``list`` and ``results`` read the record (and the result
  objects); the batch controller (batch/controller.py) alone moves a batch forward.
- ``cancel`` marks the batch cancelling and writes its cancel marker (workers stop,
  checkpoint what they answered and report); the controller finalizes it after that.
- The store holds the record; Storage holds the bytes; work messages hold references.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace

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


class BatchNotPending(YoyoError):
    """The batch is not pending: nothing to retry."""


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
        key = work.upload_key(input_file) if input_file else work.input_key(batch_id)
        if not input_file or self.storage.size(key) != len(data):
            key = work.input_key(batch_id)  # stored once: an upload is referenced, not copied
            self.storage.put(key, data)
        batch = Batch(
            id=batch_id,
            pool=pool,
            endpoint=lines[0].url,
            input_key=key,
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
        started = self.publish_shards(batch)
        self.nudge(pool)
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
        if pool is None:
            return lines, model.pool_by_model(lines, self.config.model_pools())
        served = sorted(m for m, p in self.config.model_pools().items() if p == pool)
        for line in lines:  # a line without a model runs on the pool's one model
            name = line.body.get("model")
            if name is not None and name not in served:
                raise BatchInputError(
                    line.number, f"model {name!r:.80} is not served by pool {pool!r} ({served})"
                )
        return lines, pool

    def get(self, batch_id: str) -> Batch:
        batch = self.store.get_batch(batch_id) if work.valid_batch_id(batch_id) else None
        if batch is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return batch

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
        return batches[:limit]

    def cancel(self, batch_id: str) -> Batch:
        batch = self.get(batch_id)
        if batch.terminal:
            return batch
        self.storage.put(work.cancel_key(batch_id), b"")  # workers stop and report
        now = self.clock.now()
        cancelling = self.store.update_batch(batch_id, lambda cur: cur and model.cancel(cur, now))
        assert cancelling is not None
        self.nudge(cancelling.pool)
        return cancelling

    def retry(self, batch_id: str) -> Batch:
        """Ask a pending batch's pool to run it again (after its work lapsed: rule 9)."""
        batch = self.get(batch_id)
        if batch.status not in (Status.VALIDATING, Status.IN_PROGRESS):
            raise BatchNotPending(f"batch {batch_id} is {batch.status}: nothing to retry")
        now = self.clock.now()
        retried = self.store.update_batch(batch_id, lambda cur: cur and model.retry(cur, now))
        assert retried is not None
        self.nudge(retried.pool)
        return retried

    def results(self, batch_id: str) -> tuple[bytes, bytes]:
        """(output file, error file) of a finished batch."""
        batch = self.get(batch_id)
        if not batch.terminal or batch.status is Status.FAILED:
            raise BatchNotFinished(f"batch {batch_id} is {batch.status}: no results yet")
        output = self.storage.get(batch.output_key) or b""
        errors = self.storage.get(batch.error_key) or b""
        return output, errors

    # --- steps -----------------------------------------------------------------------

    def publish_shards(self, batch: Batch, only: set[int] | None = None) -> Batch:
        """Publish the work message of every shard (of those in ``only``); a validating
        batch is then in progress."""
        topic = self.config.topic(names.TOPIC_WORK)
        for shard in batch.shards:
            if only is not None and shard.index not in only:
                continue
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

    def nudge(self, pool: str) -> None:
        """Ask the batch controller to look at ``pool`` now (best effort: it also runs on
        its schedule)."""
        body = json.dumps({"pool": pool}).encode()
        try:
            self.publisher.publish(self.config.topic(names.TOPIC_BATCH), body)
        except Exception as exc:
            logs.warning(f"batch controller not nudged ({type(exc).__name__}: {exc})", pool=pool)
