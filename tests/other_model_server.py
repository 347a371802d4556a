"""A second OpenAI-compatible model server, written for the tests: not vLLM, and with other
metric names (llama.cpp's server's: ``llamacpp:requests_processing``,
``llamacpp:requests_deferred``, ``llamacpp:tokens_predicted_total``).

``python tests/other_model_server.py --port P [--model M] [--api-key-file F]
[--token-delay-s S] [--slots N] [--boot-delay-s B]`` serves, on 127.0.0.1:P:
- ``GET /health``: 503 ``{"error": …"Loading model"}`` until ``--boot-delay-s`` passed,
  then 200 ``{"status": "ok"}`` (as llama.cpp's server does);
- ``GET /metrics``: Prometheus text under llama.cpp's names (open, as its is);
- ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (also
  streamed, server-sent events), with the bearer key from ``--api-key-file`` required.
Each answer is ``max_tokens`` words beginning "other-server", one word every
``--token-delay-s`` seconds; at most ``--slots`` requests generate at once, the others wait
(deferred). SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WORDS = ["other-server", "says", "hello", "from", "a", "different", "engine"]


class State:
    def __init__(self, model: str, delay: float, slots: int, ready_at: float, key: str):
        self.model, self.delay, self.ready_at, self.key = model, delay, ready_at, key
        self.slots = threading.BoundedSemaphore(slots)
        self.lock = threading.Lock()
        self.processing = 0
        self.deferred = 0
        self.predicted = 0

    def metrics(self) -> str:
        with self.lock:
            return (
                "# HELP llamacpp:requests_processing Number of requests processing.\n"
                "# TYPE llamacpp:requests_processing gauge\n"
                f"llamacpp:requests_processing {self.processing}\n"
                "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
                "# TYPE llamacpp:requests_deferred gauge\n"
                f"llamacpp:requests_deferred {self.deferred}\n"
                "# TYPE llamacpp:tokens_predicted_total counter\n"
                f"llamacpp:tokens_predicted_total {self.predicted}\n"
            )

    def generate(self, n: int) -> Any:
        """Yield ``n`` words, holding a slot (waiting, deferred, while none is free)."""
        with self.lock:
            self.deferred += 1
        self.slots.acquire()
        with self.lock:
            self.deferred -= 1
            self.processing += 1
        try:
            for i in range(n):
                time.sleep(self.delay)
                with self.lock:
                    self.predicted += 1
                yield WORDS[i % len(WORDS)]
        finally:
            with self.lock:
                self.processing -= 1
            self.slots.release()


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, doc: Any, ctype: str = "application/json") -> None:
            body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _allowed(self) -> bool:
            if time.time() < state.ready_at:
                self._send(503, {"error": {"code": 503, "message": "Loading model"}})
                return False
            if state.key and self.headers.get("Authorization") != f"Bearer {state.key}":
                self._send(401, {"error": {"code": 401, "message": "Invalid API Key"}})
                return False
            return True

        def do_GET(self) -> None:
            if self.path == "/health":
                if time.time() < state.ready_at:
                    self._send(503, {"error": {"code": 503, "message": "Loading model"}})
                else:
                    self._send(200, {"status": "ok"})
            elif self.path == "/metrics":
                self._send(200, state.metrics(), "text/plain; version=0.0.4")
            elif self.path == "/v1/models":
                if self._allowed():
                    data = [{"id": state.model, "object": "model", "owned_by": "other"}]
                    self._send(200, {"object": "list", "data": data})
            else:
                self._send(404, {"error": {"code": 404, "message": "File Not Found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                self._send(404, {"error": {"code": 404, "message": "File Not Found"}})
                return
            if not self._allowed():
                return
            try:
                doc = json.loads(raw)
                n = max(1, min(int(doc.get("max_tokens") or 8), 200))
            except (ValueError, TypeError, AttributeError):
                self._send(400, {"error": {"code": 400, "message": "bad request"}})
                return
            chat = self.path.endswith("chat/completions")
            if doc.get("stream"):
                self._stream(chat, n)
                return
            text = " ".join(state.generate(n))
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
            self._send(200, self._envelope(chat, [choice]) | {"usage": usage})

        def _envelope(self, chat: bool, choices: list[Any]) -> dict[str, Any]:
            kind = "chat.completion" if chat else "text_completion"
            return {
                "id": f"other-{time.time_ns()}",
                "object": kind,
                "created": int(time.time()),
                "model": state.model,
                "choices": choices,
            }

        def _stream(self, chat: bool, n: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(doc: Any) -> None:
                data = f"data: {doc}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for word in state.generate(n):
                delta = {"content": word + " "}
                choice = {"index": 0, "delta": delta} if chat else {"index": 0, "text": word}
                env = self._envelope(chat, [choice])
                if chat:
                    env["object"] = "chat.completion.chunk"
                chunk(json.dumps(env))
            chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="other-model")
    parser.add_argument("--api-key-file", default="")
    parser.add_argument("--token-delay-s", type=float, default=0.01)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--boot-delay-s", type=float, default=0.5)
    args = parser.parse_args()
    key = Path(args.api_key_file).read_text().strip() if args.api_key_file else ""
    state = State(args.model, args.token_delay_s, args.slots, time.time() + args.boot_delay_s, key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(state))
    server.daemon_threads = True

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
