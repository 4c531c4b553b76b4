"""Idempotent sends: what the HTTP API remembers of a send made with an Idempotency-Key, so
that a retry returns the message the first request sent instead of sending it again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "inbox_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("inboxes.id"),
            nullable=False,
        ),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("inbox_id", "key", name="uq_send_receipts_inbox_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_send_receipts_created_at", "send_receipts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_send_receipts_created_at", table_name="send_receipts")
    op.drop_table("send_receipts")
