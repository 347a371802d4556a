"""``yoyoctl status`` shows a pool's learned pattern and its next planned pre-warm."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from yoyo_control import cli
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.domain import history as H
from yoyo_control.domain.model import PoolState


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    config = {
        "backend": "local",
        "local": {"state_dir": str(state), "port": 1},  # nothing listens on port 1
        "pools": {
            "default": {"zone": "local", "instances": ["vm-0"]},
            "off": {"zone": "local", "instances": ["vm-1"], "prewarm_budget_min": 0},
        },
    }
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps(config))
    state.mkdir()
    return state


def _learned(now: float) -> H.History:
    """Five days of a first request three hours from now's time of day, after a night."""
    h = H.EMPTY
    for day in range(5, 0, -1):
        first = now + 3 * 3600 - day * 86400
        h = H.record(h, first - 10 * 3600, first, "UTC")
    return h


def test_status_shows_the_learned_pattern_and_the_next_prewarm(state_dir: Path, capsys) -> None:
    now = time.time()
    store = SqliteStore(state_dir / "yoyo.sqlite3")
    for pool in ("default", "off"):
        store.transact(lambda tx, p=pool: tx.save_pool(PoolState(pool=p, history=_learned(now))))
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "first requests after a long idle (5)" in out
    assert "prewarm:  next at" in out and "0.0 of 40 VM-min spent today" in out
    assert "prewarm:  off (prewarm_budget_min = 0)" in out
    assert cli.main(["status", "--json", "--pool", "default"]) == 0
    doc = json.loads(capsys.readouterr().out)
    pool = doc["pools"][0]
    assert len(pool["history"]["firsts"]) == 5
    planned = pool["prewarm"]["next_at"]
    assert now < planned < now + 3 * 3600 and "pre-warm" in pool["prewarm"]["next_reason"]
