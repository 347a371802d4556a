"""Write one generated section of bench/RESULTS.md, leaving the rest of the file alone.

A section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; a script
replaces only its own section (appending it if missing), so hand-written prose around
the tables survives every ``make bench``. Every script's command line starts from
``parser`` (``--write``) and ends in ``report``.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except OSError:
        rev = "?"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}, commit {rev or '?'} (+ working tree), Python {platform.python_version()}, {cpu}"
    )


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    path.write_text(text)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench script's command line (described by its docstring's first line), with
    ``--write``."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    return p


def report(name: str, body: str, write: bool) -> int:
    """Print section ``name``, and with ``--write`` put it in RESULTS.md; the exit code."""
    print(body)
    if write:
        write_section(name, body)
    return 0
