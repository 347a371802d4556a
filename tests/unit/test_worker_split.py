"""The worker after its split (worker/config.py, worker/loop.py, machine.py) behaves as
worker/__main__.py did before it: its model server is read at ``server_url`` and its
``/health`` is given 5 s to answer (the split's adapter defaulted to 2 s, so a vLLM slow
to answer under its own batch load paused the pulls)."""

from __future__ import annotations

from pathlib import Path

from yoyo_control.adapters.model_server import HttpModelServer
from yoyo_control.worker.__main__ import Worker, WorkerConfig, build


def test_the_worker_gives_health_as_long_as_before_the_split(tmp_path: Path) -> None:
    config = WorkerConfig(
        project="p", subscription="s", pubsub_url="http://127.0.0.1:9", storage_dir=str(tmp_path)
    )
    built = build(config)
    for worker in (built, Worker(config, built.queue, built.runner)):
        assert isinstance(worker.server, HttpModelServer)
        assert worker.server.base_url == "http://127.0.0.1:8000"
        assert worker.server.health_path == "/health"
        assert worker.server.timeout_s == 5.0
