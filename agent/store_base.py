"""The state store's plumbing: engine set-up per backend, transactions and error translation.

SQLite files are opened in WAL mode with a busy timeout, and every transaction starts with
`BEGIN IMMEDIATE`: writers queue for the lock instead of failing half-way, so the agent and the
CLI (another process) can share one file. PostgreSQL needs nothing special: conditional UPDATEs
under READ COMMITTED already let exactly one of two racing writers win.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, exc, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from agent import store_tables as t
from agent.errors import StoreError

log = logging.getLogger(__name__)
audit_log = logging.getLogger("opswatch.audit")

WAL_ATTEMPTS = 600
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who did what to which object."""

    at: float
    actor: str
    action: str
    object: str
    detail: Mapping[str, Any]


def redacted(url: str) -> str:
    """The URL with its password masked, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def _wal(cursor: Any) -> None:
    """Switch to WAL; SQLite answers BUSY at once, without its busy handler, while another
    process opens the same new file, so retry (bounded: about the busy timeout)."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05)


def _sqlite_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from pysqlite so that "begin" below decides how to BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


class StoreBase:
    """Engine, transactions and the audit log shared by every area of the store."""

    def __init__(self, url: str, *, agent: str | None = None) -> None:
        self.url = redacted(url)
        self.agent = agent
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction; database failures become StoreError (never with the password)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except exc.SQLAlchemyError as error:
            cause = getattr(error, "orig", None) or error
            raise StoreError(f"state store {self.url}: {type(cause).__name__}: {cause}") from error

    def _insert_ignore(self, conn: Connection, table: Table, values: dict[str, Any]) -> Any:
        """INSERT unless a unique key already holds the row; the new primary key, or None."""
        if self.dialect == "postgresql":
            stmt: Any = postgresql.insert(table).values(values).on_conflict_do_nothing()
        elif self.dialect == "sqlite":
            stmt = sqlite.insert(table).values(values).on_conflict_do_nothing()
        else:
            stmt = insert(table).values(values)
        # RETURNING, not rowcount: drivers may report -1 rows for INSERT ... ON CONFLICT.
        return conn.execute(stmt.returning(*table.primary_key.columns)).scalar()

    def _audit_row(self, conn: Connection, entry: AuditEntry) -> AuditEntry:
        conn.execute(
            insert(t.audit).values(
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                object=entry.object,
                detail=dict(entry.detail),
            )
        )
        return entry

    @staticmethod
    def _log_audit(entry: AuditEntry) -> None:
        detail = json.dumps(entry.detail, sort_keys=True, default=str)
        audit_log.info(
            "%s %s %s %s",
            entry.actor,
            entry.action,
            entry.object,
            detail,
            extra={
                "audit": {
                    "at": entry.at,
                    "actor": entry.actor,
                    "action": entry.action,
                    "object": entry.object,
                    "detail": dict(entry.detail),
                }
            },
        )

    def audit(
        self, actor: str, action: str, obj: str, detail: Mapping[str, Any], now: float
    ) -> AuditEntry:
        """Append one audit row and log it to the `opswatch.audit` logger."""
        entry = AuditEntry(now, actor, action, obj, dict(detail))
        with self._tx() as conn:
            self._audit_row(conn, entry)
        self._log_audit(entry)
        return entry
