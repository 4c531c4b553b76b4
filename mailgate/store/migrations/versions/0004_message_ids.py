"""Each stored message keeps its Message-ID, In-Reply-To and References, ready for threads;
mail stored before is filled in from its header.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from mailgate.mime.imapview import index_message
from mailgate.store.ingest import thread_ids

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    op.add_column("messages", sa.Column("msgid", sa.Text, nullable=True))
    op.add_column("messages", sa.Column("in_reply_to", sa.Text, nullable=True))
    op.add_column("messages", sa.Column("refs", sa.Text, nullable=False, server_default=""))
    op.create_index("ix_messages_msgid", "messages", ["msgid"])
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger),
        sa.column("header", sa.LargeBinary),
        sa.column("msgid", sa.Text),
        sa.column("in_reply_to", sa.Text),
        sa.column("refs", sa.Text),
    )
    bind = op.get_bind()
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
        for row_id, header in rows:
            msgid, in_reply_to, refs = thread_ids(index_message(bytes(header)))
            bind.execute(
                messages.update()
                .where(messages.c.id == row_id)
                .values(msgid=msgid, in_reply_to=in_reply_to, refs=refs)
            )
        last = rows[-1][0]


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+): rebuilding the table would cascade.
    op.drop_index("ix_messages_msgid", table_name="messages")
    for column in ("refs", "in_reply_to", "msgid"):
        op.drop_column("messages", column)
