"""Who may lean on what (issue 13, item 5; issue 26): the drawing of the house, checked.

The package's rooms are its subpackages and top-level modules (``__main__.py`` files are
entry points, like functions/main.py: they may reach a root). Rules:
- the backend is chosen in bootstrap.py alone; yoyoctl and the status page reach Google's
  clients and the local stack only through what the roots build;
- ``agent/`` and ``worker/`` (the VM) import nothing from ``local/``; nothing outside
  ``local/`` and its root (laptop.py) imports ``local/``;
- no circle among the rooms, and no arrow back up: only a root (or an entry point)
  imports a root, and a root only roots below it (cli → bootstrap → laptop; machine
  alone; cli names laptop's operator type for type checking only);
- each package's ``__init__`` names its modules.

``python tests/unit/test_layers.py`` prints the drawing (rooms, arrows, circles); the same
graph is what these tests check. Imports for type checking only count as arrows too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import yoyo_control

PACKAGE = Path(yoyo_control.__file__).parent
OPERATOR_SIDE = ["cli", "statuspage.py", "statusview.py"]
# The composition roots, highest first: a root may import only roots after it.
ROOTS = ["cli", "bootstrap", "laptop", "machine"]
VM_SIDE = ["agent", "worker"]


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _runtime_imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Every module imported (absolute names) other than under ``if TYPE_CHECKING:``
    (its ``else:`` branch runs, so it counts)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            branch = ast.Module(body=node.orelse, type_ignores=[])
            yield from _runtime_imports(branch, package)
            continue
        yield from _imports_of(node, package)
        yield from _runtime_imports(node, package)


def _all_imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Every module imported (absolute names), at any depth, type checking included."""
    for node in ast.walk(tree):
        yield from _imports_of(node, package)


def _imports_of(node: ast.AST, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            base = f"{parent}.{base}" if base else parent
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _package(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).parts[:-1])


def _room(module: str) -> str | None:
    """``yoyo_control.agent.loop`` → ``agent``; ``yoyo_control.bootstrap.x`` → ``bootstrap``."""
    parts = module.split(".")
    if parts[0] != "yoyo_control" or len(parts) < 2:
        return None
    return parts[1]


def _room_of(path: Path) -> str | None:
    """The room a file is in; None for the package's own ``__init__``; entry points
    (``__main__.py``) are rooms of their own."""
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__init__.py",):
        return None
    if rel.name == "__main__.py":
        return ".".join(rel.with_suffix("").parts)
    return rel.parts[0].removesuffix(".py")


def graph() -> dict[str, set[str]]:
    """Room → the rooms it imports."""
    arrows: dict[str, set[str]] = {}
    for path in _files("."):
        room = _room_of(path)
        if room is None:
            continue
        arrows.setdefault(room, set())
        for name in _all_imports(ast.parse(path.read_text()), _package(path)):
            target = _room(name)
            if target is not None and target != room and target != "__init__":
                arrows[room].add(target)
    return arrows


def circles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one room (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(room: str) -> None:
        index[room] = low[room] = len(index)
        stack.append(room)
        for other in sorted(arrows.get(room, ())):
            if other not in index:
                visit(other)
                low[room] = min(low[room], low[other])
            elif other in stack:
                low[room] = min(low[room], index[other])
        if low[room] == index[room]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == room:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for room in sorted(arrows):
        if room not in index:
            visit(room)
    return found


def arrows_back_up(arrows: dict[str, set[str]]) -> list[str]:
    """Arrows into a root from anything but a higher root or an entry point."""
    bad = []
    for room, targets in sorted(arrows.items()):
        if "__main__" in room:
            continue
        for target in sorted(targets & set(ROOTS)):
            if room not in ROOTS or ROOTS.index(room) > ROOTS.index(target):
                bad.append(f"{room} -> {target}")
    return bad


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
            if name.startswith(("google.", "yoyo_control.local.", "yoyo_control.laptop")):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []
    assert len(_files(*OPERATOR_SIDE)) >= 5  # the check really looked


def test_the_vm_side_imports_nothing_from_the_local_stack() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in _files(*VM_SIDE, "machine.py")
        for name in _all_imports(ast.parse(path.read_text()), _package(path))
        if name.startswith("yoyo_control.local")
    ]
    assert offenders == []
    assert len(_files(*VM_SIDE)) >= 10  # the check really looked


def test_only_the_local_root_imports_the_local_stack() -> None:
    importers = sorted(
        room for room, targets in graph().items() if "local" in targets and room != "local"
    )
    assert importers == ["laptop"]


def test_the_house_has_no_circle_and_no_arrow_back_up() -> None:
    arrows = graph()
    assert len(arrows) >= 25  # every room was drawn
    assert circles(arrows) == []
    assert arrows_back_up(arrows) == []


def test_the_drawing_has_the_arrows_the_roots_are_made_of() -> None:
    # Without these, an import reader that saw nothing would pass every check above.
    arrows = graph()
    assert {"local"} <= arrows["laptop"]
    assert {"laptop", "service", "gateway"} <= arrows["bootstrap"]
    assert {"agent", "worker"} <= arrows["machine"]
    assert {"bootstrap"} <= arrows["cli"]
    assert {"machine"} <= arrows["worker.__main__"]  # `from ..machine import` in a function
    assert sum(map(len, arrows.values())) >= 100


def test_imports_are_read_as_python_resolves_them() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..local import vm\n"
        "from . import context\n"
        "if TYPE_CHECKING:\n"
        "    import google.cloud.compute\n"
        "else:\n"
        "    import yoyo_control.laptop\n"
    )
    tree = ast.parse(source)
    runtime = set(_runtime_imports(tree, "yoyo_control.cli"))
    assert {"yoyo_control.local.vm", "yoyo_control.cli.context", "yoyo_control.laptop"} <= runtime
    assert "google.cloud.compute" not in runtime
    assert "google.cloud.compute" in set(_all_imports(tree, "yoyo_control.cli"))


def test_the_checks_see_a_circle_and_an_arrow_back_up() -> None:
    # The drawing before issue 26: bootstrap → local → bootstrap.
    before = {"bootstrap": {"local", "service"}, "local": {"bootstrap"}, "service": set()}
    assert circles(before) == [["bootstrap", "local"]]
    assert arrows_back_up(before) == ["local -> bootstrap"]


def test_google_is_imported_outside_adapters_only_where_the_architecture_says() -> None:
    # docs/architecture.md named adapters/, agent/identity.py and worker/queue.py; the
    # event decoding (messages.py) and the local stack's envelope import google.* too.
    outside = sorted(
        str(path.relative_to(PACKAGE))
        for path in _files(".")
        if path.relative_to(PACKAGE).parts[0] != "adapters"
        and any(
            name.startswith("google.")
            for name in _all_imports(ast.parse(path.read_text()), _package(path))
        )
    )
    assert outside == [
        "agent/identity.py",
        "local/envelope.py",
        "messages.py",
        "worker/queue.py",
    ]
    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    start = text.index("`google.*` is\n")
    paragraph = text[start : text.index("\n- ", start)]
    assert [m for m in outside if m not in paragraph] == []


def test_every_package_names_its_modules() -> None:
    unnamed = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        for module in sorted(init.parent.glob("*.py")):
            if module.name != "__init__.py" and f"``{module.stem}``" not in doc:
                unnamed.append(f"{init.parent.name}/{module.name}")
    assert unnamed == []


if __name__ == "__main__":
    drawn = graph()
    print(f"{len(drawn)} rooms, {sum(len(t) for t in drawn.values())} arrows")
    for name in sorted(drawn):
        print(f"  {name} -> {' '.join(sorted(drawn[name])) or '(nothing)'}")
    print(f"circles: {circles(drawn) or 'none'}")
    print(f"arrows back up: {arrows_back_up(drawn) or 'none'}")
    sys.exit(1 if circles(drawn) or arrows_back_up(drawn) else 0)
