"""``python -m yoyo_control.worker --config FILE``: the yoyo-worker unit's entry point.

Invariants:
- A shard is pulled only while the inference server answers ``/health`` and a shard slot
  is free; its ack deadline is set to ``ack_deadline_s`` at once and extended every third
  of it while it runs, so a dead worker's shard is redelivered within ``ack_deadline_s``.
- Acknowledged only after the shard's results are durable (``done``) or the batch was
  cancelled; a foreign or malformed message is logged with its reason and acknowledged;
  a server that keeps failing or a storage error hands the shard back (deadline 0) so
  Pub/Sub redelivers it, on this VM or another.
- SIGTERM/SIGINT stop pulling, hand running shards back, and exit; a SIGKILL loses only
  unacknowledged work, which Pub/Sub redelivers and checkpoints resume.
- A configuration error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .. import jsonhttp as http
from .. import logs
from ..batch import work
from ..domain.batch import BatchInputError
from ..errors import TemporaryError
from ..local import guard
from ..ports import Storage
from .queue import GOOGLE_PUBSUB, Pulled, WorkQueue, google_token
from .shard import ServerUnavailable, ShardRunner, http_poster

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


def build_storage(config: WorkerConfig) -> Storage:
    if config.bucket:
        from ..adapters.cloud_storage import CloudStorage

        return CloudStorage(config.bucket, project=config.project)
    from ..adapters.local_storage import LocalStorage

    return LocalStorage(config.storage_dir)


class Worker:
    def __init__(self, config: WorkerConfig, queue: WorkQueue, runner: ShardRunner) -> None:
        self.config = config
        self.queue = queue
        self.runner = runner
        self.stop = threading.Event()
        self.shard_slots = threading.BoundedSemaphore(config.shards_at_once)
        self.threads: list[threading.Thread] = []

    def server_ready(self) -> bool:
        try:
            status, _ = http.get(self.config.server_url.rstrip("/") + "/health", timeout=5)
        except OSError:
            return False
        return status == 200

    def serve(self) -> None:
        while not self.stop.is_set():
            if not self.server_ready():
                self.stop.wait(0.5)
                continue
            if not self.shard_slots.acquire(timeout=0.2):
                continue
            asked = time.monotonic()
            try:
                pulled = self.queue.pull(1)  # a long poll: it waits for a message itself
            except OSError as exc:
                self.shard_slots.release()
                logs.warning(f"worker: pull failed: {exc}")
                self.stop.wait(1.0)
                continue
            if not pulled:
                self.shard_slots.release()
                if time.monotonic() - asked < 1.0:  # a queue that answered at once
                    self.stop.wait(1.0)
                continue
            thread = threading.Thread(target=self.handle, args=(pulled[0],), name="shard")
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        for thread in self.threads:
            thread.join()

    def _keep_extended(self, item: Pulled, finished: threading.Event) -> None:
        """Now (a subscription's own deadline may be longer) and every third of it."""
        every = self.config.ack_deadline_s / 3
        first = True
        while first or not finished.wait(every):
            first = False
            try:
                self.queue.extend(item.ack_id, self.config.ack_deadline_s)
            except OSError as exc:
                logs.warning(f"worker: extending the ack deadline failed: {exc}")

    def _settle(self, item: Pulled, ack: bool) -> None:
        try:
            if ack:
                self.queue.acknowledge(item.ack_id)
            else:
                self.queue.extend(item.ack_id, 0)  # hand it back now
        except OSError as exc:  # the deadline runs out and Pub/Sub redelivers
            logs.warning(f"worker: settling message {item.message_id} failed: {exc}")

    def handle(self, item: Pulled) -> None:
        try:
            self._handle(item)
        finally:
            self.shard_slots.release()

    def _handle(self, item: Pulled) -> None:
        try:
            job = work.decode_shard(item.data, item.attributes)
        except ValueError as exc:
            logs.warning(f"worker: message {item.message_id} refused: {exc}; acknowledged")
            self._settle(item, ack=True)
            return
        finished = threading.Event()
        keeper = threading.Thread(target=self._keep_extended, args=(item, finished), daemon=True)
        keeper.start()
        where = f"batch {job.batch_id} shard {job.shard} (lines {job.first_line}-{job.last_line})"
        try:
            outcome = self.runner.run(job, self.stop)
        except (ServerUnavailable, TemporaryError, OSError) as exc:
            logs.warning(f"worker: {where} handed back: {exc}")
            self._settle(item, ack=False)
            return
        except (BatchInputError, LookupError, ValueError) as exc:
            logs.error(f"worker: {where} cannot run: {exc}; acknowledged")
            self._settle(item, ack=True)
            return
        finally:
            finished.set()
        if outcome.status == "stopped":
            self._settle(item, ack=False)
            return
        logs.info(f"worker: {where} {outcome.status}, {outcome.ran} lines run here")
        self._settle(item, ack=True)


def _server_key(config: WorkerConfig) -> str:
    if config.api_key_file:
        return guard.read_secret_file(config.api_key_file)
    return os.environ.get(VLLM_API_KEY_ENV, "").strip()


def build(config: WorkerConfig) -> Worker:
    if config.pubsub_url:
        queue = WorkQueue(
            config.pubsub_url,
            config.project,
            config.subscription,
            headers=guard.secret_headers(guard.read_secret_file(config.bus_secret_file)),
        )
    else:
        queue = WorkQueue(GOOGLE_PUBSUB, config.project, config.subscription, google_token())
    runner = ShardRunner(
        build_storage(config),
        config.server_url,
        concurrency=config.concurrency,
        chunk_lines=config.chunk_lines,
        post=http_poster(_server_key(config)),
    )
    return Worker(config, queue, runner)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yoyo_control.worker")
    parser.add_argument("--config", required=True, help="the worker's JSON configuration")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"yoyo-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    worker = build(config)

    def shutdown(*_: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    logs.info(f"worker: pulling {config.subscription} for {config.server_url}")
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
