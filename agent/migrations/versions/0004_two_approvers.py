"""Runs that need two different people to approve them (the `two_approvers` policy).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`approvals_needed` is 1 for every run before this revision; `first_approver` holds the first
of two approvals until the second, from someone else, approves the run.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("approvals_needed", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column("runs", sa.Column("first_approver", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("first_approver")
        batch.drop_column("approvals_needed")
