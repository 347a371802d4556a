"""LocalCompute: ports.Compute over local "VMs" (process groups run by the Supervisor).

The instance table lives in ``<state_dir>/compute.sqlite3`` so every process (the
functions inside ``local up``, ``yoyoctl`` elsewhere) sees the same statuses; the
Supervisor in the ``local up`` process makes the processes match the table.

Invariants:
- Statuses follow Compute Engine: TERMINATED → STAGING → RUNNING → STOPPING → TERMINATED.
  ``start`` moves TERMINATED to STAGING and ``stop`` moves STAGING/RUNNING to STOPPING;
  the Supervisor does the rest. A start while STOPPING is refused (TemporaryError, as
  Compute Engine answers "resource not ready"). Unknown instances raise
  InstanceNotFound.
- A request id is acted on at most once; a retried call only waits for its operation.
- A zone told to refuse (``InstanceTable.refuse_zone``; ``yoyoctl local refuse-zone``)
  answers every start of an instance there with CapacityError, as Compute Engine answers
  a stockout (ZONE_RESOURCE_POOL_EXHAUSTED), and the instance stays TERMINATED; the
  refusal lasts until ``accept_zone`` (it is in the shared table, so every process sees it).
- ``start``/``stop`` wait (bounded by ``op_timeout_s``) for the operation to finish:
  STAGING → RUNNING (the VM's processes are up; its inference server still boots for
  ``boot_delay_s``) or → TERMINATED; past the bound they raise TemporaryError and the
  retry (same request id) waits again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import names
from ..errors import CapacityError, InstanceNotFound, TemporaryError
from ..ports import ObservedInstance

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    name TEXT PRIMARY KEY, pool TEXT NOT NULL, zone TEXT NOT NULL, status TEXT NOT NULL,
    pid INTEGER, port INTEGER, boot_id TEXT, started_at REAL, updated_at REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, kind TEXT NOT NULL, instance TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (zone TEXT PRIMARY KEY, code TEXT NOT NULL, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    name: str
    pool: str
    zone: str
    status: str
    pid: int | None
    port: int | None
    boot_id: str | None
    started_at: float | None
    updated_at: float
    note: str

    @property
    def endpoint(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None


class InstanceTable:
    """The shared table (SQLite, WAL, one short transaction per call)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def register(self, pool: str, zone: str, instance: str) -> None:
        self.transact(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO instances (name, pool, zone, status, updated_at) "
                "VALUES (?, ?, ?, 'TERMINATED', ?)",
                (instance, pool, zone, time.time()),
            )
        )

    def refuse_zone(self, zone: str, code: str = "ZONE_RESOURCE_POOL_EXHAUSTED") -> None:
        self.transact(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO refusals (zone, code, at) VALUES (?, ?, ?)",
                (zone, code, time.time()),
            )
        )

    def accept_zone(self, zone: str) -> None:
        self.transact(lambda c: c.execute("DELETE FROM refusals WHERE zone = ?", (zone,)))

    def refusing(self) -> dict[str, str]:
        """Zones told to refuse starts, with the error code they answer."""
        with self._conn() as conn:
            return dict(conn.execute("SELECT zone, code FROM refusals ORDER BY zone"))

    def rows(self, pool: str | None = None) -> list[Row]:
        sql = "SELECT * FROM instances" + (" WHERE pool = ?" if pool else "") + " ORDER BY name"
        with self._conn() as conn:
            return [Row(*r) for r in conn.execute(sql, (pool,) if pool else ())]

    def row(self, name: str) -> Row | None:
        with self._conn() as conn:
            r = conn.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
        return Row(*r) if r else None

    def update(self, name: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.transact(
            lambda c: c.execute(
                f"UPDATE instances SET {sets} WHERE name = ?", (*fields.values(), name)
            )
        )


class LocalCompute:
    def __init__(
        self, table: InstanceTable, op_timeout_s: float = 15.0, poll_s: float = 0.05
    ) -> None:
        self.table = table
        self.op_timeout_s = op_timeout_s
        self.poll_s = poll_s

    @classmethod
    def from_config(cls, config: Any) -> LocalCompute:
        table = InstanceTable(Path(config.local.state_dir) / "compute.sqlite3")
        for pool, policy in config.pools.items():
            for instance in policy.instances:
                table.register(pool, policy.placement(instance).zone, instance)
        return cls(table)

    def list_instances(self, pool: str, zone: str) -> list[ObservedInstance]:
        return [
            ObservedInstance(r.name, r.status, {names.LABEL_POOL: r.pool})
            for r in self.table.rows(pool)
            if r.zone == zone
        ]

    def get(self, zone: str, instance: str) -> ObservedInstance:
        row = self.table.row(instance)
        if row is None or row.zone != zone:
            raise InstanceNotFound(f"instance {instance} not found in zone {zone}")
        return ObservedInstance(row.name, row.status, {names.LABEL_POOL: row.pool})

    def start(self, zone: str, instance: str, request_id: str) -> None:
        self._operate("start", zone, instance, request_id)
        self._wait(instance, lambda s: s != "STAGING", "start")

    def stop(self, zone: str, instance: str, request_id: str) -> None:
        self._operate("stop", zone, instance, request_id)
        self._wait(instance, lambda s: s == "TERMINATED", "stop")

    def _operate(self, kind: str, zone: str, instance: str, request_id: str) -> None:
        def txn(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT status, zone FROM instances WHERE name = ?", (instance,)
            ).fetchone()
            if row is None or row[1] != zone:
                raise InstanceNotFound(f"instance {instance} not found in zone {zone}")
            seen = c.execute(
                "SELECT 1 FROM requests WHERE request_id = ?", (request_id,)
            ).fetchone()
            if seen:
                return  # deduplicated: the operation was already accepted
            status = row[0]
            refusal = c.execute("SELECT code FROM refusals WHERE zone = ?", (zone,)).fetchone()
            if kind == "start" and status in ("TERMINATED", "SUSPENDED") and refusal:
                raise CapacityError(
                    f"start instance {instance} in zone {zone}: {refusal[0]}: The zone "
                    f"'{zone}' does not have enough resources available to fulfill the request."
                )
            if kind == "start" and status == "STOPPING":
                raise TemporaryError(f"instance {instance} is STOPPING: not ready (409)")
            c.execute(
                "INSERT INTO requests (request_id, kind, instance, at) VALUES (?, ?, ?, ?)",
                (request_id, kind, instance, time.time()),
            )
            new = None
            if kind == "start" and status in ("TERMINATED", "SUSPENDED"):
                new = "STAGING"
            elif kind == "stop" and status in ("STAGING", "RUNNING", "PROVISIONING"):
                new = "STOPPING"
            if new:
                c.execute(
                    "UPDATE instances SET status = ?, updated_at = ?, note = ? WHERE name = ?",
                    (new, time.time(), f"{kind} {request_id}", instance),
                )

        self.table.transact(txn)

    def _wait(self, instance: str, done: Callable[[str], bool], kind: str) -> None:
        deadline = time.monotonic() + self.op_timeout_s
        while True:
            row = self.table.row(instance)
            if row is not None and done(row.status):
                return
            if time.monotonic() >= deadline:
                status = row.status if row else "?"
                raise TemporaryError(
                    f"{kind} {instance}: operation still running after "
                    f"{self.op_timeout_s:.0f}s (status {status}); is `yoyoctl local up` running?"
                )
            time.sleep(self.poll_s)
