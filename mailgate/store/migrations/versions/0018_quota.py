"""Storage quota (RFC 9208): an inbox's own limit, and each mailbox's size kept as a counter
so that an inbox's usage is a sum over its mailboxes, not over its messages. The counters
start from the messages already stored.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("quota", sa.BigInteger, nullable=True))
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("size", sa.BigInteger, nullable=False, server_default="0"))
    op.execute(
        "UPDATE mailboxes SET size = (SELECT COALESCE(SUM(messages.size), 0) FROM entries"
        " JOIN messages ON messages.id = entries.message_id"
        " WHERE entries.mailbox_id = mailboxes.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("size")
    with op.batch_alter_table("inboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("quota")
