"""The gateway core: pods, inboxes, API keys, mailboxes, messages and their entries.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    pods = op.create_table(
        "pods",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", name="uq_pods_name"),
        sqlite_autoincrement=True,
    )
    # DESIGN: "a default pod exists", so that `key create --pod default` works on a fresh install.
    op.bulk_insert(pods, [{"name": "default", "created_at": int(time.time())}])
    op.create_table(
        "inboxes",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "pod_id",
            Id,
            sa.ForeignKey("pods.id", ondelete="CASCADE", name="fk_inboxes_pod_id_pods"),
            nullable=False,
        ),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("address", name="uq_inboxes_address"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_inboxes_pod_id", "inboxes", ["pod_id"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counters, [{"name": "uidvalidity", "value": 0}])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "pod_id",
            Id,
            sa.ForeignKey("pods.id", ondelete="CASCADE", name="fk_api_keys_pod_id_pods"),
            nullable=False,
        ),
        sa.Column(
            "inbox_id",
            Id,
            sa.ForeignKey("inboxes.id", ondelete="CASCADE", name="fk_api_keys_inbox_id_inboxes"),
            nullable=True,
        ),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_keys_pod_id", "api_keys", ["pod_id"])
    op.create_table(
        "mailboxes",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "inbox_id",
            Id,
            sa.ForeignKey("inboxes.id", ondelete="CASCADE", name="fk_mailboxes_inbox_id_inboxes"),
            nullable=False,
        ),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("special_use", sa.String(16), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uidnext", sa.BigInteger, nullable=False),
        sa.Column("highestmodseq", sa.BigInteger, nullable=False),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("keywords", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("inbox_id", "name", name="uq_mailboxes_inbox_id_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mailboxes_inbox_id", "mailboxes", ["inbox_id"])
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("header", sa.LargeBinary, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("bodystructure", sa.LargeBinary, nullable=False),
        sa.Column("parts", sa.LargeBinary, nullable=False),
        sa.Column("sent_date", sa.BigInteger, nullable=True),
        sa.Column("sent_date_tz", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("hash", name="uq_messages_hash"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "blobs",
        sa.Column(
            "message_id",
            Id,
            sa.ForeignKey("messages.id", ondelete="CASCADE", name="fk_blobs_message_id_messages"),
            primary_key=True,
        ),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column(
            "mailbox_id",
            Id,
            sa.ForeignKey(
                "mailboxes.id", ondelete="CASCADE", name="fk_entries_mailbox_id_mailboxes"
            ),
            primary_key=True,
        ),
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column(
            "message_id",
            Id,
            sa.ForeignKey("messages.id", name="fk_entries_message_id_messages"),
            nullable=False,
        ),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("keywords", sa.Text, nullable=False, server_default=""),
        sa.Column("modseq", sa.BigInteger, nullable=False),
        sa.Column("internaldate", sa.BigInteger, nullable=False),
        sa.Column("internaldate_tz", sa.SmallInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_entries_mailbox_modseq", "entries", ["mailbox_id", "modseq"])
    op.create_index("ix_entries_message_id", "entries", ["message_id"])
    op.create_table(
        "expunged",
        sa.Column(
            "mailbox_id",
            Id,
            sa.ForeignKey(
                "mailboxes.id", ondelete="CASCADE", name="fk_expunged_mailbox_id_mailboxes"
            ),
            primary_key=True,
        ),
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("modseq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_expunged_mailbox_modseq", "expunged", ["mailbox_id", "modseq"])


def downgrade() -> None:
    for table in (
        "expunged",
        "entries",
        "blobs",
        "messages",
        "mailboxes",
        "api_keys",
        "counters",
        "inboxes",
        "pods",
    ):
        op.drop_table(table)
