"""What the HTTP API's API keys and allow/block lists add: a key's update time (its name, the
label, can be changed), and the reason an entry was put on a list.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("updated_at", sa.BigInteger, nullable=True))
    op.execute("UPDATE api_keys SET updated_at = created_at")
    op.add_column("sender_rules", sa.Column("reason", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sender_rules", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("updated_at")
