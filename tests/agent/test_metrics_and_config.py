"""Reading vLLM's /metrics text, and the agent's configuration file."""

from __future__ import annotations

import pytest

from yoyo_control.adapters.model_server import VLLM as VLLM_NAMES
from yoyo_control.adapters.model_server import MetricNames, parse
from yoyo_control.agent.config import parse_agent_config
from yoyo_control.errors import ConfigError
from yoyo_control.machine import model_server

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


LLAMA_CPP = """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
llamacpp:requests_deferred 3
llamacpp:tokens_predicted_total 41
vllm:num_requests_running 9
"""


def test_another_servers_metrics_read_under_their_configured_names() -> None:
    names = MetricNames(
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
        "llamacpp:tokens_predicted_total",
    )
    m = parse(LLAMA_CPP, names)
    assert (m.running, m.waiting, m.succeeded) == (2, 3, 41.0)
    # Under vLLM's names the same server would read as idle (the issue-26 failure).
    assert (parse(LLAMA_CPP).running, parse(LLAMA_CPP).waiting) == (9, 0)


def test_the_agent_config_takes_metric_names_and_the_vm_root_reads_them() -> None:
    config = parse_agent_config(
        {
            "pool": "gpu",
            "instance": "vm-0",
            "project": "p",
            "metrics_url": "http://127.0.0.1:8080/prom",
            "metric_running": "llamacpp:requests_processing",
        }
    )
    assert config.metric_running == "llamacpp:requests_processing"
    assert config.metric_waiting == "vllm:num_requests_waiting"  # the default stays vLLM's
    server = model_server(config.metrics_url, VLLM_NAMES)
    assert (server.base_url, server.metrics_path) == ("http://127.0.0.1:8080", "/prom")
    with pytest.raises(ConfigError):
        parse_agent_config({"pool": "gpu", "instance": "vm-0", "project": "p", "metric_running": 3})
