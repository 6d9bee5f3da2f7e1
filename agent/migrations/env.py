"""Alembic environment: OpsWatch runs migrations programmatically on the Store's connection.

`agent.store.Store.migrate()` passes an open connection (already holding the migration lock) in
`config.attributes["connection"]`; there is no alembic.ini and no offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run OpsWatch migrations through Store.migrate()")
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
