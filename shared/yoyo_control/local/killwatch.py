"""The kill-switch watcher: a Firestore document trigger, locally.

Polls the store's kill-switch document every ``poll_s``; when it changes (an operator's
``yoyoctl kill --direct``, a console edit, or the control plane's own write) it posts the
``google.cloud.firestore.document.v1.written`` CloudEvent to ``on_kill_switch_written``,
with old and new values, as Eventarc does.

Invariants: every change observed is delivered at least once (retried with backoff until
a 2xx); the first read at start-up is a baseline, not a change; a store read error is
logged and the next poll tries again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import logs, names
from ..domain.codec import to_doc
from ..domain.model import KillSwitch
from ..ports import Store
from . import envelope
from .bus import Deliver


class KillWatch:
    def __init__(
        self,
        store: Store,
        url: str,
        project: str,
        database: str,
        deliver: Deliver,
        poll_s: float = 0.25,
    ) -> None:
        self.store = store
        self.url = url
        self.project = project
        self.database = database
        self.deliver = deliver
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="killwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _read(self) -> KillSwitch | None:
        try:
            return self.store.get_kill()
        except Exception as exc:
            logs.warning(f"killwatch: kill switch not readable: {exc}")
            return None

    def _loop(self) -> None:
        last = None
        while last is None and not self._stop.is_set():
            last = self._read()
            if last is None:
                self._stop.wait(1.0)
        while not self._stop.is_set():
            self._stop.wait(self.poll_s)
            current = self._read()
            if current is None or current == last:
                continue
            self.post(last, current)
            last = current

    def post(self, old: KillSwitch | None, new: KillSwitch) -> None:
        self._seq += 1
        event_id = f"kill-{time.time_ns()}-{self._seq}"
        headers, body = envelope.firestore_written(
            self.project,
            self.database,
            names.KILL_SWITCH_PATH,
            _doc(new),
            _doc(old) if old is not None else None,
            event_id,
            time.time(),
        )
        backoff = 0.2
        while not self._stop.is_set():
            try:
                status = self.deliver(self.url, headers, body)
            except OSError as exc:
                status = 0
                logs.warning(f"killwatch: delivery failed: {exc}")
            if 200 <= status < 300:
                logs.info(
                    f"kill switch written (engaged={new.engaged}): delivered to "
                    f"{names.ENTRY_KILL_SWITCH_WRITTEN}",
                    source="killwatch",
                )
                return
            logs.warning(f"killwatch: {names.ENTRY_KILL_SWITCH_WRITTEN} answered {status}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)


def _doc(kill: KillSwitch) -> dict[str, Any]:
    return dict(to_doc(kill))
