"""Who may lean on what (issue 13, item 5): the backend is chosen in bootstrap.py alone;
yoyoctl and the status page reach Google's clients and the local stack only through what
bootstrap builds (imports for type checking only are allowed)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import yoyo_control

PACKAGE = Path(yoyo_control.__file__).parent
OPERATOR_SIDE = ["cli", "statuspage.py", "statusview.py"]


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _runtime_imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Every module imported (absolute names) other than under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            yield from (imp for child in node.orelse for imp in _runtime_imports(child, package))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from _runtime_imports(node, package)


def _package(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).parts[:-1])


def test_only_bootstrap_switches_on_the_backend() -> None:
    offenders = []
    for path in _files("."):
        if path.name in ("bootstrap.py", "config.py") and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(side, ast.Attribute) and side.attr == "backend"
                for side in [node.left, *node.comparators]
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_yoyoctl_and_the_status_page_use_ports_not_clients_or_the_local_stack() -> None:
    offenders = []
    for path in _files(*OPERATOR_SIDE):
        for name in _runtime_imports(ast.parse(path.read_text()), _package(path)):
            if name.startswith(("google.", "yoyo_control.local.")):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []
    assert len(_files(*OPERATOR_SIDE)) >= 5  # the check really looked
