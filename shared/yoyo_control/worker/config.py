"""yoyo-worker's configuration file (JSON): every key it reads, checked once at start.

Invariants: unknown keys are errors; exactly one of ``bucket`` and ``storage_dir``; counts
at least 1; ``ack_deadline_s`` within Pub/Sub's 10..600. The model server is reached at
``server_url`` (its ``/health`` says ready; its ``/v1`` runs the lines); its key is in
``api_key_file`` (the local stack), else ``VLLM_API_KEY`` in the environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

VLLM_API_KEY_ENV = "VLLM_API_KEY"  # as vm/startup.sh writes it for vllm.service


@dataclass(frozen=True)
class WorkerConfig:
    project: str
    subscription: str
    server_url: str = "http://127.0.0.1:8000"
    pubsub_url: str = ""  # "": Google's Pub/Sub with the VM's token
    bucket: str = ""  # Cloud Storage bucket, or
    storage_dir: str = ""  # a local directory (the local stack)
    bus_secret_file: str = ""  # the local stack's secret (local/guard.py)
    # The inference server's API key: this file (the local stack), else VLLM_API_KEY from
    # the environment (a VM: yoyo-worker.service reads vm/startup.sh's vllm-gateway.env).
    api_key_file: str = ""
    concurrency: int = 8
    shards_at_once: int = 2
    chunk_lines: int = 25
    ack_deadline_s: int = 60


def load_config(path: str) -> WorkerConfig:
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    known = {f.name for f in fields(WorkerConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    config = WorkerConfig(**raw)
    if not config.project or not config.subscription:
        raise ValueError(f"{path}: 'project' and 'subscription' are required")
    if bool(config.bucket) == bool(config.storage_dir):
        raise ValueError(f"{path}: set exactly one of 'bucket' and 'storage_dir'")
    if min(config.concurrency, config.shards_at_once, config.chunk_lines) < 1:
        raise ValueError(f"{path}: concurrency, shards_at_once and chunk_lines must be >= 1")
    if not 10 <= config.ack_deadline_s <= 600:
        raise ValueError(f"{path}: ack_deadline_s must be within 10..600 (Pub/Sub's range)")
    return config
