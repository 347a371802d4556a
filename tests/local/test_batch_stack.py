"""Batch inference on the whole local stack, driven only through ``yoyoctl batch``.

The pool wakes on submit, the VM's own worker unit runs the lines, results download, the
pool idles down; SIGKILLs of the VM lose and duplicate nothing; cancel stops the work.
Waits are bounded liveness timeouts (throughput and latency are measured in bench/).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch.jsonl"


def scaled_to_zero(stack: Stack, timeout: float = 30) -> None:
    stack.wait_for(
        lambda: stack.vm() == "TERMINATED" and not (stack.status()["lease"] or {}).get("valid"),
        timeout,
        "the pool to scale to zero",
    )


def write_batch(path: Path, n: int, max_tokens: int = 3) -> Path:
    with path.open("w") as f:
        for i in range(n):
            body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": max_tokens}
            line = {"custom_id": f"c-{i:04d}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}) + "\n")
    return path


def results(stack: Stack, batch_id: str, out: Path, timeout: float = 180) -> list[dict[str, Any]]:
    doc = stack.yoyoctl(
        "batch", "results", batch_id, "--wait", "--timeout", str(timeout), "-o", str(out),
        timeout=timeout + 30,
    )  # fmt: skip
    lines = out.read_text().splitlines() + Path(doc["error_file"]).read_text().splitlines()
    return [json.loads(x) for x in lines]


def done_lines(stack: Stack, batch_id: str) -> int:
    counts = stack.yoyoctl("batch", "status", batch_id)["request_counts"]
    return int(counts["completed"]) + int(counts["failed"])


def kill_vm(stack: Stack) -> None:
    """SIGKILL the local VM's whole process group (inference server, agent, worker)."""
    leader = int((stack.state_dir / "vms" / "vm-0" / "pids").read_text().split()[0])
    os.killpg(leader, signal.SIGKILL)


def test_the_example_wakes_the_pool_downloads_results_and_the_pool_stops(
    batch_stack: Stack, tmp_path: Path
) -> None:
    scaled_to_zero(batch_stack)
    submitted = batch_stack.yoyoctl("batch", "submit", str(EXAMPLE))
    assert submitted["object"] == "batch" and submitted["status"] == "in_progress"
    assert submitted["request_counts"]["total"] == 12
    batch_stack.wait_for(lambda: batch_stack.vm() == "RUNNING", 30, "the pool to wake")
    got = results(batch_stack, submitted["id"], tmp_path / "results.jsonl")
    assert sorted(r["custom_id"] for r in got) == [f"explain-{i:02d}" for i in range(1, 13)]
    assert all(r["response"]["status_code"] == 200 for r in got)
    final = batch_stack.yoyoctl("batch", "status", submitted["id"])
    assert final["status"] == "completed" and final["request_counts"]["completed"] == 12
    listed = batch_stack.yoyoctl("batch", "list")["data"]
    assert submitted["id"] in [b["id"] for b in listed]
    scaled_to_zero(batch_stack)


def test_a_thousand_lines_survive_two_sigkills_of_the_vm_exactly_once(
    batch_stack: Stack, tmp_path: Path
) -> None:
    scaled_to_zero(batch_stack)
    path = write_batch(tmp_path / "big.jsonl", 1000, max_tokens=8)
    batch_id = batch_stack.yoyoctl("batch", "submit", str(path))["id"]
    for kill_at in (150, 500):
        batch_stack.wait_for(
            lambda n=kill_at: done_lines(batch_stack, batch_id) >= n, 120, f"{kill_at} lines"
        )
        batch_stack.wait_for(lambda: batch_stack.vm() == "RUNNING", 60, "the VM")
        kill_vm(batch_stack)
        time.sleep(1.0)
    got = results(batch_stack, batch_id, tmp_path / "big-results.jsonl", timeout=300)
    ids = [r["custom_id"] for r in got]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert all(r["response"]["status_code"] == 200 for r in got)
    starts = [
        e for e in batch_stack.yoyoctl("events", "--limit", "500")["events"]
        if e["kind"] == "action" and e["data"]["action"]["kind"] == "start"
    ]  # fmt: skip
    assert len(starts) >= 2  # the pool came back after the kills
    scaled_to_zero(batch_stack, timeout=60)


def test_cancel_stops_the_work_within_a_heartbeat(batch_stack: Stack, tmp_path: Path) -> None:
    scaled_to_zero(batch_stack)
    path = write_batch(tmp_path / "cancel.jsonl", 1000, max_tokens=20)
    batch_id = batch_stack.yoyoctl("batch", "submit", str(path))["id"]
    batch_stack.wait_for(lambda: done_lines(batch_stack, batch_id) >= 50, 120, "some progress")
    cancelled = batch_stack.yoyoctl("batch", "cancel", batch_id)
    assert cancelled["status"] == "cancelling"  # the batch controller ends it (OpenAI's too)
    cancelled_at = time.time()

    def vm_idle() -> bool:
        beat = batch_stack.status()["instances"][0]["last_heartbeat"] or {}
        return beat.get("sent_at", 0) > cancelled_at and beat.get("running") == 0

    batch_stack.wait_for(vm_idle, 5, "an idle heartbeat after the cancel")
    shards = batch_stack.state_dir / "objects" / "batches" / batch_id / "shards"
    before = sorted(p.name for p in shards.rglob("*"))
    time.sleep(1.5)
    assert sorted(p.name for p in shards.rglob("*")) == before  # nothing ran after
    got = results(batch_stack, batch_id, tmp_path / "cancel-results.jsonl")
    assert len({r["custom_id"] for r in got}) == len(got) == 1000
    assert any((r.get("error") or {}).get("code") == "batch_cancelled" for r in got)
    # Every line the model answered is in the output: the checkpoints hold exactly the
    # answered lines (the worker flushed its partial chunk), and all of them came back.
    answered = {
        json.loads(x)["record"]["custom_id"]
        for p in shards.rglob("*.jsonl")
        for x in p.read_text().splitlines()
    }
    returned = {r["custom_id"] for r in got if r.get("response")}
    assert answered and answered == returned
    scaled_to_zero(batch_stack, timeout=60)


def test_bad_files_are_one_line_errors_and_nothing_is_submitted(
    batch_stack: Stack, tmp_path: Path
) -> None:
    before = len(batch_stack.yoyoctl("batch", "list")["data"])
    bad = tmp_path / "bad.jsonl"
    cases = {
        "line 2: not valid JSON": '{"custom_id": "a", "method": "POST", '
        '"url": "/v1/completions", "body": {}}\n{broken\n',
        "line 1: url '/v1/images'": '{"custom_id": "a", "method": "POST", '
        '"url": "/v1/images", "body": {}}\n',
    }
    for message, text in cases.items():
        bad.write_text(text)
        refused = batch_stack.yoyoctl("batch", "submit", str(bad), check=False)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1  # one line, no traceback
    missing = batch_stack.yoyoctl("batch", "status", "batch_" + "0" * 32, check=False)
    assert missing.returncode == 1 and "no batch" in missing.stderr
    assert len(batch_stack.yoyoctl("batch", "list")["data"]) == before
