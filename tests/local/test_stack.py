"""The whole local stack, driven only through ``yoyoctl`` (subprocess calls).

Each test establishes its own starting point (the pool scaled to zero) on the shared
stack; the last one runs its own stack to interrupt it. Liveness waits are bounded
timeouts, not timing assertions (kill and wake latencies are measured in bench/).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)


def scaled_to_zero(stack: Stack) -> None:
    stack.wait_for(
        lambda: stack.vm() == "TERMINATED" and not (stack.status()["lease"] or {}).get("valid"),
        30,
        "the pool to scale to zero",
    )


def small_batch(tmp_path: Path, lines: int) -> str:
    path = tmp_path / "work.jsonl"
    with path.open("w") as f:
        for i in range(lines):
            body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4}
            line = {"custom_id": f"c-{i}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}) + "\n")
    return str(path)


def starts_done(stack: Stack, since: float) -> list[dict]:
    events = stack.yoyoctl("events", "--limit", "500")["events"]
    return [
        e
        for e in events
        if e["kind"] == "action"
        and e["at"] > since
        and e["data"].get("outcome") == "done"
        and e["data"]["action"]["kind"] == "start"
    ]


def test_queued_work_starts_a_vm_that_heartbeats_drains_the_work_and_stops_when_idle(
    stack: Stack, tmp_path: Path
) -> None:
    scaled_to_zero(stack)
    submitted = stack.yoyoctl("batch", "submit", small_batch(tmp_path, 4))
    assert submitted["request_counts"]["total"] == 4
    assert submitted["next"].startswith("yoyoctl batch status")

    stack.wait_for(lambda: stack.vm() == "RUNNING", 20, "the VM to start")
    pool = stack.status()
    assert pool["lease"]["valid"]

    def heartbeating() -> bool:
        hb = stack.status()["instances"][0]["last_heartbeat"]
        return hb is not None and hb["received_at"] > submitted_at

    submitted_at = time.time() - 5
    stack.wait_for(heartbeating, 20, "heartbeats from the VM's agent")
    # The VM pulls the work; once the queue is empty the bus reports depth 0.
    stack.wait_for(lambda: stack.status()["demand"]["depth"] == 0, 20, "the work to drain")
    scaled_to_zero(stack)
    reasons = [d["reason"] for d in stack.status()["decisions"]]
    assert any("idle" in r and "lease released" in r for r in reasons), reasons


def test_kill_during_a_run_stops_the_vm_and_nothing_starts_until_unkill(
    stack: Stack, tmp_path: Path
) -> None:
    scaled_to_zero(stack)
    stack.yoyoctl("start", "--for", "1m")
    stack.wait_for(lambda: stack.vm() == "RUNNING", 20, "the VM to start")

    killed = stack.yoyoctl("kill", "--direct", "--reason", "test: runaway", "--yes")
    assert killed["via"] == "store" and "unkill" in killed["next"]
    killed_at = time.time()
    stack.wait_for(lambda: stack.vm() == "TERMINATED", 15, "the kill to stop the VM")
    status = stack.yoyoctl("status")
    assert status["kill_switch"]["engaged"] and status["kill_switch"]["reason"] == "test: runaway"
    assert status["pools"][0]["lease"] is None

    # Every way to ask for a start is refused while the switch is engaged.
    stack.yoyoctl("batch", "submit", small_batch(tmp_path, 1))  # accepted, kept pending
    for command in (["start", "--for", "1m"], ["ask", "hello"]):
        refused = stack.yoyoctl(*command, check=False)
        assert refused.returncode == 1 and "kill switch is engaged" in refused.stderr
        assert refused.stderr.count("\n") == 1  # one line, no traceback
    time.sleep(2.0)  # four ticks of the test configuration
    assert stack.vm() == "TERMINATED"
    assert starts_done(stack, killed_at) == []

    unkilled_at = time.time()
    stack.yoyoctl("unkill", "--yes")
    # The work submitted meanwhile is still queued: the pool starts again by itself.
    stack.wait_for(lambda: starts_done(stack, unkilled_at) != [], 20, "a start after unkill")
    assert not stack.yoyoctl("status")["kill_switch"]["engaged"]
    scaled_to_zero(stack)


def test_ask_wakes_a_stopped_pool_and_returns_an_answer(stack: Stack) -> None:
    scaled_to_zero(stack)
    answer = stack.yoyoctl("ask", "What is Yo-Yo?", "--max-tokens", "6", "--timeout", "60")
    assert answer["cold_start"] is True and answer["cold_start_wait_s"] > 0
    assert answer["answer"].split() == ["This", "answer", "was", "simulated", "by", "a"]
    assert answer["usage"]["completion_tokens"] == 6
    # A second question finds the VM up: no wake, no wait.
    warm = stack.yoyoctl("ask", "again?", "--max-tokens", "2")
    assert warm["cold_start"] is False and warm["endpoint"] == answer["endpoint"]


def test_ctrl_c_stops_everything_and_leaves_no_process(own_stack: Stack) -> None:
    own_stack.yoyoctl("start", "--for", "1m")
    own_stack.wait_for(lambda: own_stack.vm() == "RUNNING", 20, "the VM to start")
    pids_file = own_stack.state_dir / "vms" / "vm-0" / "pids"
    own_stack.wait_for(pids_file.exists, 10, "the VM's pid file")
    vm_pids = [int(p) for p in pids_file.read_text().split()]
    # the VM's leader and its units: inference server, agent, batch worker
    assert len(vm_pids) == 4 and all(Path(f"/proc/{p}").exists() for p in vm_pids)

    # Every shutdown step bounds its own wait (local/stack.py: ~30 s at worst in all); a
    # stack that has not exited well after that is stuck. Slow steps name themselves.
    try:
        assert own_stack.interrupt(timeout=45) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("the stack did not exit 45 s after SIGINT; its log:\n" + own_stack.log())
    assert own_stack.leftover_processes() == []
    assert [p for p in vm_pids if Path(f"/proc/{p}").exists()] == []
    assert not (own_stack.state_dir / "local-up.json").exists()
    assert "local stack stopped" in own_stack.log()
