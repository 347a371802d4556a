"""A batch bench on one machine: the local bus over HTTP, the simulated inference server,
a local-directory Storage, a SQLite store, and the real BatchService and Worker.

Invariants: every server listens on 127.0.0.1:0 and is shut down at teardown; worker
threads are stopped and joined; the clock is a settable fake (completion windows) that
starts at the wall clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server

from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.batch.controller import BatchController
from yoyo_control.batch.service import BatchService
from yoyo_control.local.bus import Broker
from yoyo_control.local.inference import Engine
from yoyo_control.worker.__main__ import Worker, WorkerConfig
from yoyo_control.worker.queue import WorkQueue
from yoyo_control.worker.shard import ShardRunner

POOL = "default"
SUBSCRIPTION = f"yoyo-work-sub-{POOL}"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def request_line(i: int, url: str = "/v1/chat/completions", **body: Any) -> str:
    if url == "/v1/chat/completions":
        body.setdefault("messages", [{"role": "user", "content": f"question {i}"}])
    elif url == "/v1/completions":
        body.setdefault("prompt", f"prompt {i}")
    body.setdefault("max_tokens", 3)
    return json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": url, "body": body})


def jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Bench:
    service: BatchService
    storage: LocalStorage
    broker: Broker
    engine: Engine
    server_url: str
    bus_url: str
    clock: Clock
    workers: list[tuple[Worker, threading.Thread]] = field(default_factory=list)

    def worker(self, concurrency: int = 8, chunk_lines: int = 10, **runner: Any) -> Worker:
        config = WorkerConfig(
            project="local-project",
            subscription=SUBSCRIPTION,
            server_url=self.server_url,
            pubsub_url=self.bus_url,
            storage_dir=str(self.storage.root),
            concurrency=concurrency,
            chunk_lines=chunk_lines,
            ack_deadline_s=10,
        )
        queue = WorkQueue(self.bus_url, config.project, SUBSCRIPTION)
        shard_runner = ShardRunner(
            self.storage, self.server_url, concurrency=concurrency,
            chunk_lines=chunk_lines, **runner,
        )  # fmt: skip
        worker = Worker(config, queue, shard_runner)
        thread = threading.Thread(target=worker.serve, name="worker", daemon=True)
        thread.start()
        self.workers.append((worker, thread))
        return worker

    def stop_workers(self) -> None:
        for worker, thread in self.workers:
            worker.stop.set()
            thread.join(30)
        self.workers = []

    @property
    def controller(self) -> BatchController:
        """The batch controller over this bench's service (no lifecycle to tell)."""
        return BatchController(self.service, None)

    def wait_terminal(self, batch_id: str, timeout: float = 60) -> Any:
        """Run the batch controller until the batch is terminal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.controller.run()
            batch = self.service.get(batch_id)
            if batch.terminal:
                return batch
            time.sleep(0.1)
        raise AssertionError(f"batch {batch_id} not finished after {timeout}s: {batch}")


def serve_wsgi(app: Any, cleanups: list[Callable[[], None]]) -> str:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanups.append(server.shutdown)
    return f"http://127.0.0.1:{server.server_port}"
