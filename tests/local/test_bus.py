"""The local bus: the Eventarc envelope, ack on 2xx, retry with backoff otherwise, pulls."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from polling import eventually
from yoyo_control.local.bus import Broker, BusApp, LocalBusPublisher


class Endpoint:
    """A real HTTP function endpoint on 127.0.0.1 answering scripted statuses."""

    def __init__(self, statuses: list[int], fail_data: bytes | None = None) -> None:
        self.statuses = statuses
        self.fail_data = fail_data
        self.received: list[tuple[dict[str, str], bytes, float]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self.lock:
            self.received.append((headers, body, time.monotonic()))
            status = self.statuses.pop(0) if self.statuses else 200
            if self.fail_data is not None:
                data = json.loads(body)["data"]["message"]["data"]
                status = 500 if base64.b64decode(data) == self.fail_data else 200
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"OK"]


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def wait(predicate, timeout: float = 10) -> None:
    eventually(predicate, "the condition", timeout, every_s=0.01)


def test_push_delivers_the_eventarc_envelope_and_acks_on_2xx(serve) -> None:
    endpoint = Endpoint([204])
    url = serve(endpoint)
    broker = Broker("p", min_backoff_s=0.01)
    broker.create_subscription("s", "yoyo-control", url)
    broker.start()
    try:
        mid = broker.publish("yoyo-control", b'{"command":"kill"}', {"by": "me"})
        assert broker.wait_idle(10)
    finally:
        broker.stop()
    [(headers, body, _)] = endpoint.received
    assert headers["content-type"].startswith("application/cloudevents+json")
    event = json.loads(body)
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"] == "//pubsub.googleapis.com/projects/p/topics/yoyo-control"
    assert event["specversion"] == "1.0" and event["id"] == mid
    message = event["data"]["message"]
    assert base64.b64decode(message["data"]) == b'{"command":"kill"}'
    assert message["messageId"] == message["message_id"] == mid
    assert message["publishTime"].endswith("Z") and message["attributes"] == {"by": "me"}
    assert event["data"]["subscription"] == "projects/p/subscriptions/s"
    assert broker.subs["s"].delivered == 1 and broker.backlog("s") == 0


def test_5xx_is_retried_with_growing_backoff_until_a_2xx(serve) -> None:
    endpoint = Endpoint([500, 503, 500, 200])
    url = serve(endpoint)
    broker = Broker("p", min_backoff_s=0.05, max_backoff_s=1.0, workers_per_push=1)
    broker.create_subscription("s", "t", url)
    broker.start()
    try:
        broker.publish("t", b"{}", {})
        wait(lambda: broker.subs["s"].delivered == 1)
    finally:
        broker.stop()
    times = [t for _, _, t in endpoint.received]
    ids = {json.loads(b)["id"] for _, b, _ in endpoint.received}
    assert len(times) == 4 and len(ids) == 1  # the same message, four attempts
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # doubling backoff
    assert broker.dead_letters == []


def test_a_message_failing_max_attempts_is_dead_lettered_and_others_still_flow(serve) -> None:
    endpoint = Endpoint([], fail_data=b'"bad"')
    url = serve(endpoint)
    broker = Broker("p", min_backoff_s=0.01, max_attempts=3, workers_per_push=1)
    broker.create_subscription("s", "t", url)
    broker.start()
    try:
        broker.publish("t", b'"bad"', {})
        broker.publish("t", b'"good"', {})
        wait(lambda: broker.dead_letters and broker.subs["s"].delivered == 1)
    finally:
        broker.stop()
    assert [m.data for _, m, _ in broker.dead_letters] == [b'"bad"']


def test_unreachable_endpoint_is_retried_not_dropped() -> None:
    broker = Broker("p", min_backoff_s=0.01, max_attempts=3, workers_per_push=1)
    broker.create_subscription("s", "t", "http://127.0.0.1:9/")
    broker.start()
    try:
        broker.publish("t", b"{}", {})
        wait(lambda: broker.dead_letters)
    finally:
        broker.stop()
    assert "Connection refused" in broker.dead_letters[0][2]


def test_rest_publish_pull_ack_with_attribute_filter_and_drained_signal(serve) -> None:
    broker = Broker("p")
    url = serve(BusApp(broker))
    broker.create_subscription("work-a", "work", None, 'attributes.pool = "a"', 0.2)
    drained: list[str] = []
    broker.on_drained.append(lambda sub: drained.append(sub.name))
    publisher = LocalBusPublisher(url, "p")
    publisher.publish("work", b"for a", pool="a")
    publisher.publish("work", b"for b", pool="b")
    from yoyo_control import jsonhttp as http

    base = f"{url}/v1/projects/p/subscriptions/work-a"
    _, doc = http.post_json(f"{base}:pull", {"maxMessages": 5})
    [item] = doc["receivedMessages"]
    assert base64.b64decode(item["message"]["data"]) == b"for a"
    # Not acked within the deadline: delivered again, with a higher attempt count.
    time.sleep(0.25)
    _, doc = http.post_json(f"{base}:pull", {"maxMessages": 5})
    [again] = doc["receivedMessages"]
    assert again["deliveryAttempt"] == 2 and drained == []
    http.post_json(f"{base}:acknowledge", {"ackIds": [again["ackId"]]})
    assert broker.backlog("work-a") == 0 and drained == ["work-a"]
