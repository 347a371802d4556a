"""The local stack obeys its operator only (issue 12, case 5), on a real ``yoyoctl local up``.

A web page the operator visits can send a "simple" cross-origin request to 127.0.0.1
(POST, ``Content-Type: text/plain``), and a DNS name rebound to 127.0.0.1 reaches it
with a foreign ``Host``. Neither may change anything; ``yoyoctl`` still works because it
reads the stack's secret from the state directory.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)


def base_url(stack: Stack) -> str:
    return str(json.loads((stack.state_dir / "local-up.json").read_text())["url"])


def send(url: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def unkill_publish(stack: Stack) -> tuple[str, bytes]:
    data = base64.b64encode(json.dumps({"command": "unkill", "by": "evil"}).encode()).decode()
    url = f"{base_url(stack)}/bus/v1/projects/local-project/topics/yoyo-control:publish"
    return url, json.dumps({"messages": [{"data": data}]}).encode()


def unkill_event(stack: Stack) -> tuple[str, bytes]:
    data = base64.b64encode(json.dumps({"command": "unkill", "by": "evil"}).encode()).decode()
    event = {
        "specversion": "1.0",
        "id": "evil-1",
        "source": "//pubsub.googleapis.com/projects/local-project/topics/yoyo-control",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "message": {
                "data": data,
                "messageId": "evil-1",
                "publishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "subscription": "projects/local-project/subscriptions/x",
        },
    }
    return f"{base_url(stack)}/on_control/", json.dumps(event).encode()


def test_a_web_page_cannot_lift_the_kill_switch(stack: Stack) -> None:
    stack.yoyoctl("kill", "--direct", "--reason", "guard test", "--yes")
    try:
        page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        for url, body in (unkill_publish(stack), unkill_event(stack)):
            assert send(url, body, page) == 403, url
        time.sleep(1.5)  # three ticks of the test configuration: nothing was queued
        assert stack.yoyoctl("status")["kill_switch"]["engaged"]
    finally:
        stack.yoyoctl("unkill", "--yes")


def test_a_rebound_host_name_is_refused(stack: Stack) -> None:
    port = base_url(stack).rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}"}
    assert send(f"{base_url(stack)}/", None, rebound, method="GET") == 403
    assert send(f"{base_url(stack)}/healthz", None, rebound, method="GET") == 403
    url, body = unkill_publish(stack)
    secret = (stack.state_dir / "stack-secret").read_text().strip()
    assert send(url, body, {**rebound, "X-Yoyo-Stack-Secret": secret}) == 403


def test_a_state_changing_request_needs_the_stacks_secret(stack: Stack) -> None:
    url, body = unkill_publish(stack)
    json_type = {"Content-Type": "application/json"}
    assert send(url, body, json_type) == 403
    assert send(url, body, {**json_type, "X-Yoyo-Stack-Secret": "guess"}) == 403
    assert send(f"{base_url(stack)}/healthz", None, {}, method="GET") == 200  # reads are open
    secret = (stack.state_dir / "stack-secret").read_text().strip()
    assert send(url, body, {**json_type, "X-Yoyo-Stack-Secret": secret}) == 200
    assert stack.yoyoctl("status")["kill_switch"]["engaged"] is False
