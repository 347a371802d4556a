"""The worker's loop: pull a shard while the model server is ready, run it, settle it.

Invariants:
- A shard is pulled only while the model server is ready (``ModelServer.ready``:
  ``/health``) and a shard slot is free; its ack deadline is set to ``ack_deadline_s`` at
  once and extended every third of it while it runs, so a dead worker's shard is
  redelivered within ``ack_deadline_s``.
- Acknowledged only after the shard's results are durable (``done``) or the batch was
  cancelled; a foreign or malformed message is logged with its reason and acknowledged;
  a server that keeps failing or a storage error hands the shard back (deadline 0) so
  Pub/Sub redelivers it, on this VM or another.
- SIGTERM/SIGINT stop pulling, hand running shards back, and exit; a SIGKILL loses only
  unacknowledged work, which Pub/Sub redelivers and checkpoints resume.
"""

from __future__ import annotations

import threading
import time

from .. import logs
from ..adapters.model_server import HttpModelServer
from ..batch import work
from ..domain.batch import BatchInputError
from ..errors import TemporaryError
from ..ports import ModelServer, QueuedMessage, WorkQueue
from .config import WorkerConfig
from .shard import ServerUnavailable, ShardRunner

HEALTH_TIMEOUT_S = 5.0  # how long the model server's /health may take to say it is ready


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        queue: WorkQueue,
        runner: ShardRunner,
        server: ModelServer | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.runner = runner
        self.server = server or HttpModelServer(config.server_url, timeout_s=HEALTH_TIMEOUT_S)
        self.stop = threading.Event()
        self.shard_slots = threading.BoundedSemaphore(config.shards_at_once)
        self.threads: list[threading.Thread] = []

    def server_ready(self) -> bool:
        return self.server.ready()

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

    def _keep_extended(self, item: QueuedMessage, finished: threading.Event) -> None:
        """Now (a subscription's own deadline may be longer) and every third of it."""
        every = self.config.ack_deadline_s / 3
        first = True
        while first or not finished.wait(every):
            first = False
            try:
                self.queue.extend(item.ack_id, self.config.ack_deadline_s)
            except OSError as exc:
                logs.warning(f"worker: extending the ack deadline failed: {exc}")

    def _settle(self, item: QueuedMessage, ack: bool) -> None:
        try:
            if ack:
                self.queue.acknowledge(item.ack_id)
            else:
                self.queue.extend(item.ack_id, 0)  # hand it back now
        except OSError as exc:  # the deadline runs out and Pub/Sub redelivers
            logs.warning(f"worker: settling message {item.message_id} failed: {exc}")

    def handle(self, item: QueuedMessage) -> None:
        try:
            self._handle(item)
        finally:
            self.shard_slots.release()

    def _handle(self, item: QueuedMessage) -> None:
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
