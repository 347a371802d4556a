"""shellcheck on every shell script in vm/ and tools/ (found by their #! line).

Debian's shellcheck is installed by ``make install`` (mk/infra.mk); without it these
tests skip with that reason. The discovery is checked too, so an empty list can never
pass for a clean one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHEBANG = re.compile(r"^#!\s*(/usr)?/bin/(env\s+)?(ba|da)?sh\b")

pytestmark = pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck not installed (make install installs Debian's shellcheck)",
)


def shell_scripts() -> list[Path]:
    scripts = []
    for folder in ("vm", "tools"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                with path.open("rb") as handle:
                    first = handle.readline().decode("utf-8", "replace")
                if SHEBANG.match(first):
                    scripts.append(path)
    return scripts


def shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["shellcheck", "--format=gcc", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_script_is_found() -> None:
    found = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {
        "vm/startup.sh",
        "vm/image/provision.sh",
        "vm/image/build-image.sh",
        "vm/bin/yoyo-fetch-weights",
        "tools/checkov.sh",
        "tools/systemd_verify.sh",
    } <= found


def test_every_script_is_shellcheck_clean() -> None:
    run = shellcheck(*shell_scripts())
    assert run.returncode == 0, run.stdout + run.stderr


def test_shellcheck_reports_a_real_mistake(tmp_path: Path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\nfor f in $(ls *.txt); do rm $f; done\n")
    run = shellcheck(script)
    assert run.returncode != 0
    assert "SC2045" in run.stdout  # iterating over ls output
