"""The agent's side of "a VM speaks only for itself" (issue 12, case 4): every heartbeat
carries the VM's own identity token, fetched once and reused until near expiry, and its
counts are clamped so the control plane never refuses a busy VM's beat as out of range.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from fakes import RecordingPublisher
from yoyo_control import identity, messages
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.model_server import parse
from yoyo_control.agent.__main__ import build
from yoyo_control.agent.config import parse_agent_config
from yoyo_control.agent.policy import AgentState, Kill, Observation, PoolView, Settings, step
from yoyo_control.config import parse_config
from yoyo_control.local import identity as local_identity

CONFIG = parse_config(
    {
        "project": "p",
        "pools": {"gpu": {"zone": "europe-west4-a", "instances": ["vm-0", "vm-1"]}},
    }
)


def pubsub(data: bytes, publish_time: float) -> messages.PubSubMessage:
    return messages.PubSubMessage(data, "m-1", publish_time)


def test_every_heartbeat_carries_the_vms_own_token_fetched_once(tmp_path: Path) -> None:
    key = local_identity.ensure_key(tmp_path)
    config: dict[str, Any] = {
        "pool": "gpu",
        "instance": "vm-1",
        "project": "p",
        "zone": "europe-west4-a",
        "identity_key_file": str(key),
        "heartbeat_interval_s": 30,
        "metadata_url": "",
        "metrics_url": "http://127.0.0.1:9/metrics",
        "pubsub_url": "http://127.0.0.1:9/",
        "poweroff_command": [sys.executable, "-c", "pass"],
    }
    agent = build(parse_agent_config(config))
    agent.store = None
    clock = ManualClock(time.time())
    agent.clock = clock
    assert agent.identity is not None
    agent.identity.clock = clock  # type: ignore[attr-defined]
    recorder = RecordingPublisher()
    agent.publisher = recorder
    for _ in range(3):
        agent.step()
        clock.advance(30)
    assert len(recorder.data) == 3
    assert agent.identity.fetches == 1  # type: ignore[attr-defined]
    verifier = local_identity.verifier(tmp_path, CONFIG.heartbeat_audience)
    for data in recorder.data:
        fact = messages.decode_heartbeat(pubsub(data, clock.now()), CONFIG)
        token = json.loads(data)["identity"]
        identity.admit_heartbeat(fact, token, verifier, CONFIG)  # raises if not its own


def test_a_busy_vm_with_absurd_metrics_still_sends_a_beat_the_control_plane_accepts() -> None:
    text = (
        "vllm:num_requests_running 1e300\n"
        "vllm:num_requests_waiting +Inf\n"
        "vllm:num_requests_waiting NaN\n"
        "vllm:request_success_total 1e400\n"
    )
    metrics = parse(text)
    s = Settings("gpu", "vm-0", "b1", 30, idle_shutdown_s=600, deadman_grace_s=600)
    t0 = 1_800_000_000.0
    view = PoolView(t0 + 600, t0)
    _, verdict = step(AgentState(started_at=t0), Observation(t0, metrics, Kill(False), view), s)
    assert verdict.heartbeat is not None
    data = json.dumps(verdict.heartbeat).encode()
    beat = messages.decode_heartbeat(pubsub(data, t0), CONFIG).heartbeat
    assert beat.busy and beat.running > 0 and beat.waiting > 0
