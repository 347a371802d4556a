"""Filesystem locations used by tfcheck.

Invariants:
- Everything generated lives under ``build_dir()`` (default ``<repo>/build/tfcheck``,
  override with ``TFCHECK_BUILD_DIR``); it is never committed and may be deleted at any
  time: every artefact there is regenerated on demand.
- Cache files are named after a content key (package version + source hash), so a stale
  file is never read after the inputs change; writers publish with an atomic rename.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent


def build_dir() -> Path:
    path = Path(os.environ.get("TFCHECK_BUILD_DIR") or REPO_ROOT / "build" / "tfcheck")
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_hash(*paths: Path) -> str:
    """Short digest of the given files (or all files below given directories)."""
    digest = hashlib.sha256()
    for base in paths:
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for path in files:
            if path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(base.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
