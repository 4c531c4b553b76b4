"""\\Recent (RFC 3501 §2.3.2): each mailbox's lowest UID that no session has yet been told is
recent. Mail stored before this upgrade is not recent.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("recent_uid", sa.BigInteger, nullable=False, server_default="1"))
    op.execute("UPDATE mailboxes SET recent_uid = uidnext")


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("recent_uid")
