"""Stored silences may be recurring maintenance windows (weekdays, times, time zone).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

A recurring silence with no end is stored with ends_at = +infinity (REAL/double precision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("silences", sa.Column("recurring", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("silences") as batch:
        batch.drop_column("recurring")
