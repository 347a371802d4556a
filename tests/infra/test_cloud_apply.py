"""The whole root module, applied offline: ``terraform test`` with ``mock_provider``.

tools/tfcheck serves the google providers' schema; mock providers let Terraform plan and
apply every resource of terraform/ without Google (computed attributes get made-up
values), so expressions, counts, for_each keys, conditions and validations are
evaluated as Terraform evaluates them, not only parsed. The module is copied with
vm/startup.sh (which it reads) into a temporary directory; nothing is written into the
repository. The runs are cloud_apply.tftest.hcl beside this file; what each
assertion holds is cited in terraform/ and in test_cloud_path.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RUNS = Path(__file__).with_name("cloud_apply.tftest.hcl")


def test_the_root_module_applies_against_mock_providers(tmp_path: Path) -> None:
    from tools.tfcheck.runner import test as terraform_test

    shutil.copytree(REPO / "terraform", tmp_path / "terraform")
    (tmp_path / "vm").mkdir()
    shutil.copy(REPO / "vm" / "startup.sh", tmp_path / "vm" / "startup.sh")
    archive = tmp_path / "function-source.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: only its md5 is read
    tests = tmp_path / "terraform" / "tests"
    tests.mkdir()
    (tests / "cloud.tftest.hcl").write_text(
        RUNS.read_text().replace("FUNCTION_SOURCE_ZIP", str(archive))
    )

    statuses, output = terraform_test(tmp_path / "terraform")
    expected = {"defaults", "invoker_check_disabled", "existing_network"}
    expected.add("per_pool_objects_and_two_pools")
    assert statuses == dict.fromkeys(expected, "pass"), output[-6000:]
