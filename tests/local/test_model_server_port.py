"""The model server is a port (issue 26): the local stack with a second, different
OpenAI-compatible server (tests/other_model_server.py: not vLLM, llama.cpp's metric names).

Configured only by ``local.model_server`` (its command and metric names), the pool wakes
through the gateway and the server answers; its heartbeats say ready, then busy while a
request runs longer than the pool's idle timeout (read under the other names: with
vLLM's names the VM would look idle mid-traffic), then idle, and the pool scales to zero;
a batch runs on it through the VM's worker. Waits are bounded liveness timeouts.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import openai

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)

SERVER = Path(__file__).resolve().parents[1] / "other_model_server.py"
MODEL = "smol-other"


def other_server(config: dict[str, Any]) -> None:
    config["local"]["model_server"] = {
        "command": [
            "{python}", str(SERVER), "--port", "{port}", "--model", "{model}",
            "--api-key-file", "{api_key_file}", "--token-delay-s", "0.25", "--slots", "1",
        ],
        "metric_running": "llamacpp:requests_processing",
        "metric_waiting": "llamacpp:requests_deferred",
        "metric_finished": "llamacpp:tokens_predicted_total",
    }  # fmt: skip
    config["pools"]["default"]["model"] = MODEL
    config["gateway"] = {"poll_s": 0.2, "hold_s": 60}


def heartbeat(stack: Stack) -> dict[str, Any]:
    return stack.status()["instances"][0]["last_heartbeat"] or {}


def scaled_to_zero(stack: Stack) -> None:
    stack.wait_for(
        lambda: stack.vm() == "TERMINATED" and not (stack.status()["lease"] or {}).get("valid"),
        40,
        "the pool to scale to zero",
    )


def test_a_second_model_server_is_ready_busy_idle_and_runs_a_batch(
    configured_stack: Any, tmp_path: Path
) -> None:
    assert sys.executable  # the command's {python}
    stack = configured_stack(other_server)
    key = stack.yoyoctl("gateway", "key")
    client = openai.OpenAI(base_url=key["base_url"], api_key=key["key"], max_retries=0, timeout=90)
    answers: list[str] = []

    def ask(words: int) -> None:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=words
        )
        answers.append(reply.choices[0].message.content or "")

    # Cold: the gateway wakes the pool and holds the first request until the server is up.
    ask(2)
    assert answers == ["other-server says"]
    stack.wait_for(lambda: heartbeat(stack).get("ready") is True, 20, "a ready heartbeat")

    # Busy: two requests of ~6 s (one slot: one runs, one waits), longer than the pool's
    # idle timeout (4 s); the heartbeats say so under the other server's metric names.
    asks = [threading.Thread(target=ask, args=(24,)) for _ in range(2)]
    for t in asks:
        t.start()
    stack.wait_for(
        lambda: heartbeat(stack).get("running", 0) >= 1 and heartbeat(stack).get("waiting", 0) >= 1,
        20,
        "a heartbeat saying one request runs and one waits",
    )
    for t in asks:
        t.join(60)
    assert len(answers) == 3 and all(a.startswith("other-server") for a in answers[1:])
    assert stack.vm() == "RUNNING"  # nothing stopped the VM mid-traffic

    # Idle: the beats say nothing runs, and the pool scales to zero.
    stack.wait_for(
        lambda: heartbeat(stack).get("busy") is False and heartbeat(stack).get("running") == 0,
        20,
        "an idle heartbeat",
    )
    scaled_to_zero(stack)

    # The batch worker drives the same server.
    path = tmp_path / "lines.jsonl"
    with path.open("w") as f:
        for i in range(5):
            body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 3}
            line = {"custom_id": f"c-{i}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}) + "\n")
    submitted = stack.yoyoctl("batch", "submit", str(path))
    out = tmp_path / "results.jsonl"
    stack.yoyoctl(
        "batch", "results", submitted["id"], "--wait", "--timeout", "120", "-o", str(out),
        timeout=150,
    )  # fmt: skip
    results = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in results) == [f"c-{i}" for i in range(5)]
    for r in results:
        assert r["response"]["status_code"] == 200
        content = r["response"]["body"]["choices"][0]["message"]["content"]
        assert content == "other-server says hello"
