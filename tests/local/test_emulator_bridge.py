"""The emulator profile's bridge and launcher (``yoyoctl local up --emulators``).

On Google's real Pub/Sub emulator: an idle bridge backs off instead of pulling every
subscription ten times a second (the bound counts pulls over an idle period; a slow
machine only pulls less), still delivers the first message after the idle period, and
a stopped emulator leaves no temporary files behind.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import emulators as test_emulators
from yoyo_control import jsonhttp as http
from yoyo_control import names
from yoyo_control.config import parse_config
from yoyo_control.errors import ConfigError
from yoyo_control.local import bridge as bridge_module
from yoyo_control.local import emulators
from yoyo_control.local.bridge import IDLE_POLL_MAX_S, Bridge

IDLE_S = 3.0
CONFIG = parse_config(
    {"project": "bridge-test", "pools": {"gpu": {"zone": "z", "instances": ["vm-0"]}}}
)


def start_pubsub() -> emulators.Emulator:
    """The Pub/Sub emulator through the launcher under test; missing it fails the test
    unless YOYO_SKIP_EMULATORS=1 (as every emulator test)."""
    if test_emulators.skip_requested():
        pytest.skip(f"{test_emulators.SKIP_ENV}=1: Pub/Sub emulator tests skipped")
    try:
        return emulators.start_pubsub()
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pubsub() -> Iterator[emulators.Emulator]:
    yield from test_emulators.session(emulators.start_pubsub, "Pub/Sub")


class _Functions(ThreadingHTTPServer):
    """Answers every function call with 200 and records the CloudEvents it received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Functions

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def functions() -> Iterator[_Functions]:
    server = _Functions()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_idle_bridge_backs_off_and_still_delivers(pubsub, functions, monkeypatch) -> None:
    pulls: list[str] = []
    real_post_json = http.post_json

    def counting_post_json(url: str, doc: Any, timeout: float = 10.0) -> tuple[int, Any]:
        if url.endswith(":pull"):
            pulls.append(url)
        return real_post_json(url, doc, timeout)

    monkeypatch.setattr(bridge_module.http, "post_json", counting_post_json)
    url = f"http://{pubsub.host}"
    bridge = Bridge(CONFIG, url, f"http://127.0.0.1:{functions.server_port}", lambda c, p: f"w-{p}")
    bridge.start()
    try:
        time.sleep(IDLE_S)
        idle_pulls = len(pulls)
        # Without backoff each subscription is pulled every 0.1 s: ~30 per subscription
        # here. Backing off to IDLE_POLL_MAX_S allows at most a handful.
        per_subscription = idle_pulls / len(names.EVENT_TOPICS)
        bound = 4 + IDLE_S / IDLE_POLL_MAX_S
        assert 1 <= per_subscription <= bound, (idle_pulls, bound)

        topic = CONFIG.topic(names.TOPIC_CONTROL)
        data = base64.b64encode(b'{"command": "kill"}').decode()
        status, _ = http.post_json(
            f"{url}/v1/projects/{CONFIG.project}/topics/{topic}:publish",
            {"messages": [{"data": data}]},
        )
        assert status == 200
        deadline = time.monotonic() + 10 * IDLE_POLL_MAX_S
        while not functions.received and time.monotonic() < deadline:
            time.sleep(0.05)
        [(path, event)] = functions.received
        assert path == f"/{names.ENTRY_POINTS[names.TOPIC_CONTROL]}/"
        assert event["data"]["message"]["data"] == data
    finally:
        bridge.stop()


def test_a_stopped_emulator_leaves_no_temporary_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(emulators.tempfile, "tempdir", None)  # re-read TMPDIR
    emulator = start_pubsub()
    try:
        assert list(tmp_path.iterdir()), "the emulator keeps its data and log under TMPDIR"
    finally:
        emulator.stop()
    assert list(tmp_path.iterdir()) == []
    emulator.stop()  # idempotent


def test_a_failed_start_leaves_no_temporary_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(emulators.tempfile, "tempdir", None)
    with pytest.raises(ConfigError, match="did not start"):
        emulators.launch("false", ["/bin/false"], "127.0.0.1:9", timeout_s=5.0)
    assert list(Path(tmp_path).iterdir()) == []
