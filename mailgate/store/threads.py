"""Threads: the conversations of one inbox, which the HTTP API lists and IMAP will name with
THREADID (RFC 8474). A message is threaded, in each inbox it lands in, as it is filed:

    1. the same Message-ID is already in the inbox (another folder, a duplicate): its thread;
    2. In-Reply-To, then References, nearest first, name a message of the inbox: its thread;
    3. a message of the inbox names this one in its In-Reply-To (the reply came first);
    4. a reply's subject ("Re: …" without usable references) matches a thread of the inbox
       active within SUBJECT_WINDOW: that thread;
    5. otherwise a new thread.

Each thread has a public id (a UUID) that the API and IMAP show; threads are never merged
afterwards, so the id of a conversation never changes under a client.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from mailgate.mime.headers import base_subject
from mailgate.mime.imapview import MessageIndex
from mailgate.store.database import Conn
from mailgate.store.models import entries, mailboxes, messages, threads

# How long after its last message a thread still takes replies that only match its subject.
SUBJECT_WINDOW = 30 * 86400
# Subjects are compared (and indexed) by their first characters only.
MAX_SUBJECT = 200


async def thread_for(
    conn: Conn,
    inbox_id: int,
    index: MessageIndex,
    msgid: str | None,
    in_reply_to: str | None,
    refs: str,
    when: int,
) -> int:
    """The thread (row id) of a message being filed in `inbox_id` at `when`; made if new."""
    ancestors = list(
        dict.fromkeys([in_reply_to, *reversed(refs.split())] if refs else [in_reply_to])
    )
    ancestors = [a for a in ancestors if a]
    wanted = [*ancestors, *([msgid] if msgid else [])]
    if wanted:
        match: list[ColumnElement[bool]] = [messages.c.msgid.in_(wanted)]
        if msgid:
            match.append(messages.c.in_reply_to == msgid)
        rows = (
            await conn.execute(
                select(entries.c.thread_id, messages.c.msgid, messages.c.in_reply_to)
                .select_from(
                    entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id).join(
                        messages, messages.c.id == entries.c.message_id
                    )
                )
                .where(
                    mailboxes.c.inbox_id == inbox_id,
                    entries.c.thread_id.is_not(None),
                    or_(*match),
                )
            )
        ).all()
        by_msgid = {row.msgid: row.thread_id for row in rows}
        for candidate in ([msgid] if msgid else []) + ancestors:
            if candidate in by_msgid:
                return await _touch(conn, by_msgid[candidate], when)
        for row in rows:
            if msgid and row.in_reply_to == msgid:
                return await _touch(conn, row.thread_id, when)
    subject, reply = base_subject(index.subject)
    subject = subject[:MAX_SUBJECT]
    if reply and subject:
        recent = await conn.scalar(
            select(threads.c.id)
            .where(
                threads.c.inbox_id == inbox_id,
                threads.c.subject == subject,
                threads.c.last_message_at >= when - SUBJECT_WINDOW,
            )
            .order_by(threads.c.last_message_at.desc())
            .limit(1)
        )
        if recent is not None:
            return await _touch(conn, int(recent), when)
    return int(
        (
            await conn.execute(
                insert(threads)
                .values(
                    public_id=str(uuid.uuid4()),
                    inbox_id=inbox_id,
                    subject=subject,
                    created_at=when,
                    last_message_at=when,
                )
                .returning(threads.c.id)
            )
        ).scalar_one()
    )


async def _touch(conn: Conn, thread_id: int, when: int) -> int:
    await conn.execute(
        update(threads)
        .where(threads.c.id == thread_id, threads.c.last_message_at < when)
        .values(last_message_at=when)
    )
    return thread_id
