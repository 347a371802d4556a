"""Storage in a local directory: the embedded default behind the ``Storage`` port.

Invariants: an object is a file under ``root`` named by its key; ``put`` writes a
temporary file in the same directory, fsyncs it and renames it into place, so a reader
never sees half an object and a crash leaves either the old object or the new one; keys
that would escape ``root`` are refused with ValueError.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_TMP_PREFIX = ".tmp-"


def check_key(key: str) -> str:
    """``key`` if it is a valid object name, else ValueError (shared by both adapters)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    if "\x00" in key or len(key.encode("utf-8", "surrogatepass")) > 1024:
        raise ValueError(f"invalid storage key {key[:80]!r}")
    if any(p.startswith(_TMP_PREFIX) for p in parts):
        raise ValueError(f"invalid storage key {key!r}: {_TMP_PREFIX!r} is reserved")
    return key


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        if any(part in (".", "..") for part in prefix.split("/")):
            return keys  # no key has such a part
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        for dirpath, _, files in os.walk(folder):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
