"""Risk decisions on alerts (policy, flapping, silenced/inhibited by) and stored silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Silences made from the CLI or the API live in the database (fleet-wide on PostgreSQL); those in
agent.yaml are read from the file and never stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("policy", sa.String(32), nullable=False, server_default=""))
    op.add_column(
        "alerts", sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("alerts", sa.Column("silenced_by", sa.String(255)))
    op.add_column("alerts", sa.Column("inhibited_by", sa.String(64)))
    op.create_table(
        "silences",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_silences_ends_at", "silences")
    op.drop_table("silences")
    with op.batch_alter_table("alerts") as batch:
        for column in ("inhibited_by", "silenced_by", "flapping", "policy"):
            batch.drop_column(column)
