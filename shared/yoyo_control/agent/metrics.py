"""Read vLLM's Prometheus text exposition: requests running, waiting and finished.

Invariants: a metric present under several label sets (one per model) is summed; comments,
other metrics, malformed lines and NaN are ignored; a metric that is absent counts as 0;
whatever the text says, the result is finite and within the control plane's range
(``policy.clamp``), so an absurd gauge never makes a busy VM unreadable.
"""

from __future__ import annotations

import math

from .policy import Metrics, clamp

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
SUCCEEDED = "vllm:request_success_total"


def parse(text: str) -> Metrics:
    sums = {RUNNING: 0.0, WAITING: 0.0, SUCCEEDED: 0.0}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            name = line.split("{", 1)[0]
            rest = line.rsplit("}", 1)[1].split()
        else:
            name, *rest = line.split()
        if name not in sums or not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        if not math.isnan(value):
            sums[name] += value
    return Metrics(clamp(sums[RUNNING]), clamp(sums[WAITING]), float(clamp(sums[SUCCEEDED])))


def read(url: str, timeout: float = 2.0) -> Metrics | None:
    """Metrics from ``url``, or None when the server does not answer 200."""
    from .. import jsonhttp as http

    try:
        status, body = http.get(url, timeout)
    except OSError:
        return None
    if status != 200:
        return None
    return parse(body.decode("utf-8", "replace"))
