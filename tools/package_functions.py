"""Build the Cloud Functions source archive (build/function-source.zip).

The archive holds, at its root:
- ``main.py``: the entry points (functions/main.py);
- ``yoyo_control/``: the package (shared/yoyo_control), vendored so the functions
  import exactly the code that was tested;
- ``requirements.txt``: the runtime dependencies of pyproject.toml's
  ``[project] dependencies``, each pinned (==) to the version installed in the venv
  running this script, so Cloud Build installs what was tested.

The archive is deterministic: sorted entries, fixed timestamps and permissions, no
caches. The same tree gives the same bytes, so Terraform (which names the uploaded
object by its hash) redeploys only when something changed.

Usage: python tools/package_functions.py [--output build/function-source.zip]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o644 << 16
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


class PackagingError(Exception):
    """The archive cannot be built (missing file, dependency not installed)."""


def runtime_requirements(pyproject: Path) -> list[str]:
    """Pinned requirement lines for pyproject's [project] dependencies, sorted by name."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    lines = []
    for spec in project.get("dependencies", []):
        match = _NAME.match(spec)
        if match is None:
            raise PackagingError(f"cannot read the dependency {spec!r} in {pyproject}")
        name, extras = match.group(1), match.group(2) or ""
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise PackagingError(
                f"{name} is not installed in {sys.prefix}: run `make install` first"
            ) from None
        _check_specifier(spec, name, version)
        lines.append(f"{name}{extras}=={version}")
    return sorted(lines, key=str.lower)


def _check_specifier(spec: str, name: str, version: str) -> None:
    """Refuse to pin a version pyproject does not allow (when packaging can tell)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging is optional here; pip usually brings it
        return
    requirement = Requirement(spec)
    if not requirement.specifier.contains(version, prereleases=True):
        raise PackagingError(
            f"installed {name} {version} does not satisfy {spec!r}: run `make install`"
        )


def package_files(package_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of every file of the package, caches excluded."""
    if not (package_dir / "__init__.py").is_file():
        raise PackagingError(f"{package_dir} is not a Python package")
    files = []
    for path in package_dir.rglob("*"):
        relative = path.relative_to(package_dir)
        if not path.is_file() or SKIP_DIRS.intersection(relative.parts):
            continue
        if path.suffix in SKIP_SUFFIXES:
            continue
        files.append((f"{package_dir.name}/{relative.as_posix()}", path))
    return files


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.external_attr = FILE_MODE
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, whatever machine builds it
    return info


def write_archive(output: Path, entries: Iterable[tuple[str, bytes]]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, data in sorted(entries):
            archive.writestr(_entry(name), data, compresslevel=9)
    tmp.replace(output)


def build(output: Path, main: Path, package: Path, pyproject: Path) -> list[str]:
    """Write the archive; return the names it holds."""
    if not main.is_file():
        raise PackagingError(f"{main} does not exist")
    requirements = "".join(f"{line}\n" for line in runtime_requirements(pyproject))
    entries = [("main.py", main.read_bytes()), ("requirements.txt", requirements.encode())]
    entries += [(name, path.read_bytes()) for name, path in package_files(package)]
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise PackagingError("duplicate names in the archive")
    write_archive(output, entries)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "build" / "function-source.zip")
    parser.add_argument("--main", type=Path, default=REPO / "functions" / "main.py")
    parser.add_argument("--package", type=Path, default=REPO / "shared" / "yoyo_control")
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml")
    args = parser.parse_args(argv)
    try:
        names = build(args.output, args.main, args.package, args.pyproject)
    except PackagingError as error:
        print(f"package_functions: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({len(names)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
