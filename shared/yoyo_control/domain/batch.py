"""Batch inference in OpenAI's Batch format: input validation, shards, states, output lines.

Invariants:
- ``parse_input`` accepts a whole input file or rejects it with the FIRST bad line's
  number (1-based) and why; nothing partial is ever returned. Every line is a JSON object
  ``{"custom_id", "method": "POST", "url", "body"}`` with a unique non-empty custom_id,
  a url in ``ENDPOINTS`` (one per batch, as in OpenAI's API) and an object body. Blank
  lines are skipped but keep their number.
- A shard is a contiguous range of input lines and the byte range holding them, so a
  work message carries a reference (batch id, shard, ranges), never a payload.
- Every line ends in exactly one result record (output or error file): ``merge`` keeps
  the first record per line number and writes an error record for each line that never
  ran (``batch_expired`` / ``batch_cancelled``).
- States: validating → in_progress → finalizing → completed | failed | expired |
  cancelled (cancelling in between); terminal states never change. ``step`` is the
  batch controller's pure reconciler: (batch, progress, now) → (batch, actions, when to
  look again), moving to finalizing with ``advance``. ``merge`` is the in-memory statement
  of the result files' contract; batch/finalize.py writes the same records streamed.
- A cancel keeps what ran: the finalize waits for every shard a worker began to report
  (or ``cancel_grace_s``); only lines that never started are ``batch_cancelled``.
- A batch's pool, when not named, is the one serving every line's ``body.model`` (as the
  gateway routes a request): ``pool_by_model`` names the first line that disagrees.
- File ids: ``file-<batch id>-input|output|errors`` name a batch's own files; a batch made
  from an uploaded file keeps that file's id as its ``input_file_id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
COMPLETION_WINDOWS = {"24h": 24 * 3600.0}  # OpenAI accepts only "24h"
MAX_CUSTOM_ID_CHARS = 512
MAX_SHARDS = 2000  # the record lists its shards: keep it far below a document's 1 MiB
MAX_METADATA = (16, 64, 512)  # OpenAI's limits: pairs, key and value characters
BATCH_FILES = ("input", "output", "errors")  # file-<batch id>-<part>: a batch's own files
_LINE_KEYS = {"custom_id", "method", "url", "body"}


class Status(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.EXPIRED, Status.CANCELLED})


class BatchInputError(ValueError):
    """The input file is not a valid batch; ``line`` is 1-based (0: the file as a whole)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.reason = message


@dataclass(frozen=True)
class InputLine:
    number: int  # 1-based line number in the input file
    custom_id: str
    url: str
    body: Mapping[str, Any]
    start: int  # byte offset of the line in the input file
    end: int  # byte offset just past its newline


@dataclass(frozen=True)
class Shard:
    index: int
    first_line: int  # 1-based, inclusive
    last_line: int  # inclusive
    start: int  # byte range [start, end) of the input object holding those lines
    end: int


@dataclass(frozen=True)
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Batch:
    """A batch record, as the store keeps it (timestamps: Unix seconds, None until set)."""

    id: str
    pool: str
    endpoint: str
    input_key: str
    created_at: float
    expires_at: float
    completion_window: str = "24h"
    status: Status = Status.VALIDATING
    shards: tuple[Shard, ...] = ()
    request_counts: RequestCounts = RequestCounts()
    output_key: str = ""
    error_key: str = ""
    errors: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    input_file: str = ""  # the uploaded file's id (POST /v1/files); "" when submitted directly
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    # The batch controller's bookkeeping (``step``):
    moved: int = 0  # checkpoints + done markers seen: it grows while shards move
    progress_at: float | None = None  # when ``moved`` last grew (or the batch started)
    retry_at: float | None = None  # the newest ``yoyoctl batch retry`` (None: never)
    republished: int = 0  # times its pending shards were published again without progress
    waiting: str = ""  # why its pool does not run it now (PoolState.batch), shown in errors

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def asked_at(self) -> float:
        """The newest explicit ask to run it: its submit, or a retry."""
        return max(self.created_at, self.retry_at or 0.0)


# --- input ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(number: int, text: str) -> tuple[str, str, Mapping[str, Any]]:
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BatchInputError(number, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BatchInputError(number, "expected a JSON object")
    unknown = sorted(set(doc) - _LINE_KEYS)
    if unknown:
        raise BatchInputError(number, f"unknown key(s) {unknown}; allowed: {sorted(_LINE_KEYS)}")
    missing = sorted(_LINE_KEYS - set(doc))
    if missing:
        raise BatchInputError(number, f"missing key(s) {missing}")
    custom_id, method, url, body = doc["custom_id"], doc["method"], doc["url"], doc["body"]
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise BatchInputError(number, "custom_id must be a non-empty string")
    if len(custom_id) > MAX_CUSTOM_ID_CHARS or not custom_id.isprintable():
        raise BatchInputError(
            number, f"custom_id must be printable and at most {MAX_CUSTOM_ID_CHARS} characters"
        )
    if method != "POST":
        raise BatchInputError(number, f"method must be 'POST', got {method!r:.40}")
    if url not in ENDPOINTS:
        raise BatchInputError(number, f"url {url!r:.80} is not one of {list(ENDPOINTS)}")
    if not isinstance(body, dict):
        raise BatchInputError(number, "body must be a JSON object")
    try:
        json.dumps(body, ensure_ascii=False).encode(
            "utf-8"
        )  # no lone surrogates: it must reach the server
    except UnicodeEncodeError:
        raise BatchInputError(number, "body contains an invalid Unicode character") from None
    return custom_id, url, body


def parse_input(data: bytes, max_bytes: int, max_lines: int) -> list[InputLine]:
    """Every request of a batch input file, or BatchInputError for the first bad line."""
    if len(data) > max_bytes:
        raise BatchInputError(0, f"the file is {len(data)} bytes; the limit is {max_bytes}")
    lines: list[InputLine] = []
    seen: dict[str, int] = {}
    endpoint = ""
    offset = 0
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BatchInputError(number, "not UTF-8") from None
        if not text.strip():
            continue
        custom_id, url, body = _parse_line(number, text)
        if custom_id in seen:
            raise BatchInputError(
                number, f"custom_id {custom_id!r:.80} repeats line {seen[custom_id]}"
            )
        if endpoint and url != endpoint:
            raise BatchInputError(number, f"url {url!r} differs from the batch's {endpoint!r}")
        endpoint = url
        seen[custom_id] = number
        if len(lines) == max_lines:
            raise BatchInputError(number, f"more than {max_lines} requests in one batch")
        lines.append(InputLine(number, custom_id, url, body, start, offset))
    if not lines:
        raise BatchInputError(0, "the file holds no requests")
    return lines


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The batch's metadata if within OpenAI's limits, else BatchInputError."""
    pairs, key_chars, value_chars = MAX_METADATA
    if len(metadata) > pairs:
        raise BatchInputError(0, f"metadata: at most {pairs} pairs")
    for key, value in metadata.items():
        for text, limit in ((key, key_chars), (value, value_chars)):
            if not isinstance(text, str) or len(text) > limit or not text.isprintable():
                raise BatchInputError(
                    0, f"metadata {key!r:.70}: keys up to {key_chars} and values up to "
                    f"{value_chars} printable characters"
                )  # fmt: skip
    return dict(metadata)


def pool_by_model(lines: Sequence[InputLine], pools_by_model: Mapping[str, str]) -> str:
    """The one pool serving every line's ``body.model``, else BatchInputError naming the
    first line without a model, with an unknown one, or with another pool's."""
    pool = ""
    for line in lines:
        model = line.body.get("model")
        if not isinstance(model, str):
            raise BatchInputError(line.number, "body.model is required (a string)")
        if model not in pools_by_model:
            raise BatchInputError(
                line.number,
                f"model {model!r:.80} is not served; known models: {sorted(pools_by_model)}",
            )
        if pool and pools_by_model[model] != pool:
            raise BatchInputError(
                line.number,
                f"model {model!r:.80} is served by pool {pools_by_model[model]!r}, line "
                f"{lines[0].number}'s by {pool!r}: one pool per batch",
            )
        pool = pools_by_model[model]
    return pool


def batch_file_id(batch_id: str, part: str) -> str:
    """The id of a batch's own file (``part`` in BATCH_FILES)."""
    return f"file-{batch_id}-{part}"


def completion_window_s(window: str) -> float:
    if window not in COMPLETION_WINDOWS:
        raise BatchInputError(
            0, f"completion_window {window!r} is not one of {sorted(COMPLETION_WINDOWS)}"
        )
    return COMPLETION_WINDOWS[window]


def plan_shards(lines: Sequence[InputLine], shard_lines: int) -> tuple[Shard, ...]:
    """Contiguous shards of ``shard_lines`` requests each (more when it would take more
    than MAX_SHARDS shards)."""
    size = max(1, shard_lines, math.ceil(len(lines) / MAX_SHARDS))
    shards = []
    for index in range(math.ceil(len(lines) / size)):
        part = lines[index * size : (index + 1) * size]
        shards.append(Shard(index, part[0].number, part[-1].number, part[0].start, part[-1].end))
    return tuple(shards)


def lines_of_shard(data: bytes, shard: Shard) -> list[tuple[int, Mapping[str, Any]]]:
    """(line number, request) for each request in ``data`` = the shard's byte range.

    The input was validated at submit; a line that no longer parses (an object replaced
    behind our back) raises BatchInputError rather than being skipped.
    """
    requests: list[tuple[int, Mapping[str, Any]]] = []
    number = shard.first_line
    for raw in data.splitlines():
        text = raw.decode("utf-8")
        if text.strip():
            custom_id, url, body = _parse_line(number, text)
            requests.append((number, {"custom_id": custom_id, "url": url, "body": body}))
        number += 1
    return requests


# --- results -------------------------------------------------------------------------


def _tagged(
    line: int, custom_id: str, request_id: str, response: Any, error: Any
) -> dict[str, Any]:
    record = {
        "id": f"batch_req_{request_id}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return {"line": line, "record": record}


def result_record(
    line: int, custom_id: str, request_id: str, status_code: int, body: Any
) -> dict[str, Any]:
    """One result (a server answer, 2xx → output file, else error file), tagged by line."""
    response = {"status_code": status_code, "request_id": request_id, "body": body}
    return _tagged(line, custom_id, request_id, response, None)


def error_record(
    line: int, custom_id: str, request_id: str, code: str, message: str
) -> dict[str, Any]:
    """A line that got no answer from the server (never ran, or failed to be sent)."""
    return _tagged(line, custom_id, request_id, None, {"code": code, "message": message})


def is_output(record: Mapping[str, Any]) -> bool:
    response = record.get("response")
    return isinstance(response, Mapping) and 200 <= int(response.get("status_code", 0)) < 300


@dataclass(frozen=True)
class Merged:
    output: bytes
    errors: bytes
    counts: RequestCounts


def merge(
    batch_id: str,
    requests: Iterable[InputLine],
    results: Iterable[Mapping[str, Any]],
    missing_code: str,
) -> Merged:
    """Exactly one record per request, in input order; the first result per line wins."""
    by_line: dict[int, Mapping[str, Any]] = {}
    for result in results:
        by_line.setdefault(int(result["line"]), result["record"])
    output, errors = [], []
    completed = failed = 0
    for request in requests:
        record = by_line.get(request.number)
        if record is None:
            record = error_record(
                request.number,
                request.custom_id,
                f"{batch_id}-{request.number}",
                missing_code,
                f"the batch ended ({missing_code}) before this request ran",
            )["record"]
        line = json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace")
        if is_output(record):
            output.append(line)
            completed += 1
        else:
            errors.append(line)
            failed += 1
    return Merged(
        b"".join(x + b"\n" for x in output),
        b"".join(x + b"\n" for x in errors),
        RequestCounts(total=completed + failed, completed=completed, failed=failed),
    )


# --- states --------------------------------------------------------------------------


def advance(batch: Batch, shards_done: int, now: float) -> Batch:
    """The next state of a pending batch: finalizing when every shard is done (or it
    expired, or was cancelled); terminal states are returned unchanged."""
    if batch.status is Status.IN_PROGRESS:
        if shards_done >= len(batch.shards):
            return replace(batch, status=Status.FINALIZING, finalizing_at=now)
        if now >= batch.expires_at:
            return replace(batch, status=Status.FINALIZING, finalizing_at=now)
    return batch


def cancel(batch: Batch, now: float) -> Batch:
    """Ask a pending batch to stop; a finished one is returned unchanged."""
    if batch.status in (Status.VALIDATING, Status.IN_PROGRESS):
        return replace(batch, status=Status.CANCELLING, cancelling_at=now)
    return batch


def finish(batch: Batch, counts: RequestCounts, now: float) -> Batch:
    """The terminal state once the merged files are written."""
    if batch.status is Status.CANCELLING:
        return replace(batch, status=Status.CANCELLED, cancelled_at=now, request_counts=counts)
    if batch.status is not Status.FINALIZING:
        return batch
    if batch.finalizing_at is not None and batch.finalizing_at >= batch.expires_at:
        return replace(batch, status=Status.EXPIRED, expired_at=now, request_counts=counts)
    return replace(batch, status=Status.COMPLETED, completed_at=now, request_counts=counts)


# --- the batch controller's step ---------------------------------------------------


class Act(StrEnum):
    """What the controller's shell does for a batch after ``step``."""

    PUBLISH = "publish"  # publish every shard's work message (a validating batch)
    REPUBLISH = "republish"  # publish again the shards without a done marker
    FINALIZE = "finalize"  # merge the checkpoints into the output files, then ``finish``


@dataclass(frozen=True)
class Progress:
    """What Storage shows of a batch's shards (one listing), and what its pool says."""

    done: int = 0  # shards with a done marker
    completed: int = 0  # lines answered 2xx, by the done markers
    failed: int = 0
    moved: int = 0  # checkpoints + done markers: grows with every chunk written
    started: int = 0  # shards a worker began (started markers)
    stopped: int = 0  # of those, not done, whose worker reported its stop after a cancel
    waiting: str = ""  # why the pool does not run its batch work (PoolState.batch.waiting)


@dataclass(frozen=True)
class StepPolicy:
    cancel_grace_s: float = 120.0  # a cancel waits this long for running shards to report
    republish_after_s: float = 900.0  # no shard moved this long: publish the rest again
    max_republish: int = 4  # …doubling the wait each time; then the batch fails, saying why


def step(
    batch: Batch, progress: Progress, now: float, policy: StepPolicy = StepPolicy()
) -> tuple[Batch, tuple[Act, ...], float | None]:
    """The batch controller's pure step: (next batch, what to do, when to look again).

    - validating → in_progress, publishing its shards (a submit cut short is finished);
    - in_progress: counts and progress from ``progress``; finalizing when every shard is
      done or the window passed; with no shard moved for ``republish_after_s`` (doubling),
      while its pool is not waiting, its pending shards are published again (a message
      dead-lettered after ten hand-backs is not lost); past ``max_republish``, failed;
    - cancelling: finalized once every shard a worker began has reported (done, or
      stopped with its answered lines written) or ``cancel_grace_s`` passed;
    - finalizing: finalize. Terminal batches never change.
    """
    if batch.terminal:
        return batch, (), None
    if batch.status is Status.VALIDATING:
        started = replace(batch, status=Status.IN_PROGRESS, in_progress_at=now, progress_at=now)
        return started, (Act.PUBLISH,), 0.0
    counts = RequestCounts(batch.request_counts.total, progress.completed, progress.failed)
    batch = replace(batch, request_counts=counts, waiting=progress.waiting)
    if progress.moved != batch.moved:
        batch = replace(batch, moved=progress.moved, progress_at=now, republished=0)
    if batch.status is Status.IN_PROGRESS:
        advanced = advance(batch, progress.done, now)  # every shard done, or expired
        if advanced.status is Status.FINALIZING:
            return advanced, (Act.FINALIZE,), 0.0
        since = batch.progress_at or batch.in_progress_at or batch.created_at
        due = since + policy.republish_after_s * 2.0**batch.republished
        if progress.waiting or now < due:
            return batch, (), max(0.0, due - now)
        if batch.republished >= policy.max_republish:
            why = (
                f"no shard moved in {now - since:.0f}s through {batch.republished} "
                "republishes of its pending shards (each handed back or dead-lettered)"
            )
            failed = replace(batch, status=Status.FAILED, failed_at=now, errors=(why,))
            return failed, (), None
        return replace(batch, republished=batch.republished + 1), (Act.REPUBLISH,), 0.0
    if batch.status is Status.CANCELLING:
        running = progress.started - progress.done - progress.stopped
        deadline = (batch.cancelling_at or now) + policy.cancel_grace_s
        if running > 0 and now < deadline:
            return batch, (), deadline - now
        return batch, (Act.FINALIZE,), 0.0
    return batch, (Act.FINALIZE,), 0.0  # finalizing


def pending_shards(batch: Batch, done: int) -> int:
    """The VMs' worth of work a batch still asks its pool for (0 once cancelling)."""
    if batch.status not in (Status.VALIDATING, Status.IN_PROGRESS):
        return 0
    return max(0, len(batch.shards) - done)


def retry(batch: Batch, now: float) -> Batch:
    """An explicit ask to run a pending batch again (its pool's lapse ends)."""
    if batch.status not in (Status.VALIDATING, Status.IN_PROGRESS):
        return batch
    return replace(batch, retry_at=now, republished=0, progress_at=now)


def missing_code(batch: Batch) -> str:
    """The error code of lines that never ran, by how the batch ended."""
    return "batch_cancelled" if batch.status is Status.CANCELLING else "batch_expired"


def to_openai(batch: Batch) -> dict[str, Any]:
    """OpenAI's batch object (its file ids are readable through ``GET /v1/files/<id>``)."""

    def ts(value: float | None) -> int | None:
        return None if value is None else int(value)

    data = [{"code": "invalid_request", "message": m} for m in batch.errors]
    if batch.waiting and not batch.terminal:
        data.append({"code": "waiting", "message": batch.waiting})
    errors = {"object": "list", "data": data} if data else None
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": errors,
        "input_file_id": batch.input_file or batch_file_id(batch.id, "input"),
        "completion_window": batch.completion_window,
        "status": str(batch.status),
        "output_file_id": batch_file_id(batch.id, "output") if batch.output_key else None,
        "error_file_id": batch_file_id(batch.id, "errors") if batch.error_key else None,
        "created_at": ts(batch.created_at),
        "in_progress_at": ts(batch.in_progress_at),
        "expires_at": ts(batch.expires_at),
        "finalizing_at": ts(batch.finalizing_at),
        "completed_at": ts(batch.completed_at),
        "failed_at": ts(batch.failed_at),
        "expired_at": ts(batch.expired_at),
        "cancelling_at": ts(batch.cancelling_at),
        "cancelled_at": ts(batch.cancelled_at),
        "request_counts": {
            "total": batch.request_counts.total,
            "completed": batch.request_counts.completed,
            "failed": batch.request_counts.failed,
        },
        "metadata": dict(batch.metadata) or None,
        "pool": batch.pool,
    }
