"""What a real deployment needs that offline `terraform validate` cannot see (issue 16).

Each test names the failure it prevents. The files are `terraform fmt` formatted, so
blocks are found by their unindented header and closing brace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
# The first google provider release that creates an instance with
# desired_status = "TERMINATED" (GoogleCloudPlatform/magic-modules#11902, 6.10.0).
DESIRED_STATUS_TERMINATED_SINCE = (6, 10)


def tf_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)


def blocks(path: Path, header: str) -> list[str]:
    """Bodies of the top-level blocks whose header line starts with ``header``."""
    text = path.read_text(encoding="utf-8")
    pattern = rf"^{re.escape(header)}[^\n]*\{{\n(.*?)^\}}"
    return re.findall(pattern, text, re.MULTILINE | re.DOTALL)


def nested(body: str, name: str) -> str:
    match = re.search(rf"^( +){name} (?:= )?\{{\n(.*?)^\1\}}", body, re.MULTILINE | re.DOTALL)
    assert match, f"no {name} = {{ ... }}"
    return match.group(2)


def resource(path: Path, kind: str, name: str) -> str:
    (body,) = blocks(path, f'resource "{kind}" "{name}"')
    return body


@pytest.mark.parametrize("versions", sorted(TF.rglob("versions.tf")), ids=str)
def test_the_provider_floor_can_create_stopped_instances(versions: Path) -> None:
    (terraform,) = blocks(versions, "terraform")
    required = nested(terraform, "required_providers")
    assert "google = {" in required
    for name in ("google", "google-beta"):
        if f"{name} = {{" not in required:
            continue
        provider = nested(required, re.escape(name))
        constraint = re.search(r'version\s*=\s*"([^"]+)"', provider)
        assert constraint, f"{versions}: {name} has no version constraint"
        floor = re.search(r">=\s*(\d+)\.(\d+)", constraint.group(1))
        assert floor, f"{versions}: {name} {constraint.group(1)!r} has no lower bound"
        assert (int(floor.group(1)), int(floor.group(2))) >= DESIRED_STATUS_TERMINATED_SINCE


def test_the_pool_vms_are_created_stopped() -> None:
    vm = resource(TF / "modules" / "pool" / "main.tf", "google_compute_instance", "vm")
    assert re.search(r'^  desired_status\s*=\s*"TERMINATED"$', vm, re.MULTILINE)


def provider_blocks() -> dict[tuple[Path, str], str]:
    found = {}
    for path in tf_files():
        for name in ("google", "google-beta"):
            for body in blocks(path, f'provider "{name}"'):
                found[(path, name)] = body
    return found


def test_user_credentials_get_a_quota_project_for_budgets() -> None:
    configured = provider_blocks()
    assert {name for _, name in configured} == {"google", "google-beta"}
    for (path, name), body in configured.items():
        assert re.search(r"^  user_project_override\s*=\s*true$", body, re.MULTILINE), (path, name)
        billing = re.search(r"^  billing_project\s*=\s*(\S+)$", body, re.MULTILINE)
        assert billing and billing.group(1) not in ("null", '""'), (path, name)


def test_service_agents_are_created_before_they_are_granted_roles() -> None:
    iam = TF / "iam.tf"
    text = iam.read_text(encoding="utf-8")
    assert "@gcp-sa-pubsub." not in text and "@gcp-sa-cloudscheduler." not in text
    identity = resource(iam, "google_project_service_identity", "agent")
    assert re.search(r"^  provider\s*=\s*google-beta$", identity, re.MULTILINE)
    assert '"pubsub.googleapis.com"' in identity and '"cloudscheduler.googleapis.com"' in identity
    (locals_,) = [b for b in blocks(iam, "locals") if "pubsub_agent" in b]
    for agent, service in (("pubsub_agent", "pubsub"), ("scheduler_agent", "cloudscheduler")):
        expected = f'google_project_service_identity.agent["{service}.googleapis.com"].member'
        assert re.search(rf"^  {agent}\s*=\s*{re.escape(expected)}$", locals_, re.MULTILINE)


def test_an_existing_firestore_database_must_name_its_location() -> None:
    function = resource(TF / "functions.tf", "google_cloudfunctions2_function", "kill_switch")
    assert re.search(
        r"^    trigger_region\s*=\s*local\.firestore_location$", function, re.MULTILINE
    )
    condition = re.search(r"^      condition\s*=\s*(.+)$", function, re.MULTILINE)
    assert condition
    assert condition.group(1) == ("var.create_firestore_database || var.firestore_location != null")


def test_the_vms_read_only_the_control_planes_database() -> None:
    """Each pool's account (pool_iam.tf) reads Firestore in the control plane's database
    only; the image builder's account (iam.tf) has no Firestore role at all."""
    grants = resource(TF / "iam.tf", "google_project_iam_member", "vm_project")
    assert "datastore" not in grants
    pools = TF / "pool_iam.tf"
    for name in ("pool_logs", "pool_metrics"):
        assert "datastore" not in resource(pools, "google_project_iam_member", name)
    reader = resource(pools, "google_project_iam_member", "pool_firestore_reader")
    assert 'role    = "roles/datastore.viewer"' in reader
    expression = re.search(r"^    expression\s*=\s*(.+)$", reader, re.MULTILINE)
    assert expression and expression.group(1) == (
        r'"resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""'
    )


def test_project_wide_compute_access_is_only_list_and_operations() -> None:
    iam = TF / "iam.tf"
    role = resource(iam, "google_project_iam_custom_role", "control_plane")
    permissions = re.findall(r'"(compute\.[a-zA-Z.]+)"', role)
    assert sorted(permissions) == ["compute.instances.list", "compute.zoneOperations.get"]
    functions = resource(iam, "google_project_iam_member", "functions_project")
    assert "roles/compute" not in functions  # get/start/stop are granted per instance


def test_a_new_max_session_does_not_replace_the_vms() -> None:
    vm = resource(TF / "modules" / "pool" / "main.tf", "google_compute_instance", "vm")
    ignored = re.search(r"^    ignore_changes\s*=\s*\[(.*)\]$", vm, re.MULTILINE)
    assert ignored
    assert {i.strip() for i in ignored.group(1).split(",")} >= {
        "desired_status",
        "scheduling[0].max_run_duration",
    }
