"""Where a batch's objects live in Storage, and the work message that names a shard.

Layout under ``batches/<id>/``: ``input.jsonl`` (as submitted), ``cancelled`` (present
once cancelled: workers stop at their next chunk), ``shards/<shard>/<first>-<last>.jsonl``
(checkpoints: result records of lines first..last, written once complete),
``shards/<shard>/done.json`` (the shard's counts, written after its last checkpoint),
``shards/<shard>/started`` (a worker began it) and ``shards/<shard>/stopped`` (its worker
stopped after a cancel, once the lines it had answered were checkpointed),
``output.jsonl`` and ``errors.jsonl`` (the merged results).

A batch made from an upload reads the upload's own object (``files/<file id>/content.jsonl``):
its input is stored once.

Invariants: a work message is a reference (batch id, pool, shard, the input key and the
byte and line ranges), never a payload; ``decode_shard`` refuses anything else with
ValueError saying why (the worker acknowledges such a message and logs the reason).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..domain.batch import ENDPOINTS, Shard

KIND = "batch_shard"
VERSION = 1
_ID = re.compile(r"^batch_[0-9a-f]{32}$")
_MAX_MESSAGE_BYTES = 4096


def prefix(batch_id: str) -> str:
    return f"batches/{batch_id}/"


def input_key(batch_id: str) -> str:
    return f"{prefix(batch_id)}input.jsonl"


def output_key(batch_id: str) -> str:
    return f"{prefix(batch_id)}output.jsonl"


def error_key(batch_id: str) -> str:
    return f"{prefix(batch_id)}errors.jsonl"


def cancel_key(batch_id: str) -> str:
    return f"{prefix(batch_id)}cancelled"


_UPLOAD_KEY = re.compile(r"^files/file-[0-9a-f]{32}/content\.jsonl$")


def upload_key(file_id: str) -> str:
    """Where an uploaded file's content lives (POST /v1/files: batch/files.py)."""
    return f"files/{file_id}/content.jsonl"


def shards_prefix(batch_id: str) -> str:
    return f"{prefix(batch_id)}shards/"


def shard_prefix(batch_id: str, shard: int) -> str:
    return f"{shards_prefix(batch_id)}{shard:06d}/"


def checkpoint_key(batch_id: str, shard: int, first: int, last: int) -> str:
    return f"{shard_prefix(batch_id, shard)}{first:08d}-{last:08d}.jsonl"


def done_key(batch_id: str, shard: int) -> str:
    return f"{shard_prefix(batch_id, shard)}done.json"


def started_key(batch_id: str, shard: int) -> str:
    return f"{shard_prefix(batch_id, shard)}started"


def stopped_key(batch_id: str, shard: int) -> str:
    return f"{shard_prefix(batch_id, shard)}stopped"


def checkpoint_range(key: str) -> tuple[int, int] | None:
    """(first, last) line of a checkpoint key; None for any other key."""
    match = re.search(r"/(\d{8})-(\d{8})\.jsonl$", key)
    return (int(match.group(1)), int(match.group(2))) if match else None


def valid_batch_id(batch_id: str) -> bool:
    return bool(_ID.match(batch_id))


@dataclass(frozen=True)
class ShardWork:
    """One work message: run lines first_line..last_line (bytes start..end) of input."""

    batch_id: str
    pool: str
    endpoint: str
    input: str
    shard: int
    first_line: int
    last_line: int
    start: int
    end: int

    @property
    def as_shard(self) -> Shard:
        return Shard(self.shard, self.first_line, self.last_line, self.start, self.end)


def encode_shard(work: ShardWork) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) of the work message; ``pool`` routes it to the pool's queue."""
    body = {"kind": KIND, "v": VERSION, **asdict(work)}
    return json.dumps(body).encode(), {"pool": work.pool, "batch_id": work.batch_id}


def decode_shard(data: bytes, attributes: Mapping[str, str] | None = None) -> ShardWork:
    if len(data) > _MAX_MESSAGE_BYTES:
        raise ValueError(f"work message of {len(data)} bytes: a reference is never that big")
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"work message is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("v") != VERSION:
        raise ValueError(f"not a {KIND} v{VERSION} message")
    fields = {f for f in ShardWork.__dataclass_fields__}
    if set(doc) - {"kind", "v"} != fields:
        raise ValueError(f"work message keys {sorted(doc)} are not {sorted(fields)}")
    strings = ("batch_id", "pool", "endpoint", "input")
    numbers = ("shard", "first_line", "last_line", "start", "end")
    if not all(isinstance(doc[k], str) for k in strings):
        raise ValueError(f"work message: {strings} must be strings")
    if not all(type(doc[k]) is int and 0 <= doc[k] < 2**53 for k in numbers):
        raise ValueError(f"work message: {numbers} must be non-negative integers")
    work = ShardWork(**{k: doc[k] for k in fields})
    own_input = work.input == input_key(work.batch_id) or _UPLOAD_KEY.match(work.input)
    if not valid_batch_id(work.batch_id) or not own_input:
        raise ValueError(f"work message names no batch of ours: {work.batch_id!r:.80}")
    if work.endpoint not in ENDPOINTS:
        raise ValueError(f"work message endpoint {work.endpoint!r:.80} is not served")
    if work.first_line > work.last_line or work.start >= work.end:
        raise ValueError("work message ranges are empty or reversed")
    if attributes is not None and attributes.get("pool", work.pool) != work.pool:
        raise ValueError("work message pool attribute differs from its body")
    return work
