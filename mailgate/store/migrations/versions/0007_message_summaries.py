"""Each stored message keeps what the HTTP API lists about it (mime/apiview.py's summary: its
addresses, subject, a preview of its text and its attachments), computed once as the IMAP view
is; stored mail is summarised here from its bytes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from mailgate.store.ingest import summary_values

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 200
COLUMNS = ("subject", "from_addr", "to_addrs", "cc_addrs", "bcc_addrs", "reply_to", "preview")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("messages", sa.Column(column, sa.Text, nullable=True))
    op.add_column(
        "messages", sa.Column("attachments", sa.Text, nullable=False, server_default="[]")
    )
    bind = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger),
        *(sa.column(c, sa.Text) for c in (*COLUMNS, "attachments")),
    )
    blobs = sa.table("blobs", sa.column("message_id", sa.BigInteger), sa.column("data"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(blobs.c.message_id, blobs.c.data)
            .where(blobs.c.message_id > last)
            .order_by(blobs.c.message_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for blob_id, data in rows:
            bind.execute(
                messages.update()
                .where(messages.c.id == blob_id)
                .values(**summary_values(bytes(data)))
            )
        last = rows[-1][0]


def downgrade() -> None:
    for column in (*COLUMNS, "attachments"):
        op.drop_column("messages", column)
