"""IMAP SEARCH's text index (models.header_texts and body_texts, mime/imapsearch.py): each stored
message's header fields, header section and body text, case-folded, so that SUBJECT, FROM, HEADER,
BODY, TEXT... are substring tests in SQL, not a parse of every message. Stored mail is indexed
here from its bytes, in batches.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from mailgate.mime.imapsearch import index_texts
from mailgate.store.ingest import text_values

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 200
FIELDS = ("subject", "from_field", "to_field", "cc_field", "bcc_field")
HEADER_COLUMNS = (*FIELDS, "headers", "header")


def _message_id(table: str) -> sa.Column[int]:
    return sa.Column(
        "message_id",
        Id,
        sa.ForeignKey("messages.id", name=f"fk_{table}_message_id_messages", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "header_texts",
        _message_id("header_texts"),
        *(sa.Column(c, sa.Text, nullable=False, server_default="") for c in HEADER_COLUMNS),
    )
    op.create_table(
        "body_texts",
        _message_id("body_texts"),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("whole", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    _index_stored_mail(op.get_bind())


def _index_stored_mail(bind: sa.Connection) -> None:
    header_texts = sa.table(
        "header_texts",
        sa.column("message_id", sa.BigInteger),
        *(sa.column(c, sa.Text) for c in HEADER_COLUMNS),
    )
    body_texts = sa.table(
        "body_texts",
        sa.column("message_id", sa.BigInteger),
        sa.column("body", sa.Text),
        sa.column("whole", sa.Boolean),
    )
    messages = sa.table("messages", sa.column("id", sa.BigInteger), sa.column("header"))
    blobs = sa.table("blobs", sa.column("message_id", sa.BigInteger), sa.column("data"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(messages.c.id, messages.c.header, blobs.c.data)
            .join(blobs, blobs.c.message_id == messages.c.id)
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        headers, bodies = [], []
        for blob_id, header, data in rows:
            fields, body = text_values(index_texts(bytes(header), bytes(data)))
            headers.append({"message_id": blob_id, **fields})
            bodies.append({"message_id": blob_id, **body})
        bind.execute(header_texts.insert(), headers)
        bind.execute(body_texts.insert(), bodies)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_table("body_texts")
    op.drop_table("header_texts")
