"""batch/finalize.py writes, streamed, exactly what ``domain.batch.merge`` defines."""

from __future__ import annotations

import json
from pathlib import Path

from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.batch import finalize, work
from yoyo_control.domain import batch as model

BATCH_ID = "batch_" + "c" * 32


def test_the_streamed_finalize_matches_the_merge(tmp_path: Path) -> None:
    lines = []
    for i in range(23):
        body = {"prompt": f"p{i}", "max_tokens": 1}
        lines.append(
            json.dumps(
                {"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions", "body": body}
            )
        )
        if i % 7 == 3:
            lines.append("")  # a blank line keeps its number
    data = ("\n".join(lines) + "\n").encode()
    requests = model.parse_input(data, len(data), 100)
    shards = model.plan_shards(requests, 5)
    storage = LocalStorage(tmp_path)
    storage.put(work.input_key(BATCH_ID), data)
    results = []
    for r in requests:
        if r.number % 4 == 0:
            continue  # never ran
        status = 400 if r.number % 5 == 0 else 200
        results.append(
            model.result_record(r.number, r.custom_id, f"q{r.number}", status, {"n": r.number})
        )
    results.append(model.result_record(requests[1].number, "dup", "dup", 500, {}))  # later: loses
    for shard in shards:
        mine = [x for x in results if shard.first_line <= x["line"] <= shard.last_line]
        if mine:
            first, last = min(x["line"] for x in mine), max(x["line"] for x in mine)
            key = work.checkpoint_key(BATCH_ID, shard.index, first, last)
            storage.put(key, b"".join(json.dumps(x).encode() + b"\n" for x in mine))
    batch = model.Batch(
        BATCH_ID, "p", "/v1/completions", work.input_key(BATCH_ID), 0.0, 1.0,
        status=model.Status.CANCELLING, shards=shards,
    )  # fmt: skip
    counts = finalize.finalize(storage, batch, "batch_cancelled")
    merged = model.merge(BATCH_ID, requests, results, "batch_cancelled")
    assert counts == merged.counts and counts.total == 23
    assert storage.get(work.output_key(BATCH_ID)) == merged.output
    assert storage.get(work.error_key(BATCH_ID)) == merged.errors
