"""``systemd-analyze verify`` for unit files that target another machine.

    python -m tools.systemd_verify vm/*.service      (or: tools/systemd_verify.sh ...)

The units name executables that exist only on the VM image (``/opt/yoyo/...``), so each
unit is verified inside a throw-away root (``--root``): the host's vendor units
(``sysinit.target``, ``network-online.target``, ...) are copied in, all given units go
to ``etc/systemd/system`` (so their cross-references resolve), and every absolute
``Exec*=`` program gets an executable stub.

Invariants:
- ANY output from systemd-analyze (stdout or stderr, warnings included) is a failure;
  exit status 0 means every unit verified silently.
- Stubs are created only for syntactically valid programs (absolute paths or bare
  names), so an invalid ``Exec*=`` path is still reported by systemd.
- Nothing outside the temporary root is created or modified; no generators run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXEC_KEYS = (
    "ExecCondition",
    "ExecStartPre",
    "ExecStart",
    "ExecStartPost",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
)
VENDOR_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system")
_EXEC_LINE = re.compile(rf"^\s*({'|'.join(EXEC_KEYS)})\s*=\s*(.*)$")
_PREFIX = re.compile(r"^[@\-:+!|]+")
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin")


def exec_programs(unit_text: str) -> list[str]:
    """Programs named by the unit's Exec*= lines (special prefixes removed)."""
    programs = []
    # join continuation lines first
    text = re.sub(r"\\\n", " ", unit_text)
    for line in text.splitlines():
        m = _EXEC_LINE.match(line)
        if not m or not m.group(2).strip():
            continue
        try:
            words = shlex.split(m.group(2), comments=False)
        except ValueError:
            continue  # let systemd report the quoting error
        if words:
            programs.append(_PREFIX.sub("", words[0]))
    return programs


def _stub(root: Path, program: str) -> None:
    if program.startswith("/"):
        targets = [root / program.lstrip("/")]
    elif program and "/" not in program:
        targets = [root / d.lstrip("/") / program for d in PATH_DIRS]
    else:
        return  # relative path with a slash: invalid, systemd must complain
    for target in targets:
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\nexit 0\n")
        target.chmod(0o755)


def build_root(root: Path, units: list[Path]) -> list[Path]:
    """Populate ``root``; return the in-root paths of ``units``."""
    vendor = root / "usr/lib/systemd/system"
    vendor.parent.mkdir(parents=True, exist_ok=True)
    for src in VENDOR_DIRS:
        if Path(src).is_dir() and not vendor.exists():
            shutil.copytree(src, vendor, symlinks=True)
    vendor.mkdir(parents=True, exist_ok=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True, exist_ok=True)
    placed = []
    for unit in units:
        target = etc / unit.name
        shutil.copyfile(unit, target)
        for program in exec_programs(unit.read_text()):
            _stub(root, program)
        placed.append(target)
    return placed


def verify(units: list[Path]) -> tuple[bool, str]:
    """(ok, combined output) for the given unit files."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return False, "systemd-analyze not found (Debian package: systemd)"
    missing = [str(u) for u in units if not u.is_file()]
    if missing:
        return False, "no such unit file: " + ", ".join(missing)
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        return False, "unit file names must be unique: " + ", ".join(names)
    reports = []
    with tempfile.TemporaryDirectory(prefix="systemd-verify-") as tmp:
        root = Path(tmp)
        placed = build_root(root, units)
        for original, target in zip(units, placed, strict=True):
            proc = subprocess.run(
                [tool, "verify", f"--root={root}", "--man=no", "--generators=no", str(target)],
                capture_output=True,
                text=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_COLOR": "0"},
                check=False,
            )
            out = (proc.stdout + proc.stderr).replace(str(target), str(original))
            out = out.replace(str(root), "<root>").strip()
            if out or proc.returncode != 0:
                reports.append(f"{original}: FAILED (exit {proc.returncode})\n{out}".rstrip())
            else:
                reports.append(f"{original}: ok")
    ok = all(r.endswith(": ok") for r in reports)
    return ok, "\n".join(reports)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    ok, report = verify([Path(a) for a in args])
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
