"""What the HTTP API adds to tenancy: organization keys (no pod), inboxes and pods with a
display name, a client id for idempotent creation, metadata and an update time; and the
server-wide secrets that sign page tokens and download links.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL pod: an organization key, which opens every pod.
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("pod_id", existing_type=sa.BigInteger(), nullable=True)
    with op.batch_alter_table("inboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("display_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("client_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("metadata", sa.Text, nullable=True))
        batch.add_column(sa.Column("updated_at", sa.BigInteger, nullable=True))
        batch.create_unique_constraint("uq_inboxes_client_id", ["client_id"])
    op.execute("UPDATE inboxes SET updated_at = created_at")
    with op.batch_alter_table("pods", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("client_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.BigInteger, nullable=True))
        batch.create_unique_constraint("uq_pods_client_id", ["client_id"])
    op.execute("UPDATE pods SET updated_at = created_at")
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    with op.batch_alter_table("pods", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("uq_pods_client_id", type_="unique")
        batch.drop_column("updated_at")
        batch.drop_column("client_id")
    with op.batch_alter_table("inboxes", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("uq_inboxes_client_id", type_="unique")
        batch.drop_column("updated_at")
        batch.drop_column("metadata")
        batch.drop_column("client_id")
        batch.drop_column("display_name")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("pod_id", existing_type=sa.BigInteger(), nullable=False)
