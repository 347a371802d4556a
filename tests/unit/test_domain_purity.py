"""The domain imports nothing that does I/O or reads the clock (DESIGN.md §5)."""

from __future__ import annotations

import ast
from pathlib import Path

import yoyo_control.domain as domain

FORBIDDEN = {
    "google",
    "flask",
    "sqlite3",
    "time",
    "random",
    "os",
    "socket",
    "requests",
    "subprocess",
    "threading",
    "urllib",
    "http",
    "functions_framework",
}


def test_domain_imports_no_io_clock_or_randomness() -> None:
    folder = Path(domain.__file__).parent
    offenders = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {m}" for m in mods if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(folder.glob("*.py"))) >= 5  # the check really looked at the domain
