"""``yoyoctl ask`` goes through the gateway (issue 26): the OpenAI-compatible HTTP path, with
a gateway key; a refusal is the gateway's reason in one line; nothing else is followed.

The gateway here is a stand-in HTTP server on 127.0.0.1 recording what it was sent (the
real one is driven by tests/local/test_stack.py through the local stack)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from yoyo_control import cli

POOLS = {"gpu": {"zone": "z-a", "instances": ["gpu-0"], "model": "llama-8b"}}


class Gateway:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        self.answer: tuple[int, dict[str, str], Any] = (200, {}, {})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append((self.path, dict(self.headers), body))
                status, headers, doc = outer.answer
                raw = json.dumps(doc).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    for name in ("YOYO_CONFIG_FILE", "YOYO_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOYO_CONFIG", json.dumps({"backend": "gcp", "pools": POOLS}))
    monkeypatch.setenv("OPENAI_API_KEY", "gw-key")
    g = Gateway()
    thread = threading.Thread(target=g.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield g
    finally:
        g.server.shutdown()
        g.server.server_close()


def ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(["ask", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else out, err


def test_ask_posts_a_completion_to_the_gateway_with_its_key(gateway: Gateway, capsys) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    gateway.answer = (
        200,
        {"X-Yoyo-Cold-Start": "41.5"},
        {"choices": [{"text": " two words "}], "usage": usage},
    )
    code, doc, _ = ask(capsys, "hello?", "--url", gateway.url, "--max-tokens", "2")
    assert code == 0
    path, headers, body = gateway.seen[0]
    assert path == "/v1/completions" and headers["Authorization"] == "Bearer gw-key"
    assert body == {"model": "llama-8b", "prompt": "hello?", "max_tokens": 2}
    assert doc["answer"] == "two words" and doc["usage"] == usage
    assert doc["cold_start"] is True and doc["cold_start_wait_s"] == 41.5


def test_a_warm_answer_has_no_cold_start(gateway: Gateway, capsys) -> None:
    gateway.answer = (200, {}, {"choices": [{"text": "hi"}]})
    code, doc, _ = ask(capsys, "hello?", "--url", gateway.url)
    assert code == 0 and doc["cold_start"] is False and doc["cold_start_wait_s"] == 0.0


def test_a_refusal_is_the_gateways_reason_in_one_line(gateway: Gateway, capsys) -> None:
    reason = "the kill switch is engaged by ops: runaway"
    gateway.answer = (503, {}, {"error": {"message": reason, "code": "kill_switch_engaged"}})
    code, _, err = ask(capsys, "hello?", "--url", gateway.url)
    assert code == 1 and err == f"error: the gateway answered 503: {reason}\n"


def test_without_a_url_or_key_on_google_cloud_it_says_what_to_pass(
    gateway: Gateway, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", gateway.url)  # set for other tools: not followed
    code, _, err = ask(capsys, "hello?")
    assert code == 1 and "--url" in err and err.count("\n") == 1
    monkeypatch.delenv("OPENAI_API_KEY")
    code, _, err = ask(capsys, "hello?", "--url", gateway.url)
    assert code == 1 and "OPENAI_API_KEY" in err and err.count("\n") == 1
    assert gateway.seen == []
