"""Issue 23's attacks on the whole local stack: no spend without progress, a stop holds.

- A VM whose model never gets ready (``local.boot_delay_s`` far past every grace) under a
  pending batch: at most 1 + restart_budget starts, then the pool stops, the batch says
  why, and ``yoyoctl batch retry`` starts it again (a fresh budget).
- ``yoyoctl stop`` during a batch holds until ``yoyoctl start``; the event log says the
  work waits and why; after the start the batch completes.
Waits are bounded liveness timeouts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from local.test_batch_stack import results, scaled_to_zero, write_batch

Stack = Any

BUDGET = 2


def starts(stack: Stack) -> int:
    """Starts carried out (distinct request ids: a re-sent start is the same start)."""
    events = stack.yoyoctl("events", "--limit", "1000")["events"]
    return len(
        {
            e["data"]["action"]["request_id"]
            for e in events
            if e["kind"] == "action"
            and e["data"]["action"]["kind"] == "start"
            and e["data"]["outcome"] == "done"
        }
    )


def test_a_never_ready_vm_burns_at_most_one_plus_budget_starts(
    configured_stack: Any, tmp_path: Path
) -> None:
    def never_ready(config: dict[str, Any]) -> None:
        config["local"]["boot_delay_s"] = 100_000  # the model never loads
        config["pools"]["default"]["restart_budget"] = BUDGET
        config["batch"] = {"shard_lines": 50}

    stack = configured_stack(never_ready)
    path = write_batch(tmp_path / "stuck.jsonl", 20)
    batch_id = stack.yoyoctl("batch", "submit", str(path))["id"]
    stack.wait_for(lambda: stack.vm() == "RUNNING", 30, "the pool to wake")

    def lapsed() -> bool:
        batch = stack.yoyoctl("batch", "status", batch_id)
        return bool(batch["errors"]) and stack.vm() == "TERMINATED"

    stack.wait_for(lapsed, 150, "the batch work to lapse and the pool to stop")
    time.sleep(5)  # ten ticks and controller runs: nothing starts it again
    assert stack.vm() == "TERMINATED"
    assert starts(stack) <= 1 + BUDGET
    said = stack.yoyoctl("batch", "status", batch_id)["errors"]["data"]
    assert said[0]["code"] == "waiting" and "no shard moved" in said[0]["message"]
    # An explicit retry runs it again: the pool starts once more.
    before = starts(stack)
    stack.yoyoctl("batch", "retry", batch_id)
    stack.wait_for(lambda: starts(stack) > before, 30, "the retry to start the pool")
    stack.yoyoctl("batch", "cancel", batch_id)


def test_an_operator_stop_holds_until_an_operator_starts_the_pool(
    batch_stack: Stack, tmp_path: Path
) -> None:
    scaled_to_zero(batch_stack)
    path = write_batch(tmp_path / "held.jsonl", 400, max_tokens=20)
    batch_id = batch_stack.yoyoctl("batch", "submit", str(path))["id"]
    batch_stack.wait_for(lambda: batch_stack.vm() == "RUNNING", 30, "the pool to wake")
    batch_stack.yoyoctl("stop", "--yes")
    batch_stack.wait_for(lambda: batch_stack.vm() == "TERMINATED", 30, "the stop")
    held_at = starts(batch_stack)
    time.sleep(8)  # sixteen ticks and controller runs with the work pending
    assert batch_stack.vm() == "TERMINATED" and starts(batch_stack) == held_at
    events = batch_stack.yoyoctl("events", "--limit", "1000")["events"]
    assert any("waits" in e["reason"] and "stopped by" in e["reason"] for e in events)
    status = batch_stack.yoyoctl("batch", "status", batch_id)
    assert status["status"] == "in_progress" and "stopped by" in str(status["errors"])
    batch_stack.yoyoctl("start")
    got = results(batch_stack, batch_id, tmp_path / "held-results.jsonl", timeout=240)
    assert len({r["custom_id"] for r in got}) == 400
    scaled_to_zero(batch_stack, timeout=60)
