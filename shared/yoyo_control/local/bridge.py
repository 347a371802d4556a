"""The emulator profile's Eventarc: Pub/Sub emulator subscriptions → CloudEvents → functions.

For every event topic it creates the topic and a pull subscription in the Pub/Sub emulator
(REST), pulls, and posts each message to the topic's function as the same structured
CloudEvent the local bus pushes (envelope.pubsub_event). It also creates the work topic
and each pool's filtered work subscription, which the local VMs pull.

Invariants: a message is acknowledged only after its function answered 2xx; otherwise its
ack deadline is reset to 0 (redelivered) after a backoff; the bridge never drops a
message it could not deliver. An empty pull doubles the wait before the next one, from
IDLE_POLL_MIN_S up to IDLE_POLL_MAX_S (an idle stack pulls each subscription about once
a second, not ten times); a pull that returned messages pulls again at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from .. import jsonhttp as http
from .. import logs, names
from ..config import Config
from . import envelope
from .bus import Deliver, http_deliver

IDLE_POLL_MIN_S = 0.1
IDLE_POLL_MAX_S = 1.0


class Bridge:
    def __init__(
        self,
        config: Config,
        pubsub_url: str,
        functions_url: str,
        work_subscription: Callable[[Config, str], str],
        deliver: Deliver = http_deliver,
    ) -> None:
        self.config = config
        self.base = f"{pubsub_url.rstrip('/')}/v1/projects/{config.project}"
        self.functions_url = functions_url
        self.work_subscription = work_subscription
        self.deliver = deliver
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _put(self, path: str, body: dict[str, Any]) -> None:
        import json

        status, raw = http.request(
            "PUT",
            f"{self.base}/{path}",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        if status not in (200, 409):
            raise OSError(f"PUT {path}: HTTP {status}: {raw[:200]!r}")

    def start(self) -> None:
        c = self.config
        for topic in (*names.FUNCTION_TOPICS, names.TOPIC_WORK):
            self._put(f"topics/{c.topic(topic)}", {})
        for pool in c.pools:
            self._put(
                f"subscriptions/{self.work_subscription(c, pool)}",
                {
                    "topic": f"projects/{c.project}/topics/{c.topic(names.TOPIC_WORK)}",
                    "ackDeadlineSeconds": 60,
                    "filter": f'attributes.pool = "{pool}"',
                },
            )
        for topic in names.FUNCTION_TOPICS:
            sub = f"{c.topic(topic)}-bridge"
            self._put(
                f"subscriptions/{sub}",
                {
                    "topic": f"projects/{c.project}/topics/{c.topic(topic)}",
                    "ackDeadlineSeconds": 60,
                },
            )
            url = f"{self.functions_url}/{names.FUNCTION_TOPICS[topic]}/"
            thread = threading.Thread(
                target=self._loop,
                args=(c.topic(topic), sub, url),
                daemon=True,
                name=f"bridge-{topic}",
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _loop(self, topic: str, sub: str, url: str) -> None:
        backoff = 0.2
        idle_wait = IDLE_POLL_MIN_S
        while not self._stop.is_set():
            try:
                status, doc = http.post_json(
                    f"{self.base}/subscriptions/{sub}:pull",
                    {"maxMessages": 10, "returnImmediately": True},
                )
            except OSError:
                self._stop.wait(IDLE_POLL_MAX_S)
                continue
            received = (doc or {}).get("receivedMessages") or [] if status == 200 else []
            if not received:
                self._stop.wait(idle_wait)
                idle_wait = min(idle_wait * 2, IDLE_POLL_MAX_S)
                continue
            idle_wait = IDLE_POLL_MIN_S
            for item in received:
                headers, body = envelope.pubsub_event(
                    self.config.project, topic, sub, item["message"]
                )
                try:
                    ok = 200 <= self.deliver(url, headers, body) < 300
                except OSError:
                    ok = False
                verb, payload = ("acknowledge", {"ackIds": [item["ackId"]]})
                if not ok:
                    logs.warning(f"bridge: delivery to {url} failed; redelivering", topic=topic)
                    verb = "modifyAckDeadline"
                    payload = {"ackIds": [item["ackId"]], "ackDeadlineSeconds": 0}
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                else:
                    backoff = 0.2
                # On failure the ack deadline expires and the message comes back.
                with contextlib.suppress(OSError):
                    http.post_json(f"{self.base}/subscriptions/{sub}:{verb}", payload)
