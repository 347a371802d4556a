"""Trace-driven simulator on the same decide() (DESIGN.md §5), and the money reports.

``simulate_main(argv)`` is ``yoyoctl simulate``; ``cost_report(store, config, now)`` is
``yoyoctl cost``. Importing this package imports neither the engine nor the traces.
"""

from __future__ import annotations

from typing import Any


def simulate_main(argv: list[str] | None = None) -> int:
    from .cli import simulate_main as main

    return main(argv)


def cost_report(store: Any, config: Any, now: float) -> dict[str, Any]:
    from .cost import cost_report as report

    return report(store, config, now)


__all__ = ["cost_report", "simulate_main"]
