"""Events: the outbox of what the API reports (message.received, message.sent, ...), written in
the transaction of each change; the inbox events (labels a message gained or lost); webhook
endpoints, each with its cursor into the outbox; and when a domain was first found verified.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("verified_at", sa.BigInteger, nullable=True))
    op.create_table(
        "events",
        sa.Column("seq", Id, primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("pod", sa.String(255), nullable=True),
        sa.Column("inbox", sa.String(320), nullable=True),
        sa.Column("blob_id", sa.BigInteger, nullable=True),
        sa.Column("message_id", sa.Text, nullable=True),
        sa.Column("thread_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_inbox_seq", "events", ["inbox", "seq"])
    op.create_index("ix_events_pod_seq", "events", ["pod", "seq"])
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "label_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("inbox_id", Id, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_label_events_inbox_id_id", "label_events", ["inbox_id", "id"])
    op.create_index("ix_label_events_created_at", "label_events", ["created_at"])
    op.create_table(
        "webhooks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("public_id", sa.String(64), nullable=False, unique=True),
        sa.Column("pod_id", Id, sa.ForeignKey("pods.id", ondelete="CASCADE"), nullable=True),
        sa.Column("inbox_id", Id, sa.ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("event_types", sa.Text, nullable=True),
        sa.Column("pod_ids", sa.Text, nullable=True),
        sa.Column("inbox_ids", sa.Text, nullable=True),
        sa.Column("headers", sa.Text, nullable=False, server_default="{}"),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("failing_since", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("owner", "client_id", name="uq_webhooks_owner_client_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhooks_pod_id", "webhooks", ["pod_id"])
    op.create_index("ix_webhooks_inbox_id", "webhooks", ["inbox_id"])
    op.create_index("ix_webhooks_next_attempt_at", "webhooks", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_table("label_events")
    op.drop_table("events")
    with op.batch_alter_table("domains") as batch:
        batch.drop_column("verified_at")
