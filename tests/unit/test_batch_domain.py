"""domain/batch.py: input validation, shards, merge and states (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from yoyo_control.domain import batch as b

LIMITS = {"max_bytes": 10_000, "max_lines": 100}


def line(custom_id: str = "r1", **overrides: Any) -> str:
    doc = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    doc.update(overrides)
    return json.dumps(doc)


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def test_a_valid_file_yields_every_request_with_its_byte_range() -> None:
    data = jsonl(line("a"), "", line("b"))
    lines = b.parse_input(data, **LIMITS)
    assert [(x.number, x.custom_id) for x in lines] == [(1, "a"), (3, "b")]
    assert [json.loads(data[x.start : x.end])["custom_id"] for x in lines] == ["a", "b"]


@pytest.mark.parametrize(
    ("lines", "where", "reason"),
    [
        ((line("a"), "{not json"), 2, "not valid JSON"),
        ((line("a"), "[1, 2]"), 2, "expected a JSON object"),
        ((line("a"), line("a")), 2, "repeats line 1"),
        ((line("a", url="/v1/images"),), 1, "is not one of"),
        ((line("a", method="GET"),), 1, "method must be 'POST'"),
        ((line("a", body="text"),), 1, "body must be a JSON object"),
        ((line(""),), 1, "custom_id must be a non-empty string"),
        ((line("a\x00b"),), 1, "custom_id must be printable"),
        ((line("a", extra=1),), 1, "unknown key"),
        (
            (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions"}),),
            1,
            "missing",
        ),
        ((line("a"), line("b", url="/v1/completions")), 2, "differs from the batch's"),
        (
            ('{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"x": NaN}}',),
            1,
            "NaN",
        ),
        ((line("a", body={"prompt": "\ud800"}),), 1, "invalid Unicode"),
        ((line("a"), "9" * 5000), 2, "not valid JSON"),
    ],
)
def test_a_bad_line_is_an_error_naming_its_number(
    lines: tuple[str, ...], where: int, reason: str
) -> None:
    with pytest.raises(b.BatchInputError, match=reason) as info:
        b.parse_input(jsonl(*lines), **LIMITS)
    assert info.value.line == where
    assert str(info.value).startswith(f"line {where}: ")


def test_bytes_that_are_not_utf8_are_a_line_error() -> None:
    with pytest.raises(b.BatchInputError, match="line 2: not UTF-8"):
        b.parse_input(jsonl(line("a")) + b"\xff\xfe\n", **LIMITS)


def test_oversize_files_and_too_many_lines_are_refused() -> None:
    with pytest.raises(b.BatchInputError, match="the limit is 10"):
        b.parse_input(jsonl(line("a")), max_bytes=10, max_lines=5)
    with pytest.raises(b.BatchInputError, match="line 3: more than 2 requests"):
        b.parse_input(jsonl(line("a"), line("b"), line("c")), max_bytes=10_000, max_lines=2)
    with pytest.raises(b.BatchInputError, match="no requests"):
        b.parse_input(b"\n\n", **LIMITS)


def test_shards_cover_every_line_once_by_reference() -> None:
    data = jsonl(*(line(f"r{i}") for i in range(7)))
    lines = b.parse_input(data, **LIMITS)
    shards = b.plan_shards(lines, 3)
    assert [(s.first_line, s.last_line) for s in shards] == [(1, 3), (4, 6), (7, 7)]
    ids = [
        req["custom_id"] for s in shards for _, req in b.lines_of_shard(data[s.start : s.end], s)
    ]
    assert ids == [f"r{i}" for i in range(7)]


def test_merge_keeps_one_record_per_line_and_accounts_for_lines_that_never_ran() -> None:
    lines = b.parse_input(jsonl(line("a"), line("b"), line("c")), **LIMITS)
    results = [
        b.result_record(1, "a", "x1", 200, {"ok": 1}),
        b.result_record(1, "a", "x2", 200, {"ok": 2}),  # a redelivered duplicate
        b.result_record(2, "b", "x3", 400, {"error": "bad"}),
    ]
    merged = b.merge("batch_1", lines, results, "batch_cancelled")
    out = [json.loads(x) for x in merged.output.splitlines()]
    err = [json.loads(x) for x in merged.errors.splitlines()]
    assert [r["custom_id"] for r in out] == ["a"] and out[0]["response"]["body"] == {"ok": 1}
    assert [r["custom_id"] for r in err] == ["b", "c"]
    assert err[1]["error"]["code"] == "batch_cancelled" and err[1]["response"] is None
    assert merged.counts == b.RequestCounts(total=3, completed=1, failed=2)


def _batch(**kw: Any) -> b.Batch:
    base = b.Batch(
        "batch_1",
        "default",
        "/v1/completions",
        "in",
        created_at=0.0,
        expires_at=100.0,
        status=b.Status.IN_PROGRESS,
        shards=(b.Shard(0, 1, 1, 0, 10), b.Shard(1, 2, 2, 10, 20)),
    )
    return b.Batch(**{**base.__dict__, **kw})


def test_states_in_progress_to_completed() -> None:
    batch = _batch()
    assert b.advance(batch, 1, 10.0) == batch
    final = b.advance(batch, 2, 10.0)
    assert final.status is b.Status.FINALIZING
    done = b.finish(final, b.RequestCounts(2, 2, 0), 11.0)
    assert done.status is b.Status.COMPLETED and done.request_counts.completed == 2
    assert b.to_openai(done)["request_counts"] == {"total": 2, "completed": 2, "failed": 0}


def test_the_completion_window_expires_a_batch() -> None:
    late = b.advance(_batch(), 1, 100.0)
    assert late.status is b.Status.FINALIZING
    assert b.finish(late, b.RequestCounts(2, 1, 1), 101.0).status is b.Status.EXPIRED
    assert b.missing_code(late) == "batch_expired"


def test_cancel_then_finish_is_cancelled_and_terminal_states_stay() -> None:
    cancelling = b.cancel(_batch(), 5.0)
    assert (
        cancelling.status is b.Status.CANCELLING and b.missing_code(cancelling) == "batch_cancelled"
    )
    cancelled = b.finish(cancelling, b.RequestCounts(2, 0, 2), 6.0)
    assert cancelled.status is b.Status.CANCELLED
    assert b.cancel(cancelled, 7.0) == cancelled
    assert b.advance(cancelled, 2, 8.0) == cancelled


def test_only_the_24h_completion_window_is_accepted() -> None:
    assert b.completion_window_s("24h") == 86400
    with pytest.raises(b.BatchInputError, match="completion_window"):
        b.completion_window_s("1h")


def test_a_huge_batch_keeps_its_shard_list_bounded() -> None:
    lines = [
        b.InputLine(i, f"c{i}", "/v1/completions", {}, i * 10, i * 10 + 10) for i in range(1, 5001)
    ]
    shards = b.plan_shards(lines, 1)
    assert len(shards) <= b.MAX_SHARDS
    assert sum(s.last_line - s.first_line + 1 for s in shards) == 5000


def test_metadata_follows_openais_limits() -> None:
    assert b.check_metadata({"job": "nightly"}) == {"job": "nightly"}
    with pytest.raises(b.BatchInputError, match="at most 16 pairs"):
        b.check_metadata({str(i): "x" for i in range(17)})
    with pytest.raises(b.BatchInputError, match="printable"):
        b.check_metadata({"k": "\ud800"})


def test_the_pool_is_the_one_serving_every_lines_model() -> None:
    pools = {"m": "gpu", "n": "gpu", "e": "cpu"}
    parse = lambda *ls: b.parse_input(jsonl(*ls), **LIMITS)  # noqa: E731
    assert b.pool_by_model(parse(line("a"), line("b")), pools) == "gpu"
    other = line("b", body={"model": "e", "messages": []})
    with pytest.raises(b.BatchInputError, match=r"^line 3: model 'e' is served by pool 'cpu'"):
        b.pool_by_model(parse(line("a"), "", other), pools)
    with pytest.raises(b.BatchInputError, match=r"^line 2: model 'x' is not served"):
        b.pool_by_model(parse(line("a"), line("b", body={"model": "x"})), pools)
    with pytest.raises(b.BatchInputError, match=r"^line 1: body.model is required"):
        b.pool_by_model(parse(line("a", body={})), pools)


def test_the_batch_object_names_files_readable_by_id() -> None:
    done = b.finish(b.advance(_batch(), 2, 10.0), b.RequestCounts(2, 2, 0), 11.0)
    done = b.Batch(**{**done.__dict__, "output_key": "o", "error_key": "e"})
    doc = b.to_openai(done)
    assert doc["input_file_id"] == f"file-{done.id}-input"
    assert (doc["output_file_id"], doc["error_file_id"]) == (
        f"file-{done.id}-output",
        f"file-{done.id}-errors",
    )
    uploaded = b.to_openai(b.Batch(**{**done.__dict__, "input_file": "file-" + "a" * 32}))
    assert uploaded["input_file_id"] == "file-" + "a" * 32
    assert b.to_openai(_batch())["output_file_id"] is None
