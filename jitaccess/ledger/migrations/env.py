"""Alembic environment for the ledger. Run through `jitaccess db upgrade` (jitaccess.ledger.migrate),
which hands in an open connection, already holding the migration lock, in `config.attributes`."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger migrations with `jitaccess db upgrade` (jitaccess.ledger.migrate.upgrade)")

context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
