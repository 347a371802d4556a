"""SQLite store: the embedded default (one file, stdlib only).

Invariants: every ``transact`` runs in ``BEGIN IMMEDIATE`` (one writer at a time across
threads and processes), so transactions are serialisable; a busy database is retried
for ``busy_timeout_s`` then reported as TemporaryError; documents are the same dicts
the Firestore adapter stores (domain/codec.py); a kill switch saved without
``changed_at`` (a writer outside the control plane: ``yoyoctl --direct``) gets this
machine's clock at commit, the local stand-in for Firestore's commit time;
``events()`` orders by (``at``, insertion order), like the Firestore adapter's (``at``,
commit time, position).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from .. import names
from ..domain.batch import Batch
from ..domain.codec import from_doc, to_doc
from ..domain.heartbeats import merge
from ..domain.model import Heartbeat, KillSwitch, PoolState
from ..errors import TemporaryError
from ..ports import Event

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pools (pool TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats (
    pool TEXT NOT NULL, instance TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (pool, instance));
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    at REAL NOT NULL, pool TEXT NOT NULL, message_id TEXT NOT NULL, reason TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_pool ON events (pool, seq);
CREATE INDEX IF NOT EXISTS events_at ON events (at, seq);
CREATE INDEX IF NOT EXISTS events_pool_at ON events (pool, at, seq);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, pool TEXT NOT NULL, created_at REAL NOT NULL,
    pending INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS batches_pool ON batches (pool, pending, created_at);
"""


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load_pool(self, pool: str) -> PoolState:
        row = self.conn.execute("SELECT doc FROM pools WHERE pool = ?", (pool,)).fetchone()
        state = from_doc(PoolState, json.loads(row[0])) if row else PoolState(pool=pool)
        beats = {
            inst: from_doc(Heartbeat, json.loads(doc))
            for inst, doc in self.conn.execute(
                "SELECT instance, doc FROM heartbeats WHERE pool = ?", (pool,)
            )
        }
        return replace(state, heartbeats=beats)

    def load_kill(self) -> KillSwitch:
        row = self.conn.execute(
            "SELECT doc FROM control WHERE key = ?", (names.DOC_KILL_SWITCH,)
        ).fetchone()
        return from_doc(KillSwitch, json.loads(row[0])) if row else KillSwitch()

    def has_event(self, event_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
        return row is not None

    def save_pool(self, state: PoolState) -> None:
        doc = to_doc(state)
        doc.pop("heartbeats", None)  # heartbeats live in their own rows
        self.conn.execute(
            "INSERT INTO pools (pool, doc) VALUES (?, ?) "
            "ON CONFLICT (pool) DO UPDATE SET doc = excluded.doc",
            (state.pool, json.dumps(doc)),
        )

    def save_kill(self, kill: KillSwitch) -> None:
        if kill.changed_at is None:  # a writer outside the control plane: commit time
            kill = replace(kill, changed_at=time.time())
        self.conn.execute(
            "INSERT INTO control (key, doc) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
            (names.DOC_KILL_SWITCH, json.dumps(to_doc(kill))),
        )

    def append(self, event: Event) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO events (id, kind, at, pool, message_id, reason, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.kind,
                event.at,
                event.pool,
                event.message_id,
                event.reason,
                json.dumps(to_doc(event.data), default=str),
            ),
        )


class SqliteStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def transact(self, fn: Callable[[Any], T]) -> T:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TemporaryError(f"sqlite busy: {exc}") from exc
        try:
            result = fn(_Tx(conn))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise TemporaryError(f"sqlite commit failed: {exc}") from exc
        return result

    def get_kill(self) -> KillSwitch:
        return _Tx(self._conn()).load_kill()

    def get_pool(self, pool: str) -> PoolState:
        return _Tx(self._conn()).load_pool(pool)

    def get_pools(self, pools: Sequence[str]) -> dict[str, PoolState]:
        """The pools' documents (ports.PoolDocuments), heartbeats not included."""
        wanted = set(pools)
        rows = self._conn().execute("SELECT pool, doc FROM pools").fetchall()
        return {p: from_doc(PoolState, json.loads(d)) for p, d in rows if p in wanted}

    def list_pools(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT pool FROM pools ORDER BY pool")]

    def get_heartbeat(self, pool: str, instance: str) -> Heartbeat | None:
        row = (
            self._conn()
            .execute("SELECT doc FROM heartbeats WHERE pool = ? AND instance = ?", (pool, instance))
            .fetchone()
        )
        return from_doc(Heartbeat, json.loads(row[0])) if row else None

    def put_heartbeat(self, pool: str, heartbeat: Heartbeat) -> Heartbeat | None:
        def txn(tx: _Tx) -> Heartbeat | None:
            row = tx.conn.execute(
                "SELECT doc FROM heartbeats WHERE pool = ? AND instance = ?",
                (pool, heartbeat.instance),
            ).fetchone()
            previous = from_doc(Heartbeat, json.loads(row[0])) if row else None
            stored = merge(previous, heartbeat)
            if stored is not None:
                tx.conn.execute(
                    "INSERT INTO heartbeats (pool, instance, doc) VALUES (?, ?, ?) "
                    "ON CONFLICT (pool, instance) DO UPDATE SET doc = excluded.doc",
                    (pool, heartbeat.instance, json.dumps(to_doc(stored))),
                )
            return previous

        return self.transact(txn)

    def events(
        self, pool: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[Event]:
        sql = "SELECT id, kind, at, pool, message_id, reason, data FROM events WHERE 1=1"
        args: list[Any] = []
        if pool is not None:
            sql += " AND pool = ?"
            args.append(pool)
        if since is not None:
            sql += " AND at > ?"
            args.append(since)
        sql += " ORDER BY at DESC, seq DESC LIMIT ?"  # by time; insertion order breaks ties
        args.append(limit)
        rows = self._conn().execute(sql, args).fetchall()
        return [
            Event(
                id=r[0],
                kind=r[1],
                at=r[2],
                pool=r[3],
                message_id=r[4],
                reason=r[5],
                data=json.loads(r[6]),
            )
            for r in reversed(rows)
        ]

    def get_batch(self, batch_id: str) -> Batch | None:
        row = self._conn().execute("SELECT doc FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return from_doc(Batch, json.loads(row[0])) if row else None

    def list_batches(self, pool: str | None = None, pending: bool = False) -> list[Batch]:
        sql, args = "SELECT doc FROM batches WHERE 1=1", []
        if pool is not None:
            sql += " AND pool = ?"
            args.append(pool)
        if pending:
            sql += " AND pending = 1"
        rows = self._conn().execute(sql + " ORDER BY created_at DESC, id DESC", args)
        return [from_doc(Batch, json.loads(r[0])) for r in rows]

    def update_batch(
        self, batch_id: str, change: Callable[[Batch | None], Batch | None]
    ) -> Batch | None:
        def txn(tx: _Tx) -> Batch | None:
            row = tx.conn.execute("SELECT doc FROM batches WHERE id = ?", (batch_id,)).fetchone()
            current = from_doc(Batch, json.loads(row[0])) if row else None
            new = change(current)
            if new is None or new == current:
                return current
            if new.id != batch_id:
                raise ValueError(f"update_batch({batch_id!r}) returned batch {new.id!r}")
            tx.conn.execute(
                "INSERT INTO batches (id, pool, created_at, pending, doc) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET pending = excluded.pending, doc = excluded.doc",
                (new.id, new.pool, new.created_at, int(not new.terminal), json.dumps(to_doc(new))),
            )
            return new

        return self.transact(txn)
