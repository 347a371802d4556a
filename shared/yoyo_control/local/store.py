"""The local stack's store: the Firestore emulator when one is configured, else SQLite.

Invariant: the choice is the environment's (``FIRESTORE_EMULATOR_HOST``, which ``local up
--emulators`` sets for itself and ``yoyoctl`` adopts from the running stack), so every
process of one stack opens the same store.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config
from ..ports import Store


def open_store(config: Config) -> Store:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from ..adapters.firestore_store import FirestoreStore

        return FirestoreStore(
            project=config.project,
            database=config.firestore_database,
            event_ttl_days=config.event_ttl_days,
        )
    from ..adapters.sqlite_store import SqliteStore

    return SqliteStore(Path(config.local.state_dir) / "yoyo.sqlite3")
