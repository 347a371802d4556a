"""tools/checkov.sh: pinned checkov, in its own venv, over the Terraform code.

The first run builds .venv-checkov from PyPI (about a minute); later runs reuse it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Tool = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).resolve().parents[2]
CHECKOV = str(REPO / "tools" / "checkov.sh")
TF_ROOT = REPO / "terraform"


def test_repo_terraform_passes_checkov(tool: Tool, timings: dict[str, float]) -> None:
    if not (TF_ROOT.is_dir() and any(TF_ROOT.rglob("*.tf"))):
        pytest.skip("terraform/ has no configuration yet")
    import time

    started = time.monotonic()
    proc = tool([CHECKOV, str(TF_ROOT)], timeout=900)
    timings["checkov terraform/ (incl. venv build if missing)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Failed checks: 0" in proc.stdout


def test_checkov_fails_on_a_failed_check(tool: Tool, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "google_storage_bucket" "open" {\n'
        '  name     = "yoyo-open"\n'
        '  location = "EU"\n'
        "}\n"
    )
    proc = tool([CHECKOV, str(tmp_path)], timeout=900)
    assert proc.returncode != 0
    # uniform bucket-level access is off: a check every GCS bucket gets
    assert "CKV_GCP_29" in proc.stdout
    assert "FAILED for resource: google_storage_bucket.open" in proc.stdout


def test_checkov_stays_out_of_the_main_venv() -> None:
    import importlib.util

    assert importlib.util.find_spec("checkov") is None
