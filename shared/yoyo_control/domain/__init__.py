"""The pure domain: model, facts, ledger and decide().

Modules: ``model`` (pool state, policy, kill switch), ``facts`` (what an event tells),
``decide`` (the reconciler), ``actions`` (the action protocol), ``outcomes`` (what an
action's outcome does), ``capacity`` (zones), ``scaling`` (VMs for the online load),
``heartbeats``, ``keepalive``, ``history`` (a pool's decaying history) and ``prewarm``
(starting ahead of a predicted first request), ``ledger`` and ``spend`` (money),
``budget`` (budget notifications), ``killswitch`` (reading the switch), ``batch``
(OpenAI's Batch format), ``codec`` (to and from documents), ``timetext`` (times as
people read them).

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
