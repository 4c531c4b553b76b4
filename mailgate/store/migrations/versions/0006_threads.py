"""Threads: every message entry belongs to a conversation of its inbox. Stored mail is threaded
here, oldest first, by the same rules as new mail (store/threads.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from mailgate.mime.imapview import MessageIndex, index_message
from mailgate.store.database import Conn, run_inline
from mailgate.store.threads import thread_for

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 500


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", Id, primary_key=True),
        sa.Column("public_id", sa.String(36), nullable=False),
        sa.Column(
            "inbox_id",
            Id,
            sa.ForeignKey("inboxes.id", name="fk_threads_inbox_id_inboxes", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_message_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("public_id", name="uq_threads_public_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_threads_inbox_id", "threads", ["inbox_id"])
    op.create_index("ix_threads_inbox_subject", "threads", ["inbox_id", "subject"])
    op.create_index("ix_threads_inbox_last_message_at", "threads", ["inbox_id", "last_message_at"])
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("thread_id", Id, nullable=True))
        batch.create_foreign_key("fk_entries_thread_id_threads", "threads", ["thread_id"], ["id"])
        batch.create_index("ix_entries_thread_id", ["thread_id"])
    op.create_index("ix_messages_in_reply_to", "messages", ["in_reply_to"])
    _thread_stored_mail()


def _thread_stored_mail() -> None:
    bind = op.get_bind()
    entries = sa.table(
        "entries",
        sa.column("mailbox_id", sa.BigInteger),
        sa.column("uid", sa.BigInteger),
        sa.column("message_id", sa.BigInteger),
        sa.column("internaldate", sa.BigInteger),
        sa.column("thread_id", sa.BigInteger),
    )
    mailboxes = sa.table("mailboxes", sa.column("id", sa.BigInteger), sa.column("inbox_id"))
    messages = sa.table(
        "messages",
        sa.column("id", sa.BigInteger),
        sa.column("header", sa.LargeBinary),
        sa.column("msgid", sa.Text),
        sa.column("in_reply_to", sa.Text),
        sa.column("refs", sa.Text),
    )
    # Oldest first, as they arrived: a reply finds the thread its parent started.
    position: tuple[int, int, int] = (-1, -1, -1)
    while True:
        rows = bind.execute(
            sa.select(
                entries.c.mailbox_id,
                entries.c.uid,
                entries.c.internaldate,
                mailboxes.c.inbox_id,
                messages.c.header,
                messages.c.msgid,
                messages.c.in_reply_to,
                messages.c.refs,
            )
            .select_from(
                entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id).join(
                    messages, messages.c.id == entries.c.message_id
                )
            )
            .where(
                sa.tuple_(entries.c.internaldate, entries.c.mailbox_id, entries.c.uid)
                > sa.tuple_(*(sa.literal(p) for p in position))
            )
            .order_by(entries.c.internaldate, entries.c.mailbox_id, entries.c.uid)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            index = index_message(bytes(row.header))

            async def work(conn: Conn, row: Any = row, index: MessageIndex = index) -> int:
                return await thread_for(
                    conn,
                    row.inbox_id,
                    index,
                    row.msgid,
                    row.in_reply_to,
                    row.refs,
                    row.internaldate,
                )

            thread_id = run_inline(bind, work)
            bind.execute(
                entries.update()
                .where(entries.c.mailbox_id == row.mailbox_id, entries.c.uid == row.uid)
                .values(thread_id=thread_id)
            )
        last = rows[-1]
        position = (last.internaldate, last.mailbox_id, last.uid)


def downgrade() -> None:
    op.drop_index("ix_messages_in_reply_to", table_name="messages")
    with op.batch_alter_table("entries") as batch:
        batch.drop_index("ix_entries_thread_id")
        batch.drop_constraint("fk_entries_thread_id_threads", type_="foreignkey")
        batch.drop_column("thread_id")
    op.drop_table("threads")
