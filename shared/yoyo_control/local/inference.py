"""A simulated inference server speaking vLLM's OpenAI-compatible HTTP API (no model, no GPU).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (``"stream": true`` answers server-sent events, one chunk
per token, chunked transfer encoding, ending with ``data: [DONE]``), ``POST
/v1/embeddings``, ``GET /metrics`` (Prometheus text with vLLM's names:
``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
``vllm:request_success_total``, ``vllm:generation_tokens_total``).
With ``--api-key-file`` every ``/v1`` route requires ``Authorization: Bearer <key>``
(vLLM's ``--api-key``; /health and /metrics stay open, as in vLLM).

Invariants:
- Inference is SIMULATED: each generated "token" is a word of a fixed sentence and takes
  ``token_latency_s``; at most ``max_num_seqs`` requests run at once, the rest wait.
- Until ``boot_delay_s`` has passed every endpoint answers 503 (weights still loading), as
  a VM that is RUNNING for Compute Engine is not yet serving.
- It serves HTTP only: the VM's worker unit (``yoyo_control.worker``) drains the pool's
  work queue against it, as yoyo-worker drives vLLM on a real VM.
- The server's port is written atomically to ``--port-file`` once it listens.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SENTENCE = [
    "This",
    "answer",
    "was",
    "simulated",
    "by",
    "a",
    "local",
    "Yo-Yo",
    "VM:",
    "no",
    "model",
    "ran,",
    "each",
    "word",
    "stands",
    "for",
    "one",
    "generated",
    "token,",
    "and",
    "the",
    "timing",
    "follows",
    "the",
    "configured",
    "token",
    "latency.",
]


class Engine:
    def __init__(self, model: str, token_latency_s: float, max_num_seqs: int = 4) -> None:
        self.model = model
        self.token_latency_s = token_latency_s
        self.max_num_seqs = max_num_seqs
        self.slots = threading.BoundedSemaphore(max_num_seqs)
        self.lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.succeeded: dict[str, int] = {"stop": 0, "length": 0}
        self.generated = 0
        self.prompt_tokens = 0

    def generate(self, prompt: str, max_tokens: int) -> tuple[str, str, int]:
        """(text, finish_reason, tokens) after the simulated decode time."""
        words = list(self.tokens(prompt, max_tokens))
        n = len(words)
        return " " + " ".join(words), "stop" if n == len(SENTENCE) else "length", n

    def tokens(self, prompt: str, max_tokens: int) -> Iterator[str]:
        """Each simulated token as it is decoded (one ``token_latency_s`` apart)."""
        with self.lock:
            self.waiting += 1
        self.slots.acquire()
        with self.lock:
            self.waiting -= 1
            self.running += 1
            self.prompt_tokens += len(prompt.split())
        produced = 0
        n = max(0, min(max_tokens, len(SENTENCE)))
        try:
            for i in range(n):
                time.sleep(self.token_latency_s)
                produced += 1
                yield SENTENCE[i]
        finally:
            reason = "stop" if produced == len(SENTENCE) else "length"
            with self.lock:
                self.running -= 1
                if produced == n:  # a stream the client abandoned did not succeed
                    self.succeeded[reason] += 1
                self.generated += produced
            self.slots.release()

    def embed(self, text: str) -> list[float]:
        """A deterministic unit vector standing in for an embedding (no model)."""
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        values = [b / 255.0 - 0.5 for b in digest[:EMBEDDING_DIM]]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        with self.lock:
            self.succeeded["stop"] += 1
            self.prompt_tokens += len(text.split())
        return [v / norm for v in values]

    def metrics(self) -> str:
        label = f'model_name="{self.model}"'
        with self.lock:
            lines = [
                "# HELP vllm:num_requests_running Number of requests in model execution batches.",
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{label}}} {float(self.running)}",
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{label}}} {float(self.waiting)}",
                "# HELP vllm:request_success_total Count of successfully processed requests.",
                "# TYPE vllm:request_success_total counter",
            ]
            for reason, count in self.succeeded.items():
                lines.append(
                    f'vllm:request_success_total{{finished_reason="{reason}",{label}}} '
                    f"{float(count)}"
                )
            lines += [
                "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{label}}} {float(self.generated)}",
                "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{label}}} {float(self.prompt_tokens)}",
            ]
        return "\n".join(lines) + "\n"


EMBEDDING_DIM = 16


def _prompt(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    else:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = " ".join(str(p) for p in prompt)
        if not isinstance(prompt, str):
            raise ValueError("'prompt' must be a string")
    return str(prompt)


def _max_tokens(body: dict[str, Any]) -> int:
    return int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)


def _completion(engine: Engine, body: dict[str, Any], chat: bool) -> dict[str, Any]:
    prompt = _prompt(body, chat)
    text, reason, n = engine.generate(prompt, _max_tokens(body))
    usage = {
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": n,
        "total_tokens": len(prompt.split()) + n,
    }
    base = {"created": int(time.time()), "model": body.get("model") or engine.model}
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text.strip()},
            "finish_reason": reason,
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            **base,
            "choices": [choice],
            "usage": usage,
        }
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        **base,
        "choices": [choice],
        "usage": usage,
    }


def _stream_events(engine: Engine, body: dict[str, Any], chat: bool) -> Iterator[bytes]:
    """The completion as server-sent events, as vLLM streams it, then ``[DONE]``."""
    prompt = _prompt(body, chat)
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    base = {
        "id": ident,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": body.get("model") or engine.model,
    }

    def event(piece: str | None, reason: str | None, delta: dict[str, str] | None = None) -> bytes:
        if chat:
            delta = delta or ({} if piece is None else {"content": piece})
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": reason}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

    if chat:
        yield event(None, None, {"role": "assistant", "content": ""})  # as vLLM starts
    count = 0
    for word in engine.tokens(prompt, _max_tokens(body)):
        count += 1
        yield event(word if count == 1 and chat else " " + word, None)
    yield event(None, "stop" if count == len(SENTENCE) else "length")
    yield b"data: [DONE]\n\n"


def _embeddings(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise ValueError("'input' must be a string or a non-empty list of strings")
    data = [
        {"object": "embedding", "index": i, "embedding": engine.embed(text)}
        for i, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or engine.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def make_handler(
    engine: Engine, ready_at: float, api_key: str = ""
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: Any) -> None:
            self._send(status, json.dumps(doc).encode())

        def _loading(self) -> bool:
            if time.time() < ready_at:
                self._json(503, {"error": {"message": "loading model weights"}})
                return True
            return False

        def _refused(self) -> bool:
            """vLLM's --api-key: the /v1 routes need the bearer key."""
            if not api_key or not self.path.startswith("/v1"):
                return False
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return False
            self._json(401, {"error": "Unauthorized"})
            return True

        def do_GET(self) -> None:
            if self._loading() or self._refused():
                return
            if self.path == "/health":
                self._send(200, b"")
            elif self.path == "/metrics":
                self._send(200, engine.metrics().encode(), "text/plain; version=0.0.4")
            elif self.path == "/v1/models":
                model = {
                    "id": engine.model,
                    "object": "model",
                    "owned_by": "yoyo-local",
                    "created": int(ready_at),
                }
                self._json(200, {"object": "list", "data": [model]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self._loading() or self._refused():
                return
            if self.path not in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            chat = self.path.endswith("chat/completions")
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                if self.path.endswith("embeddings"):
                    doc = _embeddings(engine, body)
                elif body.get("stream") is True:
                    self._stream(_stream_events(engine, body, chat))
                    return
                else:
                    doc = _completion(engine, body, chat)
            except (ValueError, TypeError, AttributeError) as exc:
                self._json(400, {"error": {"message": str(exc), "type": "BadRequestError"}})
                return
            self._json(200, doc)

        def _stream(self, events: Iterator[bytes]) -> None:
            """Each event as its own HTTP chunk, flushed at once."""
            first = next(events)  # a bad request raises here, before any header
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in itertools.chain([first], events):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client went away: stop decoding
                self.close_connection = True
            finally:
                events.close()  # type: ignore[attr-defined]

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits, as at vLLM's server, not refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yoyo_control.local.inference")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--model", default="yoyo-local/simulated")
    parser.add_argument("--token-latency-s", type=float, default=0.02)
    parser.add_argument("--boot-delay-s", type=float, default=0.0)
    parser.add_argument("--max-num-seqs", type=int, default=4)
    parser.add_argument("--api-key-file", default="", help="require this bearer key on /v1")
    parser.add_argument("--spec", default="", help="(ignored; marks the VM for ps)")
    args = parser.parse_args(argv)
    engine = Engine(args.model, args.token_latency_s, args.max_num_seqs)
    ready_at = time.time() + args.boot_delay_s
    api_key = Path(args.api_key_file).read_text().strip() if args.api_key_file else ""
    server = _Server(("127.0.0.1", 0), make_handler(engine, ready_at, api_key))
    port_file = Path(args.port_file)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, port_file)
    stop = threading.Event()

    def shutdown(*_: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
