"""Scaling on load on the local stack (issue 27, "Done when"): a pool of 3 local VMs
under 40 concurrent streams through the gateway grows to 3 VMs, and shrinks back once
the load ends, with no request lost.

The gateway does not report its load here: the VMs' heartbeats (running and waiting,
read from each inference server's /metrics like vLLM's) drive it. Each local server
runs 4 sequences at once (``--max-num-seqs`` 4), so the pool says ``max_num_seqs: 4``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import openai

from local.conftest import Stack

MODEL = "tiny-llm"
STREAMS = 40


def _configure(config: dict[str, Any]) -> None:
    pool = config["pools"]["default"]
    pool.update(
        model=MODEL,
        instances=["vm-0", "vm-1", "vm-2"],
        max_num_seqs=4,
        scale_window_s=2,
        idle_timeout_s=4,
        keepalive="fixed",
    )
    config["local"]["token_latency_s"] = 0.05
    config["gateway"] = {"poll_s": 0.2, "hold_s": 120}


def _wanted(s: Stack) -> int:
    return sum(1 for i in s.status()["instances"] if i["desired"] == "RUNNING")


def _serving(s: Stack) -> int:
    return sum(1 for i in s.status()["instances"] if i["vm"] == "RUNNING")


def test_forty_streams_grow_the_pool_to_three_and_it_shrinks_after(configured_stack) -> None:
    s = configured_stack(_configure)
    key = s.yoyoctl("gateway", "key")
    client = openai.OpenAI(base_url=key["base_url"], api_key=key["key"], max_retries=0, timeout=120)
    stop = threading.Event()
    sent: list[int] = []
    answered: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def stream_forever(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with lock:
                sent.append(worker)
            try:
                pieces = client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"s{worker}-{n}"}],
                    max_tokens=20,
                    stream=True,
                )
                text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
                with lock:
                    (answered if text.strip() else failures).append(worker)
            except Exception as exc:  # every failure is counted, none hidden
                with lock:
                    failures.append(f"{worker}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=stream_forever, args=(i,)) for i in range(STREAMS)]
    for t in threads:
        t.start()
    try:
        s.wait_for(lambda: _wanted(s) == 3, 90, "the pool grows to 3 VMs under 40 streams")
        s.wait_for(lambda: _serving(s) == 3, 90, "3 VMs serving")
        time.sleep(2)  # serve on 3 for a moment
    finally:
        stop.set()
        for t in threads:
            t.join(150)
    assert not failures, failures[:5]
    assert len(answered) == len(sent) > STREAMS  # no request lost
    s.wait_for(lambda: _wanted(s) <= 1, 60, "the pool shrinks once the load ends")
    events = s.yoyoctl("events", "--limit", "500")["events"]
    reasons = [str(e.get("reason", "")) for e in events]
    assert any("scale out to" in r for r in reasons)
    assert any("scale in to" in r for r in reasons)
    s.wait_for(lambda: _serving(s) == 0, 60, "every VM stopped after the keep-alive")
