"""Real (simulated) inference servers on 127.0.0.1 for the gateway's tests.

Invariants: each server is yoyo_control.local.inference's HTTP handler (vLLM's API, its
API key required) in a thread of the test process; leaving the generator shuts it down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from yoyo_control.local.inference import Engine, _Server, make_handler

VLLM_KEY = "vllm-secret"


def serve_inference(engine: Engine) -> Iterator[str]:
    """Yields the server's ``host:port``; closing the generator stops the server."""
    server = _Server(("127.0.0.1", 0), make_handler(engine, 0.0, VLLM_KEY))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
