"""Plain-text and Markdown tables of simulation results (no dependencies).

Invariant: a table's columns are fixed and named with their units, so a result file
diffed across runs shows only changed figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .engine import SimResult

COLUMNS: tuple[tuple[str, str], ...] = (
    ("workload", "workload"),
    ("policy", "policy"),
    ("requests", "requests"),
    ("gpu_hours", "GPU-h"),
    ("dollars", "$ billed"),
    ("cold_starts", "cold starts"),
    ("wait_p50_s", "wait p50 s"),
    ("wait_p95_s", "wait p95 s"),
    ("wait_p99_s", "wait p99 s"),
    ("cost_usd", "cost $"),
    ("optimum_usd", "optimum $"),
    ("ratio", "× optimum"),
)


def rows(results: Iterable[SimResult]) -> list[dict[str, Any]]:
    return [r.summary() for r in results]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown(data: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_cell(row.get(key, "")) for key, _ in columns) + " |" for row in data]
    return "\n".join([head, rule, *body])


def text(data: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    cells = [[title for _, title in columns]]
    cells += [[_cell(row.get(key, "")) for key, _ in columns] for row in data]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
