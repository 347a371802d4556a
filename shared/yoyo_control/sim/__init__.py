"""Trace-driven simulator on the same decide() (DESIGN.md §5).

``simulate_main(argv)`` is ``yoyoctl simulate``. Importing this package imports neither
the engine nor the traces. Modules: ``cli`` (the command line; ``__main__``), ``engine``
(a request stream against the real Service, in virtual time), ``events`` (virtual time),
``compute`` (SimCompute), ``capacity`` (zones' stockouts and preemptions),
``memory_store`` and ``counting`` (stores), ``workload`` (request streams from the
traces), ``params``, ``policies`` (keep-alive as simulated), ``result`` and ``report``
(what was measured), ``optimum``, ``bounds`` and ``fixed_hindsight`` (what could have
been done); ``autoscale`` (VMs with a capacity: today's rule, KPA, Yo-Yo's and the
oracle) and ``loadgen`` (its workloads).
"""

from __future__ import annotations


def simulate_main(argv: list[str] | None = None) -> int:
    from .cli import simulate_main as main

    return main(argv)


__all__ = ["simulate_main"]
