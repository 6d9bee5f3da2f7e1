"""The initial schema: alerts, runs with approvals, tickets with history, and the audit log.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

A frozen copy of agent/store_tables.py as it was at this revision (migrations never import the
live schema); tests/unit/agent/test_store.py checks the two still agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    _alerts()
    _runs()
    _tickets()
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("agent", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float),
        sa.Column("active_since", sa.Float),
        sa.Column("priority", sa.String(4), nullable=False),
        sa.Column("likelihood", sa.String(64), nullable=False),
        sa.Column("impact", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_state", "alerts", ["agent", "state"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("from_level", sa.String(16)),
        sa.Column("to_level", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_alert_events_fingerprint", "alert_events", ["fingerprint", "at"])


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("activation", sa.Float, nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("runbook", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("approved_by", sa.String(255)),
        sa.Column("reason", sa.Text),
        sa.Column("rc", sa.Integer),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("preview", sa.Text, nullable=False),
        sa.UniqueConstraint("fingerprint", "activation", name="uq_runs_activation"),
    )
    op.create_index("ix_runs_state", "runs", ["agent", "state"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_approvals_run", "approvals", ["run_id"])


def _tickets() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("priority", sa.String(4), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("response_due", sa.Float, nullable=False),
        sa.Column("resolution_due", sa.Float, nullable=False),
        sa.Column("activation", sa.Float, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("resolved_at", sa.Float),
        sa.Column("resolution", sa.Text),
        sa.Column("previous_id", sa.Integer, sa.ForeignKey("tickets.id")),
    )
    op.create_index(
        "uq_tickets_open_fingerprint",
        "tickets",
        ["fingerprint"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index("ix_tickets_fingerprint", "tickets", ["fingerprint", "opened_at"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_ticket_events_ticket", "ticket_events", ["ticket_id", "id"])


def downgrade() -> None:
    for index, table in (
        ("ix_ticket_events_ticket", "ticket_events"),
        ("ix_tickets_fingerprint", "tickets"),
        ("uq_tickets_open_fingerprint", "tickets"),
        ("ix_approvals_run", "approvals"),
        ("ix_runs_state", "runs"),
        ("ix_alert_events_fingerprint", "alert_events"),
        ("ix_alerts_state", "alerts"),
        ("ix_audit_at", "audit"),
    ):
        op.drop_index(index, table_name=table)
    tables = ("ticket_events", "tickets", "approvals", "runs", "alert_events", "alerts", "audit")
    for table in tables:
        op.drop_table(table)
