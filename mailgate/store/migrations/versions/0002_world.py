"""Mail to and from the world: domains with DKIM keys, the outbound queue, allow/block lists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("spf", sa.String(1000), nullable=False),
        sa.Column("dmarc", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", name="uq_domains_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "dkim_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "domain_id",
            Id,
            sa.ForeignKey("domains.id", ondelete="CASCADE", name="fk_dkim_keys_domain_id_domains"),
            nullable=False,
        ),
        sa.Column("selector", sa.String(63), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_id_selector"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dkim_keys_domain_id", "dkim_keys", ["domain_id"])
    op.create_table(
        "outbound",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "message_id",
            Id,
            sa.ForeignKey("messages.id", name="fk_outbound_message_id_messages"),
            nullable=False,
        ),
        sa.Column(
            "inbox_id",
            Id,
            sa.ForeignKey("inboxes.id", ondelete="SET NULL", name="fk_outbound_inbox_id_inboxes"),
            nullable=True,
        ),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_reply", sa.Text, nullable=False, server_default=""),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbound_message_id", "outbound", ["message_id"])
    op.create_index("ix_outbound_next_attempt_at", "outbound", ["next_attempt_at"])
    op.create_table(
        "sender_rules",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "pod_id",
            Id,
            sa.ForeignKey("pods.id", ondelete="CASCADE", name="fk_sender_rules_pod_id_pods"),
            nullable=True,
        ),
        sa.Column(
            "inbox_id",
            Id,
            sa.ForeignKey(
                "inboxes.id", ondelete="CASCADE", name="fk_sender_rules_inbox_id_inboxes"
            ),
            nullable=True,
        ),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("entry", sa.String(320), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sender_rules_pod_id", "sender_rules", ["pod_id"])
    op.create_index("ix_sender_rules_inbox_id", "sender_rules", ["inbox_id"])


def downgrade() -> None:
    for table in ("sender_rules", "outbound", "dkim_keys", "domains"):
        op.drop_table(table)
