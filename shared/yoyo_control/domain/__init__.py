"""The pure domain: model, facts, ledger and decide().

Invariant: nothing in this package imports google.*, flask, sqlite3, time, random or
does I/O; tests/unit/test_domain_purity.py enforces it.
"""

from .decide import Decision, decide, request_id
from .facts import apply_fact
from .model import Action, ActionKind, KillSwitch, PoolPolicy, PoolState, Rule

__all__ = [
    "Action",
    "ActionKind",
    "Decision",
    "KillSwitch",
    "PoolPolicy",
    "PoolState",
    "Rule",
    "apply_fact",
    "decide",
    "request_id",
]
