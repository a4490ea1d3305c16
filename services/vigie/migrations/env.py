"""Alembic environment: runs on the connection :func:`vigie.core.db.migrate` hands over (online only)."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through vigie.core.db.migrate (it passes the connection)")
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
