"""The durable state store: alerts, remediation runs, approvals, tickets and the audit log.

SQLAlchemy Core over a SQLite file by default (`AgentConfig.database_url`), or one PostgreSQL
database shared by a fleet. The schema is created by alembic migrations run programmatically
(`Store.migrate()`). Every side effect is written here before it is performed and its outcome
after, so a crash in between never loses it and never repeats it.

    Store
    ├── alerts        save_alerts, active_alerts, list_alerts, alert_history   (this module)
    ├── runs          create_run, approve_run, claim_run, finish_run, ...      (store_runs)
    ├── tickets       open_ticket, add_occurrence, resolve_ticket, ...         (store_tickets)
    └── audit         audit, list_audit                                        (store_base)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Row, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from agent import store_tables as t
from agent.model import Alert, AlertState, Level, Priority, make_labels
from agent.store_base import AuditEntry, StoreBase
from agent.store_runs import Approval, NewRun, RunsMixin
from agent.store_silences import SilencesMixin
from agent.store_tickets import NewTicket, TicketsMixin

__all__ = ["AlertTransition", "Approval", "AuditEntry", "NewRun", "NewTicket", "Store"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_HEAD = "0004"
"""The newest migration's revision; a test checks it against alembic's own idea of head."""
_MIGRATION_LOCK = 0x0F5_7A7E  # pg_advisory_xact_lock key: one migrating agent at a time
_ACTIVE = (AlertState.PENDING.value, AlertState.FIRING.value)
_AL = t.alerts.c


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One row of an alert's history: state or level changed."""

    at: float
    fingerprint: str
    rule: str
    from_state: AlertState | None
    to_state: AlertState
    from_level: Level | None
    to_level: Level
    value: float


class Store(RunsMixin, TicketsMixin, SilencesMixin, StoreBase):
    """The state store. `agent` names the rows this process owns when a call does not say."""

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe from concurrent processes)."""
        if self.schema_revision() == SCHEMA_HEAD:
            return  # the usual restart: alembic (and ~10 MiB of it) is never imported
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._tx() as conn:
            # SQLite: the transaction began IMMEDIATE, so it already holds the write lock.
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        log.info("state store ready at %s", self.url)

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at, or None before the first migration."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    # -- alerts ----------------------------------------------------------------------------

    def save_alerts(
        self, alerts: Sequence[Alert], now: float, *, agent: str | None = None
    ) -> None:
        """Upsert the current state of each alert and record its transitions.

        The owning agent is `agent`, else the store's agent, else the alert's `host` label.
        """
        with self._tx() as conn:
            for alert in alerts:
                owner = agent or self.agent or alert.label("host")
                self._save_alert(conn, alert, owner, now)

    def active_alerts(self, agent: str) -> list[Alert]:
        """Pending and firing alerts of one agent (to restore its state after a restart)."""
        query = select(t.alerts).where(_AL.agent == agent, _AL.state.in_(_ACTIVE))
        with self._tx() as conn:
            return [_alert(row) for row in conn.execute(query.order_by(_AL.starts_at))]

    def list_alerts(
        self, state: AlertState | None = None, limit: int = 1000, *, agent: str | None = None
    ) -> list[Alert]:
        """Alerts by their last known state, most recently changed first."""
        query = select(t.alerts).order_by(_AL.updated_at.desc(), _AL.fingerprint).limit(limit)
        if state is not None:
            query = query.where(_AL.state == state.value)
        if agent is not None:
            query = query.where(_AL.agent == agent)
        with self._tx() as conn:
            return [_alert(row) for row in conn.execute(query)]

    def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """Transitions of one alert, oldest first."""
        ev = t.alert_events.c
        query = select(t.alert_events).where(ev.fingerprint == fingerprint)
        with self._tx() as conn:
            rows = list(conn.execute(query.order_by(ev.id.desc()).limit(limit)))
        return [_transition(row) for row in reversed(rows)]

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries, newest first."""
        query = select(t.audit).order_by(t.audit.c.id.desc()).limit(limit)
        with self._tx() as conn:
            return [
                AuditEntry(m["at"], m["actor"], m["action"], m["object"], m["detail"])
                for m in (row._mapping for row in conn.execute(query))
            ]

    def _save_alert(self, conn: Connection, alert: Alert, owner: str, now: float) -> None:
        key = (_AL.agent == owner, _AL.fingerprint == alert.fingerprint)
        old = conn.execute(select(_AL.state, _AL.level).where(*key)).first()
        values = _alert_values(alert, now)
        if old is None:
            values.update(agent=owner, fingerprint=alert.fingerprint)
            conn.execute(insert(t.alerts).values(**values))
        else:
            conn.execute(update(t.alerts).where(*key).values(**values))
        if old is None or (old.state, old.level) != (alert.state.value, alert.level.value):
            conn.execute(insert(t.alert_events).values(
                agent=owner, fingerprint=alert.fingerprint, rule=alert.rule, at=now,
                from_state=old.state if old else None, to_state=alert.state.value,
                from_level=old.level if old else None, to_level=alert.level.value,
                value=alert.value,
            ))  # fmt: skip


def _alert_values(alert: Alert, now: float) -> dict[str, Any]:
    return {
        "rule": alert.rule, "state": alert.state.value, "level": alert.level.value,
        "labels": dict(alert.labels), "annotations": dict(alert.annotations),
        "value": alert.value, "threshold": alert.threshold, "starts_at": alert.starts_at,
        "ends_at": alert.ends_at, "active_since": alert.active_since,
        "priority": alert.priority.value, "likelihood": alert.likelihood,
        "impact": alert.impact, "risk": alert.risk, "updated_at": now, "policy": alert.policy,
        "flapping": alert.flapping, "silenced_by": alert.silenced_by,
        "inhibited_by": alert.inhibited_by,
    }  # fmt: skip


def _alert(row: Row[Any]) -> Alert:
    m = row._mapping
    return Alert(
        fingerprint=m["fingerprint"], rule=m["rule"], state=AlertState(m["state"]),
        level=Level(m["level"]), labels=make_labels(m["labels"]),
        annotations=make_labels(m["annotations"]), value=m["value"], starts_at=m["starts_at"],
        ends_at=m["ends_at"], active_since=m["active_since"], threshold=m["threshold"],
        priority=Priority(m["priority"]), likelihood=m["likelihood"], impact=m["impact"],
        risk=m["risk"], policy=m["policy"], flapping=bool(m["flapping"]),
        silenced_by=m["silenced_by"], inhibited_by=m["inhibited_by"],
    )  # fmt: skip


def _transition(row: Row[Any]) -> AlertTransition:
    m = row._mapping
    return AlertTransition(
        at=m["at"], fingerprint=m["fingerprint"], rule=m["rule"],
        from_state=AlertState(m["from_state"]) if m["from_state"] else None,
        to_state=AlertState(m["to_state"]),
        from_level=Level(m["from_level"]) if m["from_level"] else None,
        to_level=Level(m["to_level"]), value=m["value"],
    )  # fmt: skip
