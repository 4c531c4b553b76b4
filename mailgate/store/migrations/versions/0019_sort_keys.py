"""What IMAP SORT and THREAD compare, kept per stored message (mime/sortkeys.py): the base
subject and whether it was a reply, the first From/To/Cc mailbox and display names, each
casemapped; stored mail gets them from its stored header.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from mailgate.store.ingest import sort_values

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BATCH = 500
KEYS = ("sort_subject", "sort_from", "sort_to", "sort_cc", "sort_display_from", "sort_display_to")


def upgrade() -> None:
    for column in KEYS:
        op.add_column("messages", sa.Column(column, sa.Text, nullable=False, server_default=""))
    op.add_column(
        "messages",
        sa.Column("subject_reply", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    bind = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger),
        sa.column("header", sa.LargeBinary),
        sa.column("subject_reply", sa.Boolean),
        *(sa.column(c, sa.Text) for c in KEYS),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(messages.c.id, messages.c.header)
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for blob_id, header in rows:
            bind.execute(
                messages.update()
                .where(messages.c.id == blob_id)
                .values(**sort_values(bytes(header)))
            )
        last = rows[-1][0]


def downgrade() -> None:
    for column in (*KEYS, "subject_reply"):
        op.drop_column("messages", column)
