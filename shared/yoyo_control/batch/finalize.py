"""The finalize: a batch's checkpoints merged into its output and error files, streamed.

Invariants:
- Bounded memory: the input is read one shard's byte range at a time, the checkpoints of
  one shard at a time, and both outputs are written through ``Storage.writer`` (Cloud
  Storage: a resumable upload in 1 MiB pieces): peak memory is one shard's lines and
  answers, whatever the batch's size (bench/batch_finalize.py measures it).
- Every input request ends in exactly one record, in input order: the first checkpoint
  record per line wins; a line without one gets an error record with ``missing_code``
  (``batch_expired`` / ``batch_cancelled``), as ``domain.batch.merge`` does.
- The output objects appear only once written whole (``writer``); the batch record turns
  terminal after that (the caller), so a finalize cut short is simply run again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..domain import batch as model
from ..domain.batch import Batch, RequestCounts
from ..ports import Storage
from . import work


def _shard_results(storage: Storage, batch_id: str, shard: int) -> dict[int, Mapping[str, Any]]:
    """The first record per line of one shard's checkpoints."""
    records: dict[int, Mapping[str, Any]] = {}
    for key in storage.list(work.shard_prefix(batch_id, shard)):
        if work.checkpoint_range(key) is None:
            continue
        for raw in (storage.get(key) or b"").splitlines():
            if raw.strip():
                result = json.loads(raw)
                records.setdefault(int(result["line"]), result["record"])
    return records


def finalize(storage: Storage, batch: Batch, missing_code: str) -> RequestCounts:
    """Write the batch's output and error files; their counts. LookupError if the input
    object is gone."""
    if storage.size(batch.input_key) is None:
        raise LookupError("the input object is gone from storage")
    completed = failed = 0
    with (
        storage.writer(work.output_key(batch.id)) as output,
        storage.writer(work.error_key(batch.id)) as errors,
    ):
        for shard in batch.shards:
            data = storage.get(batch.input_key, shard.start, shard.end) or b""
            results = _shard_results(storage, batch.id, shard.index)
            for number, request in model.lines_of_shard(data, shard):
                record = results.get(number)
                if record is None:
                    record = model.error_record(
                        number,
                        str(request["custom_id"]),
                        f"{batch.id}-{number}",
                        missing_code,
                        f"the batch ended ({missing_code}) before this request ran",
                    )["record"]
                line = json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace")
                if model.is_output(record):
                    output.write(line + b"\n")
                    completed += 1
                else:
                    errors.write(line + b"\n")
                    failed += 1
            del data, results
    return RequestCounts(total=completed + failed, completed=completed, failed=failed)
