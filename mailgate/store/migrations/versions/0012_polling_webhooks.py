"""Polling webhooks: subscriptions to the event outbox read with Svix's consumer API (the token
kept only as its hash), and each consumer's place in them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "polling_webhooks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("public_id", sa.String(64), nullable=False, unique=True),
        sa.Column("pod_id", Id, sa.ForeignKey("pods.id", ondelete="CASCADE"), nullable=True),
        sa.Column("inbox_id", Id, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("event_types", sa.Text, nullable=True),
        sa.Column("pod_ids", sa.Text, nullable=True),
        sa.Column("inbox_ids", sa.Text, nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("start_seq", sa.BigInteger, nullable=False),
        sa.Column("destination", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("owner", "client_id", name="uq_polling_webhooks_owner_client_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_polling_webhooks_pod_id", "polling_webhooks", ["pod_id"])
    op.create_index("ix_polling_webhooks_inbox_id", "polling_webhooks", ["inbox_id"])
    op.create_table(
        "polling_consumers",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "webhook_id",
            Id,
            sa.ForeignKey("polling_webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("consumer_id", sa.String(255), nullable=False),
        sa.Column("committed", sa.BigInteger, nullable=False),
        sa.Column("leased_to", sa.BigInteger, nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "webhook_id", "consumer_id", name="uq_polling_consumers_webhook_id_consumer_id"
        ),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("polling_consumers")
    op.drop_table("polling_webhooks")
