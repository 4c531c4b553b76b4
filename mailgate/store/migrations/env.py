"""Alembic environment: migrations run on the connection the store hands over.

`mailgate db upgrade` and `mailgate serve` call Database.migrate(), which opens the transaction
(and, on PostgreSQL, takes an advisory lock so that nodes starting together migrate once).
"""

from alembic import context

from mailgate.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `mailgate db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
