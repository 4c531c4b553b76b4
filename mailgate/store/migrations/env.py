"""Alembic environment: migrations run on the connection the store hands over.

`mailgate db upgrade` and `mailgate serve` call Database.migrate(), which opens the transaction
(and, on PostgreSQL, takes an advisory lock so that nodes starting together migrate once).

On SQLite, foreign keys are off while migrations run (checked before commit), so that a batch
rebuild of a parent table cannot cascade-delete its children. A batch rebuild of pods, inboxes,
mailboxes or messages should pass table_kwargs={"sqlite_autoincrement": True} to keep ids from
being reused (see models.py).
"""

from alembic import context

from mailgate.store.models import declared, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `mailgate db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=declared,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
