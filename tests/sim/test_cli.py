"""``yoyoctl simulate`` (sim/cli.py): what engineer (d) wires, on a tiny hand-made trace."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from yoyo_control.domain.model import PoolPolicy
from yoyo_control.sim import simulate_main
from yoyo_control.sim.cli import simulate_main as cli_main
from yoyo_control.sim.policies import DEFAULT_POLICY, parse_policy


@pytest.fixture
def spec(tmp_path: Path) -> str:
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2023-11-16 18:{m:02d}:00.0,1000,20" for m in (0, 1, 2, 40, 41)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    return f"trace={path},k=1,s=1"


def test_a_table_per_policy(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main(["-w", spec, "-p", "fixed-5m", "-p", "adaptive-neutral"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["workload", "policy"]
    assert [line.split()[1] for line in out[1:]] == ["fixed-5m", "adaptive-neutral"]


def test_json_lines_name_the_spec_policy_and_seed(spec: str) -> None:
    out = io.StringIO()
    assert (
        cli_main(["-w", spec, "-p", "fixed:120", "--seed", "1", "--seed", "2", "--json"], out) == 0
    )
    runs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["policy"], r["seed"]) for r in runs] == [("fixed:120", 1), ("fixed:120", 2)]
    assert all(r["spec"].startswith("trace=") and r["requests"] == 5 for r in runs)
    assert all(r["cold_starts"] >= 2 and r["ratio"] > 0 for r in runs)


def test_list_and_usage_errors(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "workload sparse:" in listed and "policy adaptive-neutral" in listed
    assert simulate_main(["-w", spec, "-p", "no-such-policy"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert simulate_main(["-w", "k=0"]) == 2
    assert simulate_main(["-w", "trace=/nonexistent.csv"]) == 2
    assert "cannot read the trace" in capsys.readouterr().err


def test_python_dash_m(spec: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "yoyo_control.sim", "-w", spec, "-p", "fixed-5m", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["policy"] == "fixed-5m"


def test_the_default_has_one_name_in_the_configuration_the_simulator_and_the_readme() -> None:
    default = PoolPolicy(pool="p").keepalive
    assert default == DEFAULT_POLICY
    # Under that name the simulator runs the pool's own keep-alive (decide() computes it).
    assert parse_policy(default).kind == "pool"
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f'| `pools.<name>.keepalive` | `"{default}"` |' in readme
