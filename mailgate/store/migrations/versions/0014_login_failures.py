"""Failed logins shared by every node: per client address and login name, the failures in a
row and when the last one was.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_failures_client_last_at", "login_failures", ["client", "last_at"])
    op.create_index("ix_login_failures_last_at", "login_failures", ["last_at"])


def downgrade() -> None:
    op.drop_table("login_failures")
