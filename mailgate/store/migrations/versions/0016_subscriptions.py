"""Subscriptions apart from mailboxes: a subscription outlives its mailbox (RFC 3501 §6.3.6,
LIST-EXTENDED's \\NonExistent), so it is a name in its own table, not a mailbox's column.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("inbox_id", Id, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.UniqueConstraint("inbox_id", "name", name="uq_subscriptions_inbox_id_name"),
        sqlite_autoincrement=True,
    )
    mailboxes = sa.table(
        "mailboxes",
        sa.column("inbox_id", Id),
        sa.column("name", sa.String),
        sa.column("subscribed", sa.Boolean),
    )
    subscriptions = sa.table("subscriptions", sa.column("inbox_id", Id), sa.column("name"))
    op.execute(
        subscriptions.insert().from_select(
            ["inbox_id", "name"],
            sa.select(mailboxes.c.inbox_id, mailboxes.c.name).where(
                mailboxes.c.subscribed == sa.true()
            ),
        )
    )
    # SQLite rebuilds the table: keep AUTOINCREMENT, so a deleted mailbox's id never returns.
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("subscribed")


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column("subscribed", sa.Boolean, nullable=False, server_default=sa.true())
        )
    op.drop_table("subscriptions")
