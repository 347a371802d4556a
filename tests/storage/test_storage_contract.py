"""The Storage port's contract, run against the local directory and Cloud Storage."""

from __future__ import annotations

from typing import Any

import pytest


def test_put_then_get_returns_the_bytes(storage: Any) -> None:
    data = "line one\nline two \u00e9\n".encode() + bytes(range(256))
    storage.put("batches/b1/input.jsonl", data)
    assert storage.get("batches/b1/input.jsonl") == data
    assert storage.size("batches/b1/input.jsonl") == len(data)


def test_missing_object_is_none(storage: Any) -> None:
    assert storage.get("nothing/here") is None
    assert storage.size("nothing/here") is None
    storage.delete("nothing/here")  # absent is fine


def test_byte_ranges_are_half_open(storage: Any) -> None:
    storage.put("r", b"0123456789")
    assert storage.get("r", 2, 5) == b"234"
    assert storage.get("r", 7) == b"789"
    assert storage.get("r", 0, 10) == b"0123456789"
    assert storage.get("r", 4, 4) == b""


def test_put_replaces_the_whole_object(storage: Any) -> None:
    storage.put("k", b"a longer first version")
    storage.put("k", b"second")
    assert storage.get("k") == b"second"
    assert storage.size("k") == 6


def test_list_by_prefix_sorted_and_delete(storage: Any) -> None:
    for key in ("b/2/out", "b/1/out", "b/1/err", "c/1"):
        storage.put(key, b".")
    assert storage.list("b/") == ["b/1/err", "b/1/out", "b/2/out"]
    assert storage.list("b/1/") == ["b/1/err", "b/1/out"]
    assert storage.list("b/1/e") == ["b/1/err"]
    storage.delete("b/1/err")
    assert storage.list("b/") == ["b/1/out", "b/2/out"]
    assert storage.list("zzz/") == []
    assert storage.list("../") == [] and storage.list("b/../") == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/\x00", ".tmp-x"])
def test_invalid_keys_are_refused(storage: Any, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put(key, b"x")


def test_a_streamed_write_appears_whole_and_only_when_it_ends(storage: Any) -> None:
    """Storage.writer (the finalize's outputs): larger than one upload chunk (1 MiB), and
    nothing is left behind by a write that raises."""
    piece = b"0123456789abcdef" * 4096  # 64 KiB
    with storage.writer("out/big.jsonl") as f:
        for _ in range(40):  # 2.5 MiB: three resumable chunks on Cloud Storage
            f.write(piece)
        assert storage.size("out/big.jsonl") is None  # not there until the block ends
    assert storage.size("out/big.jsonl") == 40 * len(piece)
    assert storage.get("out/big.jsonl", 0, 16) == piece[:16]
    with pytest.raises(RuntimeError), storage.writer("out/broken.jsonl") as f:
        f.write(piece)
        raise RuntimeError("the finalize died")
    assert storage.size("out/broken.jsonl") is None
