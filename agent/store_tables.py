"""The state store's schema as SQLAlchemy Core tables (the migrations create exactly these).

Times are UNIX seconds (float). Rows that belong to one agent carry its name in `agent`, so a
fleet can share one PostgreSQL database.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("agent", String(255), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("rule", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float),
    Column("active_since", Float),
    Column("priority", String(4), nullable=False),
    Column("likelihood", String(64), nullable=False),
    Column("impact", String(64), nullable=False),
    Column("risk", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("policy", String(32), nullable=False, server_default=""),
    Column("flapping", Boolean, nullable=False, server_default=false()),
    Column("silenced_by", String(255)),
    Column("inhibited_by", String(64)),
    Index("ix_alerts_state", "agent", "state"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("author", String(255), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("recurring", JSON, nullable=False, server_default="[]"),
    Index("ix_silences_ends_at", "ends_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("at", Float, nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("from_level", String(16)),
    Column("to_level", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_alert_events_fingerprint", "fingerprint", "at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agent", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("activation", Float, nullable=False),
    Column("rule", String(255), nullable=False),
    Column("runbook", String(255), nullable=False),
    Column("target", String(255), nullable=False),
    Column("variables", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("approved_by", String(255)),
    Column("approvals_needed", Integer, nullable=False, server_default="1"),
    Column("first_approver", String(255)),
    Column("reason", Text),
    Column("rc", Integer),
    Column("output", Text, nullable=False),
    Column("preview", Text, nullable=False),
    UniqueConstraint("fingerprint", "activation", name="uq_runs_activation"),
    Index("ix_runs_state", "agent", "state"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text),
    Column("at", Float, nullable=False),
    Index("ix_approvals_run", "run_id"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("priority", String(4), nullable=False),
    Column("level", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("response_due", Float, nullable=False),
    Column("resolution_due", Float, nullable=False),
    Column("activation", Float, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("external_id", String(255)),
    Column("assignee", String(255)),
    Column("resolved_at", Float),
    Column("resolution", Text),
    Column("previous_id", Integer, ForeignKey("tickets.id")),
    # One open ticket per fingerprint, enforced by the database for every writer.
    Index(
        "uq_tickets_open_fingerprint",
        "fingerprint",
        unique=True,
        sqlite_where=text("state = 'open'"),
        postgresql_where=text("state = 'open'"),
    ),
    Index("ix_tickets_fingerprint", "fingerprint", "opened_at"),
)

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_ticket_events_ticket", "ticket_id", "id"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object", String(255), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_at", "at"),
)
