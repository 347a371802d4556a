"""The model server a VM runs, over HTTP: ``ports.ModelServer`` for any OpenAI-compatible
server (vLLM by default; llama.cpp's server, SGLang… by configuration).

Readiness is its health path answering 200 (``/health``: vLLM, llama.cpp, SGLang).
Load is read from its Prometheus text (``/metrics``) under configured metric names
(``MetricNames``; vLLM's by default): requests running, waiting, and a counter that grows
as requests finish. A server that answers its health check but has no such metrics
(``metrics_path`` "") reports no load: then only the gateway's and the worker's own
in-flight counts say it is busy.

Invariants: a metric present under several label sets (one per model) is summed; comments,
other metrics, malformed lines and NaN are ignored; a metric that is absent counts as 0;
whatever the text says, the result is finite and within the control plane's range
(``_count``, the bound of agent.policy.clamp), so an absurd gauge never makes a busy VM
unreadable; every read is bounded by ``timeout_s``, and a failure to answer is "not
ready" (None), never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import jsonhttp as http
from ..ports import Metrics

MAX_COUNT = 1_000_000_000  # the heartbeat decoder's bound on running/waiting


@dataclass(frozen=True)
class MetricNames:
    """Where a server's Prometheus text says how loaded it is."""

    running: str = "vllm:num_requests_running"
    waiting: str = "vllm:num_requests_waiting"
    finished: str = "vllm:request_success_total"


VLLM = MetricNames()


def _count(value: float) -> int:
    if value != value or value <= 0:  # NaN or nothing
        return 0
    return MAX_COUNT if value >= MAX_COUNT else int(value)


def parse(text: str, names: MetricNames = VLLM) -> Metrics:
    wanted = {names.running: 0.0, names.waiting: 0.0, names.finished: 0.0}
    sums = dict.fromkeys(wanted, 0.0)
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
    return Metrics(
        _count(sums[names.running]),
        _count(sums[names.waiting]),
        float(_count(sums[names.finished])),
    )


def read(url: str, timeout: float = 2.0, names: MetricNames = VLLM) -> Metrics | None:
    """Metrics from ``url``, or None when the server does not answer 200."""
    try:
        status, body = http.get(url, timeout)
    except OSError:
        return None
    if status != 200:
        return None
    return parse(body.decode("utf-8", "replace"), names)


class HttpModelServer:
    """ports.ModelServer: the server at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        names: MetricNames = VLLM,
        health_path: str = "/health",
        metrics_path: str = "/metrics",
        timeout_s: float = 2.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.names = names
        self.health_path = health_path
        self.metrics_path = metrics_path
        self.timeout_s = timeout_s

    def ready(self) -> bool:
        try:
            status, _ = http.get(self.base_url + self.health_path, self.timeout_s)
        except OSError:
            return False
        return status == 200

    def load(self) -> Metrics | None:
        if not self.metrics_path:
            return Metrics() if self.ready() else None
        return read(self.base_url + self.metrics_path, self.timeout_s, self.names)
