"""``yoyoctl`` tells the truth (issue 12, case 10), in-process on a SQLite state dir.

No stack runs here: commands that would publish fail loudly, so a command that refuses
before publishing is observable as a refusal, not as a bus error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yoyo_control import cli
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.domain.model import KillSwitch, Lease, PoolState

T0 = 1_796_400_000.0


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    config = {
        "backend": "local",
        "local": {"state_dir": str(state), "port": 1},  # nothing listens on port 1
        "pools": {"default": {"zone": "local", "instances": ["vm-0"]}},
    }
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(config))
    state.mkdir()
    return state


def store(state_dir: Path) -> SqliteStore:
    return SqliteStore(state_dir / "yoyo.sqlite3")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_with_the_kill_switch_engaged_refuses_in_one_line(state_dir, capsys) -> None:
    s = store(state_dir)
    s.transact(lambda tx: tx.save_kill(KillSwitch(True, "maintenance", "alice", T0)))
    code, out, err = run(capsys, "start", "--for", "30m")
    assert code == 1
    assert err.count("\n") == 1 and "kill switch is engaged" in err and "maintenance" in err
    assert "yoyoctl unkill" in err
    assert "granted at once" not in out + err


def test_status_after_a_console_write_of_engaged_only_says_what_is_known(state_dir, capsys) -> None:
    # The console sets only `engaged`: no reason, no author, no time.
    store(state_dir).transact(lambda tx: tx.save_kill(KillSwitch(True)))
    code, out, _ = run(capsys, "status")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("KILL SWITCH ENGAGED")
    assert "?" not in first and "—" not in first and not first.rstrip().endswith(":")
    assert "no reason given" in first


def test_status_and_events_print_times_not_epochs(state_dir, capsys) -> None:
    from yoyo_control.config import load_config
    from yoyo_control.domain.decide import decide
    from yoyo_control.domain.facts import ExtendRequested, apply_fact

    policy = load_config().policy("default")
    lease = Lease("operator", ("start",), 1, T0, T0 + 600, T0 + 28_800)
    state = PoolState(pool="default", lease=lease)
    extend = ExtendRequested("m-1", T0, "default", "alice", 3600.0)
    state, changes = apply_fact(state, extend, policy, T0)
    decision = decide(state, KillSwitch(), policy, T0 + 1000)
    reasons = [c.reason for c in changes] + [c.reason for c in decision.changes]
    assert reasons, "the extension is a decision worth a line"
    for reason in reasons:
        assert not any(word.isdigit() and len(word) >= 9 for word in reason.split()), reason
    assert any("UTC" in r for r in reasons if "extended" in r), reasons


def test_status_pool_shows_that_pool_only_and_refuses_an_unknown_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`--pool` was accepted and ignored: every pool was shown (the hints name it)."""
    state = tmp_path / "state"
    state.mkdir()
    config = {
        "backend": "local",
        "local": {"state_dir": str(state), "port": 1},
        "pools": {
            "alpha": {"zone": "local", "instances": ["vm-0"]},
            "beta": {"zone": "local", "instances": ["vm-1"]},
        },
    }
    monkeypatch.delenv("YOYO_CONFIG_FILE", raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(config))
    code, out, _ = run(capsys, "status", "--pool", "beta")
    assert code == 0 and "pool beta" in out and "pool alpha" not in out
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0 and "alpha" in out and "beta" in out
    code, _, err = run(capsys, "status", "--pool", "gamma")
    assert code != 0 and "gamma" in err
