"""Any bytes: a batch file is accepted or refused with a line number; a work message is a
shard reference or a ValueError saying why. Nothing else escapes (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from yoyo_control.batch import work
from yoyo_control.domain import batch as b

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_line_dicts = st.fixed_dictionaries(
    {
        "custom_id": st.text(max_size=20) | st.integers(),
        "method": st.sampled_from(["POST", "GET", ""]),
        "url": st.sampled_from([*b.ENDPOINTS, "/v1/x", ""]),
        "body": _json,
    },
    optional={"extra": _json},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80) | _line_dicts.map(lambda d: json.dumps(d).encode())))
def test_any_file_is_accepted_whole_or_refused_with_its_line(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    try:
        parsed = b.parse_input(data, max_bytes=10_000, max_lines=50)
    except b.BatchInputError as exc:
        assert 0 <= exc.line <= len(data.splitlines()) + 1 and exc.reason
        return
    assert len({x.custom_id for x in parsed}) == len(parsed) and len({x.url for x in parsed}) == 1
    for line in parsed:  # every byte range holds its own line
        assert json.loads(data[line.start : line.end])["custom_id"] == line.custom_id


_shard = st.fixed_dictionaries(
    {
        "kind": st.sampled_from([work.KIND, "other"]),
        "v": st.sampled_from([1, 2, "1"]),
        "batch_id": st.sampled_from(["batch_" + "a" * 32, "batch_x", ""]),
        "pool": st.text(max_size=8),
        "endpoint": st.sampled_from([*b.ENDPOINTS, "/v1/x"]),
        "input": st.sampled_from([work.input_key("batch_" + "a" * 32), "../etc/passwd"]),
        "shard": st.integers(),
        "first_line": st.integers(),
        "last_line": st.integers(),
        "start": st.integers() | st.floats() | st.booleans(),
        "end": st.integers(),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | _shard.map(lambda d: json.dumps(d).encode()))
def test_any_work_message_is_a_reference_or_a_reason(data: bytes) -> None:
    try:
        job = work.decode_shard(data, {"pool": "p"})
    except ValueError as exc:
        assert str(exc)
        return
    assert job.pool == "p" and job.input == work.input_key(job.batch_id)
    assert 0 <= job.first_line <= job.last_line and 0 <= job.start < job.end
