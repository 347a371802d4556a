"""tools/systemd_verify.sh: systemd-analyze verify in a throw-away root; any output fails."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Tool = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).resolve().parents[2]
VERIFY = str(REPO / "tools" / "systemd_verify.sh")
UNITS = sorted((REPO / "vm").glob("*.service"))

GOOD = """\
[Unit]
Description=test unit
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStartPre=-/opt/test/bin/prepare --fast
ExecStart=/opt/test/venv/bin/python -m test.agent
ExecStop=/bin/kill -TERM $MAINPID
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def test_repo_units_verify_cleanly(tool: Tool) -> None:
    if not UNITS:
        pytest.skip("vm/ has no *.service units yet")
    proc = tool([VERIFY, *map(str, UNITS)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok") == len(UNITS)


def test_good_unit_with_missing_programs_passes(tool: Tool, tmp_path: Path) -> None:
    unit = tmp_path / "good.service"
    unit.write_text(GOOD)
    proc = tool([VERIFY, str(unit)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not Path("/opt/test").exists()  # stubs live only in the temporary root


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("Restart=on-failure", "Restart=on-failure\nRestartEvery=5"),
            "Unknown key 'RestartEvery' in section [Service]",
        ),
        (
            GOOD.replace("ExecStart=/opt/test/venv/bin/python", "ExecStart=venv/bin/python"),
            "Neither a valid executable name nor an absolute path: venv/bin/python",
        ),
        (GOOD.replace("[Install]", "[Instal]"), "Unknown section 'Instal'"),
        (GOOD.replace("Type=simple", "Type=sometimes"), "Failed to parse service type"),
    ],
    ids=["unknown-directive", "relative-exec-path", "unknown-section", "bad-value"],
)
def test_broken_unit_fails(tool: Tool, tmp_path: Path, broken: str, expected: str) -> None:
    unit = tmp_path / "broken.service"
    unit.write_text(broken)
    proc = tool([VERIFY, str(unit)], timeout=120)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout
    assert expected in proc.stdout, proc.stdout
    assert str(unit) in proc.stdout  # messages name the real file, not the temp root
