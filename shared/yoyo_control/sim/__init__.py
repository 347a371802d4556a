"""Trace-driven simulator on the same decide() (DESIGN.md §5).

``simulate_main(argv)`` is ``yoyoctl simulate``. Importing this package imports neither
the engine nor the traces.
"""

from __future__ import annotations


def simulate_main(argv: list[str] | None = None) -> int:
    from .cli import simulate_main as main

    return main(argv)


__all__ = ["simulate_main"]
