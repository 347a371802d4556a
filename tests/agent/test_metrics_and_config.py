"""Reading vLLM's /metrics text, and the agent's configuration file."""

from __future__ import annotations

import pytest

from yoyo_control.adapters.model_server import parse
from yoyo_control.agent.config import parse_agent_config
from yoyo_control.errors import ConfigError

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 2.0
vllm:request_success_total{finished_reason="stop",model_name="m"} 7.0
vllm:request_success_total{finished_reason="length",model_name="m"} 5.0
vllm:num_requests_swapped{model_name="m"} 9.0
garbage line
"""


def test_parse_sums_label_sets_and_ignores_the_rest() -> None:
    m = parse(VLLM)
    assert (m.running, m.waiting, m.succeeded) == (4, 2, 12.0)


def test_absent_metrics_read_as_zero() -> None:
    m = parse("# nothing\nprocess_cpu_seconds_total 1.0\n")
    assert (m.running, m.waiting, m.succeeded) == (0, 0, 0.0)


def test_the_deployed_agent_config_parses() -> None:
    # The shape terraform/compute.tf writes (plus the instance vm/startup.sh adds).
    config = parse_agent_config(
        {
            "pool": "gpu",
            "instance": "yoyo-gpu-0",
            "project": "p",
            "heartbeat_topic": "yoyo-heartbeat",
            "firestore_database": "(default)",
            "heartbeat_interval_s": 30,
            "idle_shutdown_s": 1200,
            "deadman_grace_s": 900,
            "metrics_url": "http://127.0.0.1:8000/metrics",
            "poweroff_command": ["systemctl", "poweroff"],
            "weights_uri": "gs://b/models/gpu",
        }
    )
    assert config.poweroff_command == ("systemctl", "poweroff")
    assert config.idle_shutdown_s == 1200.0
    assert config.extra == {"weights_uri": "gs://b/models/gpu"}
    assert config.metadata_url.startswith("http://metadata.google.internal")


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ({"instance": "i", "project": "p"}, "pool"),
        ({"pool": "g", "instance": "i", "project": "p", "poweroff_command": "reboot"}, "list"),
        ({"pool": "g", "instance": "i", "project": "p", "idle_shutdown_s": -1}, "idle"),
    ],
)
def test_bad_agent_configs_are_one_clear_error(raw: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        parse_agent_config(raw)
