"""The deployment wires exactly the names the code uses (shared/yoyo_control/names.py).

Terraform is read with a deliberately small parser: the files are `terraform fmt`
formatted, so every top-level block starts with an unindented header line and ends
with an unindented "}". Expressions are resolved only as far as these checks need:
string literals, "${var.prefix}", local values, and each.key/each.value of a for_each
over a local map. Anything else fails loudly rather than passing by accident.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from yoyo_control import names

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "terraform"
VM_DIR = REPO / "vm"

_HEADER = re.compile(
    r'^(resource|data|module|locals|variable|output)(?:\s+"([^"]+)")?(?:\s+"([^"]+)")?\s*\{\s*$'
)


@dataclass(frozen=True)
class Block:
    kind: str
    labels: tuple[str, ...]
    body: str
    path: Path


def _blocks(path: Path) -> list[Block]:
    blocks, current, lines = [], None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if current is None:
            match = _HEADER.match(line)
            if match:
                current, lines = match, []
            continue
        if line == "}":
            kind, *labels = (g for g in current.groups() if g)
            blocks.append(Block(kind, tuple(labels), "\n".join(lines), path))
            current = None
        else:
            lines.append(line)
    assert current is None, f"{path}: unterminated block {current.group(0)!r} (run terraform fmt)"
    return blocks


@cache
def root_blocks() -> tuple[Block, ...]:
    return tuple(b for path in sorted(TF_ROOT.glob("*.tf")) for b in _blocks(path))


@cache
def all_tf_files() -> tuple[Path, ...]:
    return tuple(sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts))


def resources(kind: str) -> dict[str, Block]:
    return {b.labels[1]: b for b in root_blocks() if b.kind == "resource" and b.labels[0] == kind}


def _string_map(text: str) -> dict[str, str]:
    return dict(re.findall(r'^\s*([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"', text, re.MULTILINE))


@cache
def locals_() -> dict[str, object]:
    """Local values that are string literals or maps of string literals."""
    values: dict[str, object] = {}
    for block in root_blocks():
        if block.kind != "locals":
            continue
        lines = block.body.splitlines()
        i = 0
        while i < len(lines):
            scalar = re.match(r'^  ([a-z_][a-z0-9_]*)\s*=\s*"([^"$]*)"\s*(#.*)?$', lines[i])
            opened = re.match(r"^  ([a-z_][a-z0-9_]*)\s*=\s*\{\s*$", lines[i])
            if scalar:
                values[scalar.group(1)] = scalar.group(2)
            elif opened:
                end = lines.index("  }", i)
                entries = lines[i + 1 : end]
                if all(re.match(r'^\s+[a-z0-9_-]+\s*=\s*"[^"$]*"\s*$', e) for e in entries):
                    values[opened.group(1)] = _string_map("\n".join(entries))
                i = end
            i += 1
    return values


def variable_default(name: str) -> str:
    (block,) = [b for b in root_blocks() if b.kind == "variable" and b.labels == (name,)]
    match = re.search(r'^  default\s*=\s*"([^"]*)"', block.body, re.MULTILINE)
    assert match, f"variable {name} has no string default"
    return match.group(1)


def resolve(expr: str, each: tuple[str, str] | None = None) -> str:
    """Value of a simple string expression (literal, template, local, each.*)."""
    expr = expr.strip()
    if expr.startswith('"') and expr.endswith('"'):
        text = expr[1:-1]
    elif re.fullmatch(r"[a-z_.]+", expr):
        text = "${" + expr + "}"
    else:
        raise AssertionError(f"cannot resolve {expr!r}")

    def substitute(match: re.Match[str]) -> str:
        ref = match.group(1).strip()
        if ref == "var.prefix":
            return variable_default("prefix")
        if ref.startswith("local."):
            value = locals_().get(ref.removeprefix("local."))
            assert isinstance(value, str), f"{ref} is not a string local"
            return value
        if ref in ("each.key", "each.value") and each is not None:
            return each[0] if ref == "each.key" else each[1]
        raise AssertionError(f"cannot resolve ${{{ref}}} in {expr!r}")

    return re.sub(r"\$\{([^}]*)\}", substitute, text)


def attribute(body: str, name: str) -> str:
    matches = re.findall(rf"^\s*{name}\s*=\s*(.+?)\s*$", body, re.MULTILINE)
    assert len(matches) == 1, f"expected one {name} = ..., found {matches}"
    return matches[0]


def for_each_items(block: Block) -> list[tuple[str, str]] | None:
    """(key, value) pairs of a for_each over a local map; None without for_each."""
    match = re.search(r"^  for_each\s*=\s*(.+?)\s*$", block.body, re.MULTILINE)
    if not match:
        return None
    local = re.fullmatch(r"local\.([a-z_]+)", match.group(1))
    assert local, f"{block.labels}: for_each over {match.group(1)!r}, not a local map"
    value = locals_()[local.group(1)]
    assert isinstance(value, dict), f"for_each over local.{local.group(1)}, not a literal map"
    return sorted(value.items())


def instances(block: Block) -> list[tuple[tuple[str, str] | None, str]]:
    """(each, body) for every instance the resource declares."""
    items = for_each_items(block)
    return [(None, block.body)] if items is None else [(item, block.body) for item in items]


# --- names.tf mirrors names.py -----------------------------------------------------


def test_terraform_names_mirror_names_py() -> None:
    expected = {
        "entry_points": dict(names.ENTRY_POINTS),
        "topic_dead_letter": names.TOPIC_DEAD_LETTER,
        "topic_work": names.TOPIC_WORK,
        "entry_kill_switch_written": names.ENTRY_KILL_SWITCH_WRITTEN,
        "entry_status_page": names.ENTRY_STATUS_PAGE,
        "entry_gateway": names.ENTRY_GATEWAY,
        "env_config": names.ENV_CONFIG,
        "env_gateway_key_sha256": names.ENV_GATEWAY_KEY_SHA256,
        "env_vllm_api_key": names.ENV_VLLM_API_KEY,
        "kill_switch_path": names.KILL_SWITCH_PATH,
        "collection_events": names.COLLECTION_EVENTS,
        "event_ttl_field": names.EVENT_TTL_FIELD,
        "label_pool": names.LABEL_POOL,
        "metadata_pool": names.METADATA_POOL,
        "metadata_agent_config": names.METADATA_AGENT_CONFIG,
        "metadata_worker": names.METADATA_WORKER_CONFIG,
    }
    actual = {key: locals_().get(key) for key in expected}
    assert actual == expected
    assert set(names.ENTRY_POINTS) == set(names.EVENT_TOPICS)


# --- topics ------------------------------------------------------------------------


def created_topics() -> dict[str, str]:
    """Deployed topic name -> "<resource name>[<key>]" for every google_pubsub_topic."""
    topics = {}
    for name, block in resources("google_pubsub_topic").items():
        for each, body in instances(block):
            topic = resolve(attribute(body, "name"), each)
            topics[topic] = f"{name}[{each[0]}]" if each else name
    return topics


def test_every_topic_in_names_is_created_and_nothing_else() -> None:
    prefix = variable_default("prefix")
    expected = {
        f"{prefix}-{suffix}"
        for suffix in (*names.EVENT_TOPICS, names.TOPIC_DEAD_LETTER, names.TOPIC_WORK)
    }
    assert set(created_topics()) == expected


def test_each_pools_queue_alert_watches_its_own_filtered_work_subscription() -> None:
    subscription = resources("google_pubsub_subscription")["work"]
    assert attribute(subscription.body, "for_each") == "var.pools"
    assert attribute(subscription.body, "name") == (
        '"${var.prefix}-${local.topic_work}-sub-${each.key}"'
    )
    assert attribute(subscription.body, "filter") == '"attributes.pool = \\"${each.key}\\""'
    assert "renotify_interval" in (TF_ROOT / "modules" / "pool" / "main.tf").read_text()
    assert attribute(subscription.body, "topic") == "google_pubsub_topic.work.id"
    pool_module = (TF_ROOT / "modules" / "pool" / "main.tf").read_text(encoding="utf-8")
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in pool_module
    assert "yoyo_pool = var.pool" in pool_module
    (module,) = [b for b in root_blocks() if b.kind == "module" and b.labels == ("pool",)]
    assert attribute(module.body, "work_subscription") == (
        "google_pubsub_subscription.work[each.key].name"
    )


# --- functions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    entry_point: str
    event_type: str | None
    topic: str | None
    document: str | None
    retry_policy: str | None
    env_keys: frozenset[str]


def _nested(body: str, name: str) -> str | None:
    """Body of the nested block `name { ... }` at two-space indentation, if present."""
    match = re.search(rf"^  {name} \{{\n(.*?)^  \}}$", body, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


def _topic_of(expr: str, each: tuple[str, str] | None) -> str:
    match = re.fullmatch(r"google_pubsub_topic\.([a-z_]+)(?:\[each\.key\])?\.id", expr)
    assert match, f"pubsub_topic must reference a google_pubsub_topic: {expr!r}"
    block = resources("google_pubsub_topic")[match.group(1)]
    items = for_each_items(block)
    if items is None:
        return resolve(attribute(block.body, "name"))
    assert each is not None, f"{expr} outside a for_each"
    return resolve(attribute(block.body, "name"), (each[0], dict(items)[each[0]]))


@cache
def deployed_functions() -> tuple[Function, ...]:
    env_local = locals_block_text("function_env")
    functions = []
    for block in resources("google_cloudfunctions2_function").values():
        for each, body in instances(block):
            trigger = _nested(body, "event_trigger")
            service = _nested(body, "service_config")
            assert service is not None
            env_expr = attribute(service, "environment_variables")
            # The gateway adds only gunicorn's THREADS (one thread per request it may hold).
            gateway_env = (
                "merge(local.function_env, { THREADS = tostring(var.gateway.concurrency) })"
            )
            assert env_expr in ("local.function_env", gateway_env), "every function: one config env"
            document = None
            if trigger is not None:
                filters = re.findall(
                    r'attribute\s*=\s*"([^"]+)"\s*\n\s*value\s*=\s*(.+)', trigger, re.MULTILINE
                )
                document = next((resolve(v) for a, v in filters if a == "document"), None)
            functions.append(
                Function(
                    entry_point=resolve(attribute(body, "entry_point"), each),
                    event_type=resolve(attribute(trigger, "event_type")) if trigger else None,
                    topic=_topic_of(attribute(trigger, "pubsub_topic"), each)
                    if trigger and "pubsub_topic" in trigger
                    else None,
                    document=document,
                    retry_policy=resolve(attribute(trigger, "retry_policy")) if trigger else None,
                    env_keys=frozenset(_env_keys(env_local)),
                )
            )
    return tuple(functions)


def locals_block_text(name: str) -> str:
    for block in root_blocks():
        if block.kind == "locals":
            match = re.search(
                rf"^  {name} = \{{\n(.*?)^  \}}$", block.body, re.MULTILINE | re.DOTALL
            )
            if match:
                return match.group(1)
    raise AssertionError(f"local.{name} not found")


def _env_keys(text: str) -> list[str]:
    keys = re.findall(r"^\s*\((local\.[a-z_]+)\)\s*=", text, re.MULTILINE)
    keys += re.findall(r'^\s*"?([A-Z][A-Z0-9_]*)"?\s*=', text, re.MULTILINE)
    return [resolve(k) if k.startswith("local.") else k for k in keys]


def test_every_entry_point_is_deployed_with_its_trigger() -> None:
    prefix = variable_default("prefix")
    by_entry = {f.entry_point: f for f in deployed_functions()}
    expected = {*names.ENTRY_POINTS.values(), names.ENTRY_KILL_SWITCH_WRITTEN}
    expected |= {names.ENTRY_STATUS_PAGE, names.ENTRY_GATEWAY}
    assert sorted(by_entry) == sorted(expected)
    assert len(by_entry) == len(deployed_functions()), "an entry point is deployed twice"

    for topic, entry in names.ENTRY_POINTS.items():
        function = by_entry[entry]
        assert function.event_type == "google.cloud.pubsub.topic.v1.messagePublished"
        assert function.topic == f"{prefix}-{topic}", entry
        assert function.retry_policy == "RETRY_POLICY_RETRY", entry

    kill = by_entry[names.ENTRY_KILL_SWITCH_WRITTEN]
    assert kill.event_type == "google.cloud.firestore.document.v1.written"
    assert kill.document == names.KILL_SWITCH_PATH
    assert kill.retry_policy == "RETRY_POLICY_RETRY"

    for http in (names.ENTRY_STATUS_PAGE, names.ENTRY_GATEWAY):
        assert by_entry[http].event_type is None and by_entry[http].topic is None


def test_status_page_is_never_public() -> None:
    """Nothing is granted to allUsers except the gateway's optional public invoker (the
    gateway checks its own bearer keys on every request; gateway_allow_unauthenticated)."""
    public = re.compile(r'member\s*=\s*"(allUsers|allAuthenticatedUsers)"')
    for path in all_tf_files():
        text = path.read_text(encoding="utf-8")
        for match in public.finditer(text):
            block = text[text.rfind("\nresource ", 0, match.start()) :][:200]
            assert 'resource "google_cloud_run_v2_service_iam_member" "gateway_public"' in block, (
                f"{path.name}: {match.group(0)} outside the gateway's public invoker"
            )
            assert "var.gateway_allow_unauthenticated ? 1 : 0" in block


def test_only_declared_environment_variables_are_set() -> None:
    declared = {v for k, v in vars(names).items() if k.startswith("ENV_")}
    for function in deployed_functions():
        assert function.env_keys == {names.ENV_CONFIG}, function.entry_point
    for path in all_tf_files():
        used = set(re.findall(r"\bYOYO_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
        assert used <= declared, f"{path.name}: {sorted(used - declared)} not in names.py"


# --- Firestore ---------------------------------------------------------------------


def test_event_log_ttl_policy() -> None:
    (field,) = resources("google_firestore_field").values()
    assert resolve(attribute(field.body, "collection")) == names.COLLECTION_EVENTS
    assert resolve(attribute(field.body, "field")) == names.EVENT_TTL_FIELD
    assert re.search(r"^  ttl_config \{\}", field.body, re.MULTILINE)


# --- VMs ---------------------------------------------------------------------------


def test_vm_metadata_keys_and_pool_label() -> None:
    (module,) = [b for b in root_blocks() if b.kind == "module" and b.labels == ("pool",)]
    metadata_map = re.search(
        r"^  metadata = \{\n(.*?)^  \}$", module.body, re.MULTILINE | re.DOTALL
    )
    assert metadata_map, "module pool takes a metadata map"
    keys = re.findall(r'^\s*(\(local\.[a-z_]+\)|"[^"]+")\s*=', metadata_map.group(1), re.MULTILINE)
    resolved = {resolve(k.strip("()")) for k in keys}
    assert {
        names.METADATA_AGENT_CONFIG,
        names.METADATA_WORKER_CONFIG,
        names.METADATA_POOL,
        "startup-script",
    } <= resolved
    label = re.search(
        r"^  labels\s*=\s*merge\(var\.labels, \{ \((local\.[a-z_]+)\) = each\.key \}\)",
        module.body,
        re.MULTILINE,
    )
    assert label and resolve(label.group(1)) == names.LABEL_POOL

    vm = (TF_ROOT / "modules" / "pool" / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"^  metadata\s*=\s*merge\(var\.metadata, ", vm, re.MULTILINE)
    assert re.search(r"^  labels\s*=\s*var\.labels$", vm, re.MULTILINE)

    startup = (VM_DIR / "startup.sh").read_text(encoding="utf-8")
    assert f'CONFIG_KEY="{names.METADATA_AGENT_CONFIG}"' in startup
    assert f'WORKER_CONFIG_KEY="{names.METADATA_WORKER_CONFIG}"' in startup


def test_vm_units_run_modules_that_exist() -> None:
    units = sorted(VM_DIR.glob("*.service"))
    assert {u.name for u in units} == {
        "yoyo-weights.service",
        "vllm.service",
        "yoyo-agent.service",
        "yoyo-worker.service",
    }
    modules = []
    for unit in units:
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith("ExecStart="):
                modules += re.findall(r"\s-m\s+([A-Za-z_][\w.]*)", line)
    assert modules == ["yoyo_control.agent", "yoyo_control.worker"]
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{module} (run by a vm/ unit) does not exist"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, module


def test_agent_metrics_port_is_vllm_port() -> None:
    compute = (TF_ROOT / "compute.tf").read_text(encoding="utf-8")
    port = re.search(r'metrics_url\s*=\s*"http://127\.0\.0\.1:(\d+)/metrics"', compute)
    vllm = (VM_DIR / "vllm.service").read_text(encoding="utf-8")
    assert port and f"--port {port.group(1)}" in vllm


# --- packaging ---------------------------------------------------------------------


def test_function_archive_layout_and_pinned_requirements(tmp_path: Path) -> None:
    output = tmp_path / "function-source.zip"
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "package_functions.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with zipfile.ZipFile(output) as archive:
        members = archive.namelist()
        requirements = archive.read("requirements.txt").decode().split()
        infos = archive.infolist()
    assert "main.py" in members
    assert "yoyo_control/__init__.py" in members
    assert "yoyo_control/names.py" in members
    assert "yoyo_control/templates/status.html" in members  # package data rides along
    assert members == sorted(members)
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(line.split("==", 1) for line in requirements)
    assert len(pinned) == len(requirements) == len(dependencies)
    for dependency in dependencies:
        name = re.match(r"[A-Za-z0-9._-]+", dependency).group(0)
        assert pinned.get(name) == metadata.version(name), dependency


def test_function_archive_is_deterministic(tmp_path: Path) -> None:
    script = [sys.executable, str(REPO / "tools" / "package_functions.py"), "--output"]
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for output in (first, second):
        run = subprocess.run([*script, str(output)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("example", ["basic"])
def test_examples_call_the_root_module(example: str) -> None:
    main = (TF_ROOT / "examples" / example / "main.tf").read_text(encoding="utf-8")
    assert re.search(r'^  source = "\.\./\.\."$', main, re.MULTILINE)
    for required in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (TF_ROOT / "examples" / example / required).is_file()


def test_agent_config_has_the_documented_fields() -> None:
    compute = (TF_ROOT / "compute.tf").read_text(encoding="utf-8")
    block = re.search(r"pool => \{\n(.*?)\n    \}", compute, re.DOTALL)
    assert block
    keys = re.findall(r"^\s*([a-z_]+)\s*=", block.group(1), re.MULTILINE)
    expected = {
        "pool",
        "project",
        "heartbeat_topic",
        "firestore_database",
        "heartbeat_interval_s",
        "idle_shutdown_s",
        "deadman_grace_s",
        "metrics_url",
        "poweroff_command",
        "weights_uri",
        "vllm_api_key_secret",  # read by vm/startup.sh: vLLM's --api-key
        "served_model_name",  # read by vm/startup.sh: vLLM's --served-model-name
        "heartbeat_audience",  # the control plane's heartbeat_audience (both must agree)
    }
    assert set(keys) == expected
