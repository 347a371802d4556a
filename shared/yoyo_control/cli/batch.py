"""``yoyoctl batch …``: submit, status, list, results, cancel, retry.

Invariants: thin commands over BatchService; ``--json`` prints OpenAI's batch object
(``list`` prints ``{"object": "list", "data": [...]}``); a bad input file is one line
naming the line number, and nothing is submitted; each action prints the next command.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import logs
from ..domain.batch import Batch, to_openai
from .context import Commands, Ctx

if TYPE_CHECKING:
    from ..batch.service import BatchService


def _service(ctx: Ctx) -> BatchService:
    from ..bootstrap import build_batch_service

    # The service's structured log lines are for Cloud Logging; yoyoctl prints its own.
    logs.set_stream(io.StringIO())
    return build_batch_service(ctx.config, ctx.store, ctx.publisher)


def _summary(batch: Batch) -> str:
    c = batch.request_counts
    text = (
        f"{batch.id}  {batch.status:<11}  pool {batch.pool}  {c.completed + c.failed}/{c.total} "
        f"done ({c.completed} completed, {c.failed} failed)  {batch.endpoint}"
    )
    if batch.waiting and not batch.terminal:
        text += f"\n  waiting: {batch.waiting}"
    for error in batch.errors:
        text += f"\n  error: {error}"
    return text


def cmd_submit(ctx: Ctx) -> int:
    path = Path(ctx.args.file)
    data = path.read_bytes()
    pairs = [kv.partition("=") for kv in ctx.args.metadata or []]
    if any(not sep for _, sep, _ in pairs):
        raise ValueError("--metadata takes KEY=VALUE")
    metadata = {key: value for key, _, value in pairs}
    batch = _service(ctx).submit(data, ctx.pool(), ctx.args.completion_window, metadata)
    ctx.out(
        to_openai(batch),
        f"submitted {path.name}: {_summary(batch)}; {len(batch.shards)} shard(s) queued",
        f"yoyoctl batch status {batch.id}   (then: yoyoctl batch results {batch.id} --wait)",
    )
    return 0


def cmd_status(ctx: Ctx) -> int:
    batch = _service(ctx).get(ctx.args.id)
    ctx.out(to_openai(batch), _summary(batch), _next(batch))
    return 0


def cmd_list(ctx: Ctx) -> int:
    batches = _service(ctx).list(getattr(ctx.args, "pool", None))
    text = "\n".join(_summary(b) for b in batches) or "no batches"
    ctx.out({"object": "list", "data": [to_openai(b) for b in batches]}, text)
    return 0


def cmd_cancel(ctx: Ctx) -> int:
    batch = _service(ctx).cancel(ctx.args.id)
    ctx.out(to_openai(batch), _summary(batch), f"yoyoctl batch results {batch.id}")
    return 0


def cmd_retry(ctx: Ctx) -> int:
    batch = _service(ctx).retry(ctx.args.id)
    ctx.out(
        to_openai(batch),
        f"{_summary(batch)}\nretry asked: its pool runs it again (a fresh restart budget)",
        f"yoyoctl batch status {batch.id}",
    )
    return 0


def cmd_results(ctx: Ctx) -> int:
    service = _service(ctx)
    if ctx.args.wait:
        deadline = time.monotonic() + ctx.args.timeout
        while not service.get(ctx.args.id).terminal and time.monotonic() < deadline:
            time.sleep(1.0)
    output, errors = service.results(ctx.args.id)
    batch = service.get(ctx.args.id)
    doc: dict[str, Any] = {"batch": to_openai(batch), "output_file": None, "error_file": None}
    if ctx.args.output:
        out_path = Path(ctx.args.output)
        out_path.write_bytes(output)
        err_path = out_path.with_name(out_path.stem + ".errors.jsonl")
        err_path.write_bytes(errors)
        doc.update(output_file=str(out_path), error_file=str(err_path))
        n_out, n_err = output.count(b"\n"), errors.count(b"\n")
        text = (
            f"{_summary(batch)}\nwrote {n_out} result(s) to {out_path} and "
            f"{n_err} error(s) to {err_path}"
        )
        ctx.out(doc, text)
    elif ctx.json:
        ctx.out({**doc, "output": output.decode(), "errors": errors.decode()}, "")
    else:  # the raw output file on stdout, like `files.content`
        sys.stdout.buffer.write(output)
        sys.stdout.flush()
    return 0


def _next(batch: Batch) -> str:
    if batch.waiting and not batch.terminal:
        return f"yoyoctl batch retry {batch.id}   (or: yoyoctl start --pool {batch.pool})"
    if batch.terminal:
        return f"yoyoctl batch results {batch.id} -o results.jsonl"
    return f"yoyoctl batch results {batch.id} --wait -o results.jsonl"


def register(commands: Commands) -> None:
    """The ``batch`` command group."""
    batch = commands.group("batch", "batch inference (OpenAI Batch files)")
    p = batch.add("submit", cmd_submit, "validate a JSONL file and queue it for a pool", True)
    p.add_argument("file", help="OpenAI Batch input (JSONL)")
    p.add_argument("--completion-window", default="24h")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    p = batch.add("status", cmd_status, "a batch's state and request counts")
    p.add_argument("id")
    batch.add("list", cmd_list, "every batch, newest first", pool=True)
    p = batch.add("results", cmd_results, "download a finished batch's results")
    p.add_argument("id")
    p.add_argument("-o", "--output", help="write results here (errors beside it)")
    p.add_argument("--wait", action="store_true", help="wait until the batch has finished")
    p.add_argument("--timeout", type=float, default=3600.0, help="with --wait, in seconds")
    p = batch.add("cancel", cmd_cancel, "stop a batch; what ran is kept")
    p.add_argument("id")
    p = batch.add("retry", cmd_retry, "run a batch whose pool stopped for lack of progress")
    p.add_argument("id")
