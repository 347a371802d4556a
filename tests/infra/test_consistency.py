"""The deployment wires exactly the names the code uses (shared/yoyo_control/names.py).

Terraform is read with python-hcl2 (``hcl2.load``): every file becomes a dict of blocks
(``{"resource": [{'"type"': {'"name"': body}}]}``, labels kept in their quotes), in which
a quoted string keeps its quotes (``'"work"'``, ``'"${var.prefix}-x"'``) and any other
expression is its normalized source wrapped in ``${...}`` (``"${var.pools}"``). Values
are resolved only as far as these checks need: string literals and templates made of
"${var.prefix}", string locals, and each.key/each.value of a for_each over a local map
of string literals. Anything else fails loudly rather than passing by accident. The one
for expression read inside (local.agent_config) is opened with hcl2's query views.
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
from typing import Any

import pytest
from hcl2.query import DocumentView
from hcl2.rules.for_expressions import ForObjectExprRule

from terraform_blocks import Block
from terraform_blocks import blocks_of as _blocks
from terraform_blocks import unquote as _unquote
from yoyo_control import names

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "terraform"
POOL_MODULE = TF_ROOT / "modules" / "pool" / "main.tf"
VM_DIR = REPO / "vm"

Each = tuple[str, str]


@cache
def all_tf_files() -> tuple[Path, ...]:
    return tuple(sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts))


@cache
def root_blocks() -> tuple[Block, ...]:
    return tuple(b for path in sorted(TF_ROOT.glob("*.tf")) for b in _blocks(path))


def blocks(kind: str, *labels: str, path: Path | None = None) -> list[Block]:
    found = root_blocks() if path is None else _blocks(path)
    return [b for b in found if b.kind == kind and b.labels[: len(labels)] == labels]


def resources(kind: str, path: Path | None = None) -> dict[str, Block]:
    return {b.labels[1]: b for b in blocks("resource", kind, path=path)}


def attribute(body: dict[str, Any], name: str) -> Any:
    """The value of the attribute `name` (not a nested block) of a block body."""
    assert name in body, f"no {name} = ... in {sorted(body)}"
    value = body[name]
    assert not _is_blocks(value), f"{name} is a nested block, not an attribute"
    return value


def nested(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Body of the single nested block `name { ... }`, if present."""
    if name not in body:
        return None
    assert _is_blocks(body[name]) and len(body[name]) == 1, f"expected one {name} block"
    return body[name][0]


def _is_blocks(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, dict) and v.get("__is_block__") for v in value
    )


def expression(value: Any) -> str:
    """HCL source of an expression, as hcl2 normalizes it (a quoted string keeps its quotes)."""
    assert isinstance(value, str), f"not an expression: {value!r}"
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    assert value.startswith('"') and value.endswith('"'), f"not an expression: {value!r}"
    return value


def literal(value: Any) -> str | dict[str, str]:
    """A string literal, or an object (map) of string literals."""
    if isinstance(value, dict) and "__is_block__" not in value:
        return {resolve_key(key): literal_string(v) for key, v in value.items()}
    return literal_string(value)


def literal_string(value: Any) -> str:
    text = _unquote(value) if isinstance(value, str) else None
    assert text is not None and not re.search(r"[$%]\{|\\", text), f"not a literal: {value!r}"
    return text


@cache
def locals_() -> dict[str, Any]:
    """Every local value of the root module, as hcl2 reads it (unresolved)."""
    values: dict[str, Any] = {}
    for block in blocks("locals"):
        for name, value in block.body.items():
            if name != "__is_block__":
                assert name not in values, f"local.{name} is defined twice"
                values[name] = value
    return values


def variable_default(name: str) -> str:
    (block,) = blocks("variable", name)
    return literal_string(attribute(block.body, "default"))


def resolve(value: Any, each: Each | None = None) -> str:
    """Value of a string: a literal, or a template or reference made of var.prefix,
    string locals and each.key/each.value."""
    text = expression(value)
    if not text.startswith('"'):  # a bare reference: the template "${ref}"
        text = '"${' + text + '}"'
    text = text[1:-1]

    def substitute(match: re.Match[str]) -> str:
        ref = match.group(1).strip()
        if ref == "var.prefix":
            return variable_default("prefix")
        if ref.startswith("local."):
            local = ref.removeprefix("local.")
            assert local in locals_(), f"{ref} is not defined"
            return literal_string(locals_()[local])
        if ref in ("each.key", "each.value") and each is not None:
            return each[0] if ref == "each.key" else each[1]
        raise AssertionError(f"cannot resolve ${{{ref}}} in {value!r}")

    resolved = re.sub(r"\$\{([^{}]*)\}", substitute, text)
    assert not re.search(r"[$%]\{|\\", resolved), f"cannot resolve {value!r}"
    return resolved


def resolve_key(key: str) -> str:
    """An object key: a bare name, a quoted string or a parenthesized expression."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return key
    parenthesized = re.fullmatch(r"\$\{\((.+)\)\}", key)
    return resolve("${" + parenthesized.group(1) + "}" if parenthesized else key)


def for_each_items(block: Block) -> list[Each] | None:
    """(key, value) pairs of a for_each over a local map; None without for_each."""
    if "for_each" not in block.body:
        return None
    source = expression(attribute(block.body, "for_each"))
    local = re.fullmatch(r"local\.([a-z_]+)", source)
    assert local, f"{block.labels}: for_each over {source!r}, not a local map"
    value = literal(locals_()[local.group(1)])
    assert isinstance(value, dict), f"for_each over local.{local.group(1)}, not a literal map"
    return sorted(value.items())


def instances(block: Block) -> list[tuple[Each | None, dict[str, Any]]]:
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
    actual = {key: literal(locals_()[key]) if key in locals_() else None for key in expected}
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
        for suffix in (
            *names.EVENT_TOPICS,
            names.TOPIC_DEAD_LETTER,
            names.TOPIC_WORK,
            names.TOPIC_BATCH,  # the batch controller's own topic (terraform/batch.tf)
        )
    }
    assert set(created_topics()) == expected


def test_each_pools_queue_alert_watches_its_own_filtered_work_subscription() -> None:
    subscription = resources("google_pubsub_subscription")["work"].body
    assert expression(attribute(subscription, "for_each")) == "var.pools"
    assert expression(attribute(subscription, "name")) == (
        '"${var.prefix}-${local.topic_work}-sub-${each.key}"'
    )
    assert expression(attribute(subscription, "filter")) == '"attributes.pool = \\"${each.key}\\""'
    assert expression(attribute(subscription, "topic")) == "google_pubsub_topic.work.id"
    (module,) = blocks("module", "pool")
    assert expression(attribute(module.body, "work_subscription")) == (
        "google_pubsub_subscription.work[each.key].name"
    )

    alert = resources("google_monitoring_alert_policy", POOL_MODULE)["queue"].body
    assert expression(attribute(alert, "user_labels")) == (
        "merge(var.alert_user_labels, {yoyo_pool = var.pool})"
    )
    conditions = nested(alert, "conditions")
    threshold = nested(conditions, "condition_threshold") if conditions else None
    assert threshold, "the queue alert has a threshold condition"
    watched = expression(attribute(threshold, "filter"))
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in watched
    assert '\\"subscription_id\\"=\\"${var.work_subscription}\\"' in watched
    strategy = nested(alert, "alert_strategy")
    channels = nested(strategy, "notification_channel_strategy") if strategy else None
    assert channels and "renotify_interval" in channels


# --- functions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    entry_point: str
    event_type: str | None
    topic: str | None
    document: str | None
    retry_policy: str | None
    env_keys: frozenset[str]


def _topic_of(value: Any, each: Each | None) -> str:
    source = expression(value)
    match = re.fullmatch(r"google_pubsub_topic\.([a-z_]+)(?:\[each\.key\])?\.id", source)
    assert match, f"pubsub_topic must reference a google_pubsub_topic: {source!r}"
    block = resources("google_pubsub_topic")[match.group(1)]
    items = for_each_items(block)
    if items is None:
        return resolve(attribute(block.body, "name"))
    assert each is not None, f"{source} outside a for_each"
    return resolve(attribute(block.body, "name"), (each[0], dict(items)[each[0]]))


def _document_of(trigger: dict[str, Any]) -> str | None:
    filters = trigger.get("event_filters", [])
    assert _is_blocks(filters)
    documents = [resolve(f["value"]) for f in filters if resolve(f["attribute"]) == "document"]
    assert len(documents) <= 1, "more than one document filter"
    return documents[0] if documents else None


@cache
def deployed_functions() -> tuple[Function, ...]:
    function_env = locals_()["function_env"]
    assert isinstance(function_env, dict), "local.function_env is an object"
    env_keys = frozenset(resolve_key(key) for key in function_env)
    functions = []
    for block in resources("google_cloudfunctions2_function").values():
        for each, body in instances(block):
            build, trigger = nested(body, "build_config"), nested(body, "event_trigger")
            service = nested(body, "service_config")
            assert build is not None and service is not None
            env_expr = expression(attribute(service, "environment_variables"))
            assert env_expr == "local.function_env", "every function: one config env"
            functions.append(
                Function(
                    entry_point=resolve(attribute(build, "entry_point"), each),
                    event_type=resolve(attribute(trigger, "event_type")) if trigger else None,
                    topic=_topic_of(attribute(trigger, "pubsub_topic"), each)
                    if trigger and "pubsub_topic" in trigger
                    else None,
                    document=_document_of(trigger) if trigger else None,
                    retry_policy=resolve(attribute(trigger, "retry_policy")) if trigger else None,
                    env_keys=env_keys,
                )
            )
    return tuple(functions)


def test_every_entry_point_is_deployed_with_its_trigger() -> None:
    prefix = variable_default("prefix")
    by_entry = {f.entry_point: f for f in deployed_functions()}
    expected = {*names.FUNCTION_TOPICS.values(), names.ENTRY_KILL_SWITCH_WRITTEN}
    expected |= {names.ENTRY_STATUS_PAGE, names.ENTRY_GATEWAY}
    assert sorted(by_entry) == sorted(expected)
    assert len(by_entry) == len(deployed_functions()), "an entry point is deployed twice"

    for topic, entry in names.FUNCTION_TOPICS.items():
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


def _string_leaves(value: Any, where: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """(path, string) for every string value (and object key) below `value`."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _string_leaves(item, where)]
    if isinstance(value, dict):
        return [
            leaf
            for key, item in value.items()
            for leaf in [(where, key), *_string_leaves(item, (*where, key))]
        ]
    return []


def test_status_page_is_never_public() -> None:
    """Nothing is granted to allUsers except the gateway's optional public invoker (the
    gateway checks its own bearer keys on every request; gateway_allow_unauthenticated)."""
    public = {'"allUsers"', '"allAuthenticatedUsers"'}
    gateway_public = ("resource", "google_cloud_run_v2_service_iam_member", "gateway_public")
    for path in all_tf_files():
        for block in _blocks(path):
            for where, value in _string_leaves(block.body, (block.kind, *block.labels)):
                if value in public:
                    assert where == (*gateway_public, "member"), (
                        f"{path.name}: {value} in {where}, outside the gateway's public invoker"
                    )
                    count = attribute(block.body, "count")
                    assert count == (
                        "${var.gateway_allow_unauthenticated"
                        ' && var.gateway_public_access == "allusers_binding" ? 1 : 0}'
                    ), count


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
    assert nested(field.body, "ttl_config") == {"__is_block__": True}  # present and empty


# --- VMs ---------------------------------------------------------------------------


def test_vm_metadata_keys_and_pool_label() -> None:
    (module,) = blocks("module", "pool")
    metadata_map = attribute(module.body, "metadata")
    assert isinstance(metadata_map, dict), "module pool takes a metadata map"
    assert {
        names.METADATA_AGENT_CONFIG,
        names.METADATA_WORKER_CONFIG,
        names.METADATA_POOL,
        "startup-script",
    } <= {resolve_key(key) for key in metadata_map}
    label = re.fullmatch(
        r"merge\(var\.labels, \{\((local\.[a-z_]+)\) = each\.key\}\)",
        expression(attribute(module.body, "labels")),
    )
    assert label and resolve("${" + label.group(1) + "}") == names.LABEL_POOL

    vm = resources("google_compute_instance", POOL_MODULE)["vm"].body
    assert expression(attribute(vm, "metadata")).startswith("merge(var.metadata, ")
    assert expression(attribute(vm, "labels")) == "var.labels"

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


def agent_config() -> dict[str, Any]:
    """The object local.agent_config builds for every pool (what the VM agent reads)."""
    document = DocumentView.parse_file(str(TF_ROOT / "compute.tf"))
    (value,) = [a for b in document.blocks("locals") for a in b.attributes("agent_config")]
    (per_pool,) = value.find_all(ForObjectExprRule)
    assert expression(per_pool.iterable.to_dict()) == "var.pools"
    fields = per_pool.value_expr.to_dict()
    assert isinstance(fields, dict), "local.agent_config maps each pool to an object"
    return fields


def test_agent_metrics_port_is_vllm_port() -> None:
    port = re.fullmatch(
        r"http://127\.0\.0\.1:(\d+)/metrics", resolve(agent_config()["metrics_url"])
    )
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
    modules = blocks("module", path=TF_ROOT / "examples" / example / "main.tf")
    assert [resolve(attribute(m.body, "source")) for m in modules] == ["../.."]
    for required in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (TF_ROOT / "examples" / example / required).is_file()


def test_agent_config_has_the_documented_fields() -> None:
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
    assert {resolve_key(key) for key in agent_config()} == expected


def test_every_test_the_deployment_and_its_docs_cite_exists() -> None:
    # gateway.tf said "tests/infra/test_gateway_iam.py proves the list": no such file.
    cited = re.compile(r"\btests/[\w/]+\.(?:py|hcl)\b")
    sources = [*TF_ROOT.rglob("*.tf"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]
    sources += [p for p in VM_DIR.rglob("*") if p.is_file()]
    missing = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for path in sources
        for name in set(cited.findall(path.read_text(errors="replace")))
        if not (REPO / name).exists()
    )
    assert missing == []
