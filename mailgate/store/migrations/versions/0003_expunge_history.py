"""Expunge records get a time, so old ones can be forgotten; mailboxes remember how far.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Records from before this migration count as old (time 0): they go at the first pruning.
    op.add_column(
        "expunged", sa.Column("expunged_at", sa.BigInteger, nullable=False, server_default="0")
    )
    op.create_index("ix_expunged_expunged_at", "expunged", ["expunged_at"])
    op.add_column(
        "mailboxes", sa.Column("pruned_modseq", sa.BigInteger, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("mailboxes", "pruned_modseq")
    op.drop_index("ix_expunged_expunged_at", table_name="expunged")
    op.drop_column("expunged", "expunged_at")
