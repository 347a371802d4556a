"""The agent's configuration file (JSON): every key it reads.

Required:
- ``pool`` (str), ``instance`` (str): who this VM is (vm/startup.sh adds ``instance``).
- ``project`` (str): the Google Cloud project (Pub/Sub and Firestore).

Optional (defaults in brackets):
- ``heartbeat_topic`` ["yoyo-heartbeat"]: the full topic name heartbeats go to.
- ``firestore_database`` ["(default)"]: where the kill switch and the pool's lease live.
- ``heartbeat_interval_s`` [30]: seconds between heartbeats (also sent at once when the
  VM turns busy or idle, and when preemption is noticed).
- ``idle_shutdown_s`` [1800]: the idle backstop: power off after this long without work
  (no running or waiting request on the inference server, no request finished).
- ``deadman_grace_s`` [900]: the dead-man switch: power off when the pool has no valid
  lease and the control plane has written nothing for this long after the later of the
  lease's end and the agent's start.
- ``metrics_url`` ["http://127.0.0.1:8000/metrics"]: the model server's Prometheus
  endpoint; the server counts as ready while it answers 200 there.
- ``metric_running``, ``metric_waiting``, ``metric_finished`` [vLLM's:
  ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:request_success_total``]: the names under which that endpoint says how many
  requests run, wait, and have finished (adapters/model_server.py; any OpenAI-compatible
  server fits, e.g. llama.cpp's ``llamacpp:requests_processing``,
  ``llamacpp:requests_deferred``, ``llamacpp:tokens_predicted_total``).
- ``address`` [""]: host:port at which the gateway reaches this VM's inference server
  (its internal IP and port 8000; vm/startup.sh fills it in), announced in every
  heartbeat; "" announces nothing (the gateway then cannot route to this VM).
- ``poweroff_command`` [["systemctl", "poweroff"]]: argv run to power the VM off.
- ``metadata_url`` ["http://metadata.google.internal/computeMetadata/v1"]: the GCE
  metadata server, watched for ``instance/preempted``; "" disables the watch (local VMs).
- ``pubsub_url`` [""]: a Pub/Sub REST base URL (the local bus, or the Pub/Sub emulator);
  "" publishes with the Google Cloud client library.
- ``bus_secret_file`` [""]: the local stack's secret (local/guard.py), sent with every
  publish to its bus.
- ``sqlite_path`` [""]: read the kill switch and the lease from this SQLite store (the
  local stack) instead of Firestore.
- ``boot_id`` [""]: this boot's id; "" reads /proc/sys/kernel/random/boot_id.
- ``poll_s`` [1]: how often the agent looks at the world (≤ the heartbeat interval).
- ``store_poll_s`` [0 = the heartbeat interval]: how often it re-reads the kill switch and
  the lease (store reads cost money; the reconciler is the fast stop path, this is the
  backstop).
- ``poweroff_retry_s`` [30]: how long to wait before running the power-off command again
  when the VM is still up.
- ``heartbeat_audience`` ["yoyo-heartbeat"]: the audience of the identity token every
  heartbeat carries (the control plane's ``heartbeat_audience``; both must agree).
- ``identity_key_file`` [""]: sign the identity token with this RSA key (the local
  stack) instead of asking the metadata server for Google's; then ``zone`` [""] is the
  zone the token names.
- ``read_deadline_s`` [0 = a third of the heartbeat interval, between 0.5 and 5 s]: the
  total time one read (store, metrics) or one heartbeat publish may take; a read that
  takes longer counts as unanswered, so no server can stall the backstops.

Invariant: unknown keys are ignored (the deployment may add keys for other units, such
as ``weights_uri``); a missing required key or a wrong type is a one-line error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"


@dataclass(frozen=True)
class AgentConfig:
    pool: str
    instance: str
    project: str
    heartbeat_topic: str = "yoyo-heartbeat"
    firestore_database: str = "(default)"
    heartbeat_interval_s: float = 30.0
    idle_shutdown_s: float = 1800.0
    deadman_grace_s: float = 900.0
    metrics_url: str = "http://127.0.0.1:8000/metrics"
    metric_running: str = "vllm:num_requests_running"
    metric_waiting: str = "vllm:num_requests_waiting"
    metric_finished: str = "vllm:request_success_total"
    address: str = ""
    poweroff_command: tuple[str, ...] = ("systemctl", "poweroff")
    metadata_url: str = DEFAULT_METADATA_URL
    pubsub_url: str = ""
    sqlite_path: str = ""
    boot_id: str = ""
    poll_s: float = 1.0
    store_poll_s: float = 0.0
    poweroff_retry_s: float = 30.0
    read_deadline_s: float = 0.0
    heartbeat_audience: str = "yoyo-heartbeat"
    bus_secret_file: str = ""
    identity_key_file: str = ""
    zone: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def read_deadline(self) -> float:
        if self.read_deadline_s > 0:
            return self.read_deadline_s
        return min(5.0, max(0.5, self.heartbeat_interval_s / 3))


def parse_agent_config(raw: Mapping[str, Any]) -> AgentConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("agent config: expected a JSON object")
    known = {f.name: f for f in fields(AgentConfig) if f.name != "extra"}
    kwargs: dict[str, Any] = {}
    for name in ("pool", "instance", "project"):
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"agent config: {name!r} is required (a non-empty string)")
    for name, value in raw.items():
        if name not in known:
            continue
        default = known[name].default
        if name == "poweroff_command":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise ConfigError("agent config: 'poweroff_command' must be a list of strings")
            kwargs[name] = tuple(value)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"agent config: {name!r} must be a number >= 0")
            kwargs[name] = float(value)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"agent config: {name!r} must be a string")
            kwargs[name] = value
    kwargs["extra"] = {k: v for k, v in raw.items() if k not in known}
    config = AgentConfig(**kwargs)
    if config.heartbeat_interval_s <= 0 or config.poll_s <= 0:
        raise ConfigError("agent config: heartbeat_interval_s and poll_s must be > 0")
    return config


def load_agent_config(path: str | Path) -> AgentConfig:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"agent config {path}: {exc}") from None
    return parse_agent_config(raw)
