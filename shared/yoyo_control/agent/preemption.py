"""Watch the GCE metadata server for preemption (``instance/preempted``).

Invariants: a long poll with ``wait_for_change=true`` and header ``Metadata-Flavor: Google``;
the event is set once the answer is ``TRUE`` and never cleared; errors back off and retry
(the watcher never ends the agent); an empty metadata URL disables the watch.
"""

from __future__ import annotations

import threading

from .. import jsonhttp as http
from .. import logs


def watch(base_url: str, preempted: threading.Event, stop: threading.Event) -> None:
    if not base_url:
        return
    url = f"{base_url.rstrip('/')}/instance/preempted"
    wait = False
    while not stop.is_set() and not preempted.is_set():
        try:
            status, body = http.request(
                "GET",
                url + ("?wait_for_change=true" if wait else ""),
                headers={"Metadata-Flavor": "Google"},
                timeout=300.0,
            )
        except OSError as exc:
            logs.warning(f"agent: metadata server not reachable: {exc}")
            stop.wait(5.0)
            continue
        if status != 200:
            logs.warning(f"agent: metadata server answered {status}")
            stop.wait(5.0)
            continue
        if body.strip().upper() == b"TRUE":
            preempted.set()
            return
        wait = True


def start(base_url: str, preempted: threading.Event, stop: threading.Event) -> None:
    thread = threading.Thread(
        target=watch, args=(base_url, preempted, stop), name="preemption", daemon=True
    )
    thread.start()
