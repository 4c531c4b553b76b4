"""Save dates (RFC 8514 SAVEDATE): when each message entry was put into its mailbox. Entries
that predate the column take their internal date, the best record of when they arrived.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("saved_at", sa.BigInteger(), nullable=True))
    entries = sa.table(
        "entries", sa.column("saved_at", sa.BigInteger), sa.column("internaldate", sa.BigInteger)
    )
    op.execute(entries.update().values(saved_at=entries.c.internaldate))


def downgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("saved_at")
