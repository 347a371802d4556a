"""The local stack's composition root: the laptop's adapters (``local/``) and ``local up``.

On the local backend, the control plane (bootstrap.py) and the operator (``yoyoctl``) get
their laptop parts here: the SQLite store (or the Firestore emulator), the local "Compute
Engine" (the instance table the supervisor runs), the bus publisher, the local scheduler,
the stack's identity key, and what an operator does to the stack directly. ``up`` runs
the stack itself (local/stack.py), whose functions are the real ones, composed by
bootstrap.py in the same process.

Invariants: this is the only module outside ``local/`` that imports it; it imports no
other root (bootstrap, cli, machine), so nothing here can loop back; each builder is
called lazily, once per process by its caller.
"""

from __future__ import annotations

from .config import Config
from .local import identity as local_identity
from .local.operator import Operator, adopt_running_stack
from .ports import Compute, IdentityVerifier, Publisher, Scheduler, Store

__all__ = ["LocalOperator", "adopt_running_stack", "compute", "identity", "operator"]


def store(config: Config) -> Store:
    from .local.store import open_store

    return open_store(config)


def compute(config: Config) -> Compute:
    from .local.compute import LocalCompute

    return LocalCompute.from_config(config)


def publisher(config: Config) -> Publisher:
    from .local.bus import LocalBusPublisher

    return LocalBusPublisher.from_config(config)


def scheduler(config: Config, publisher: Publisher) -> Scheduler:
    from .local.scheduler import Scheduler as LocalScheduler

    return LocalScheduler(config, publisher)


def identity(config: Config) -> IdentityVerifier:
    """Heartbeats signed with the stack's own key (Google's signature stands in)."""
    return local_identity.verifier(config.local.state_dir, config.heartbeat_audience)


class LocalOperator(Operator):
    """What ``yoyoctl`` does to the local stack directly, and ``local up`` itself."""

    def up(self, emulators: bool) -> int:
        from .local.stack import up

        return up(emulators=emulators, config=self.config)


def operator(config: Config) -> LocalOperator:
    return LocalOperator(config)
