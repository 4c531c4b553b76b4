"""Outbound recipients remember whether their message was submitted with SMTPUTF8 (RFC 6531),
so that delivery asks the next hop for it and bounces where it is needed but not offered.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column("smtputf8", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("smtputf8")
