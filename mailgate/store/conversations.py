"""An inbox's mail as the HTTP API sees it: a message is one stored message in one inbox,
whichever of its mailboxes hold it (the Sent copy and the INBOX copy of a message an inbox sent
itself are one message, in two places), named by its Message-ID, and grouped in threads.

Pages are keyset pages over (timestamp, blob id), newest first unless ascending: a message's
timestamp is when it first reached the inbox, a thread's when its newest message did. Which
messages a page holds is decided by criteria on their copies (in a mailbox, with or without a
flag or keyword); what those mean as labels is the API's business (delivery/labels.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.models import (
    blobs,
    entries,
    inboxes,
    mailboxes,
    messages,
    search_texts,
    threads,
)
from mailgate.store.records import FLAG_BITS, SEEN, join_flags

# A message without a usable Message-ID is named by its blob: "<blob.N@mailgate>".
_BLOB_ID_PREFIX = "<blob."
_BLOB_ID_SUFFIX = "@mailgate>"


def blob_message_id(blob_id: int) -> str:
    return f"{_BLOB_ID_PREFIX}{blob_id}{_BLOB_ID_SUFFIX}"


def _blob_of(message_id: str) -> int | None:
    if message_id.startswith(_BLOB_ID_PREFIX) and message_id.endswith(_BLOB_ID_SUFFIX):
        number = message_id[len(_BLOB_ID_PREFIX) : -len(_BLOB_ID_SUFFIX)]
        if number.isdigit() and len(number) < 19:
            return int(number)
    return None


@dataclass(frozen=True, slots=True)
class Copy:
    """Where a message is: one message entry."""

    mailbox_id: int
    mailbox: str
    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class Mail:
    """One message of one inbox."""

    inbox_id: int
    inbox: str
    blob_id: int
    message_id: str  # its Message-ID ("<id@host>"), or blob_message_id()
    thread: str  # the thread's public id
    copies: tuple[Copy, ...]
    timestamp: int  # when it first reached the inbox (Unix seconds)
    updated: int  # when it last did (another copy)
    size: int
    subject: str | None
    from_: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    reply_to: tuple[str, ...]
    preview: str | None
    attachments: str  # JSON (mime/apiview.attachments_from_json)
    in_reply_to: str | None
    references: tuple[str, ...]
    sent_date: int | None


@dataclass(frozen=True, slots=True)
class Criterion:
    """What a message's copies must show for it to be in a page: `kind` is "mailbox" (a copy
    in the mailbox named `value`), "flag" (a copy with the system flag or keyword `value`), or
    "unseen" (a copy not \\Seen in a mailbox other than those named in `value`, space-separated);
    `present` False asks for the opposite."""

    kind: str
    value: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class Page:
    """Which messages (or threads) a page holds."""

    mailboxes: frozenset[str] | None = None  # only copies in these (None: every mailbox)
    exclude: frozenset[str] = frozenset()  # never copies in these
    criteria: tuple[Criterion, ...] = ()
    before: int | None = None  # timestamp < before
    after: int | None = None  # timestamp >= after
    ascending: bool = False
    limit: int = 50
    start: tuple[int, int] | None = None  # (timestamp, id) the previous page ended at
    threads: frozenset[int] = frozenset()  # only these threads (row ids)
    # (field, text): only messages whose "sender", "recipients" or "subject" holds the text, in
    # any case (a thread: one of its messages, each text); search matches the same way.
    matching: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Thread:
    id: int
    public_id: str
    inbox_id: int
    inbox: str
    created_at: int
    timestamp: int  # when its newest message arrived


class Conversations(StoreBase):
    async def mail_page(self, inbox_ids: Sequence[int], page: Page) -> list[Mail]:
        """A page of messages of the given inboxes, with every copy the page's mailboxes hold."""
        if not inbox_ids:
            return []
        async with self.db.read(snapshot=True) as conn:
            return await _mail_page(conn, inbox_ids, page)

    async def mail_by_ids(
        self, inbox_ids: Sequence[int], message_ids: Iterable[str], page: Page | None = None
    ) -> list[Mail]:
        """The messages with these ids in these inboxes (a Message-ID several messages of one
        inbox have names the newest of them)."""
        page = page or Page()
        wanted = list(dict.fromkeys(message_ids))
        if not wanted or not inbox_ids:
            return []
        blobs = [b for m in wanted if (b := _blob_of(m)) is not None]
        by_id = or_(messages.c.msgid.in_(wanted), entries.c.message_id.in_(blobs or [-1]))
        query = (
            _grouped(inbox_ids, page)
            .where(by_id)
            .with_only_columns(
                mailboxes.c.inbox_id, entries.c.message_id.label("blob"), messages.c.msgid
            )
            .group_by(messages.c.msgid)
        )
        async with self.db.read(snapshot=True) as conn:
            rows = (await conn.execute(query)).all()
            newest: dict[tuple[int, str], int] = {}
            for row in rows:
                name = row.msgid or blob_message_id(row.blob)
                key = (row.inbox_id, name)
                newest[key] = max(newest.get(key, 0), row.blob)
            found = await load_mail(conn, sorted(set((i, b) for (i, _), b in newest.items())), page)
        order = {m: n for n, m in enumerate(wanted)}
        return sorted(found, key=lambda mail: order.get(mail.message_id, len(order)))

    async def mail_of_blob(self, inbox_id: int, blob_id: int) -> Mail | None:
        """The message a stored message is in one inbox, if it is still there."""
        async with self.db.read(snapshot=True) as conn:
            found = await load_mail(conn, [(inbox_id, blob_id)], Page())
        return found[0] if found else None

    async def message_and_thread(
        self, address: str, blob_id: int, thread_id: str | None, thread_page: Page
    ) -> MessageAndThread | None:
        """What an event shows of a message, read at once: the message in the inbox at
        `address`, its bytes, and its thread with the thread's messages `thread_page` admits
        (oldest first); None if the message is no longer in that inbox."""
        async with self.db.read(snapshot=True) as conn:
            inbox_id = await conn.scalar(select(inboxes.c.id).where(inboxes.c.address == address))
            if inbox_id is None:
                return None
            found = await load_mail(conn, [(inbox_id, blob_id)], Page())
            data = await conn.scalar(select(blobs.c.data).where(blobs.c.message_id == blob_id))
            if not found or data is None:
                return None
            mail = found[0]
            row = (
                await conn.execute(
                    select(threads.c.id, func.max(entries.c.internaldate).label("stamp"))
                    .join(entries, entries.c.thread_id == threads.c.id)
                    .where(threads.c.public_id == (thread_id or mail.thread))
                    .where(threads.c.inbox_id == inbox_id)
                    .group_by(threads.c.id)
                )
            ).first()
            if row is None:
                return MessageAndThread(mail, bytes(data), None, [])
            (thread,) = await load_threads(conn, [(row.id, row.stamp or 0)])
            page = dataclasses.replace(thread_page, threads=frozenset({thread.id}))
            return MessageAndThread(
                mail, bytes(data), thread, await _mail_page(conn, [inbox_id], page)
            )

    async def thread_page(self, inbox_ids: Sequence[int], page: Page) -> list[Thread]:
        """A page of threads of the given inboxes that hold a message the page admits."""
        if not inbox_ids:
            return []
        grouped = _grouped(inbox_ids, page, by_thread=True)
        stamp = func.max(entries.c.internaldate)
        query = _paged(grouped, stamp, entries.c.thread_id, page)
        async with self.db.read(snapshot=True) as conn:
            rows = (await conn.execute(query)).all()
            return await load_threads(conn, [(r.thread, r.stamp) for r in rows])

    async def thread_by_id(self, inbox_ids: Sequence[int], public_id: str) -> Thread:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(threads.c.id, threads.c.inbox_id).where(
                        threads.c.public_id == public_id, threads.c.inbox_id.in_(inbox_ids)
                    )
                )
            ).first()
            if row is None:
                raise errors.NotFound(f"no thread {public_id}")
            stamp = await conn.scalar(
                select(func.max(entries.c.internaldate)).where(entries.c.thread_id == row.id)
            )
            found = await load_threads(conn, [(row.id, stamp or 0)])
        return found[0]


@dataclass(frozen=True, slots=True)
class MessageAndThread:
    mail: Mail
    raw: bytes
    thread: Thread | None
    thread_messages: list[Mail]


async def _mail_page(conn: Any, inbox_ids: Sequence[int], page: Page) -> list[Mail]:
    grouped = _grouped(inbox_ids, page)
    stamp = func.min(entries.c.internaldate)
    query = _paged(grouped, stamp, entries.c.message_id, page)
    keys = [(r.inbox_id, r.blob) for r in await conn.execute(query)]
    return await load_mail(conn, keys, page)


def _grouped(inbox_ids: Sequence[int], page: Page, *, by_thread: bool = False) -> Any:
    """Copies of the inboxes' messages the page admits, grouped by message (or thread)."""
    source = entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id).join(
        messages, messages.c.id == entries.c.message_id
    )
    if page.matching:
        source = source.join(search_texts, search_texts.c.message_id == entries.c.message_id)
    where: list[ColumnElement[bool]] = [mailboxes.c.inbox_id.in_(list(inbox_ids))]
    if page.mailboxes is not None:
        where.append(mailboxes.c.name.in_(sorted(page.mailboxes)))
    if page.exclude:
        where.append(mailboxes.c.name.not_in(sorted(page.exclude)))
    if page.threads:
        where.append(entries.c.thread_id.in_(sorted(page.threads)))
    key = entries.c.thread_id if by_thread else entries.c.message_id
    query = select(mailboxes.c.inbox_id).select_from(source).where(*where)
    query = query.group_by(mailboxes.c.inbox_id, key)
    having = [_criterion(c) for c in page.criteria]
    for field, text in page.matching:
        hit = search_texts.c[field].contains(text.casefold(), autoescape=True)
        having.append(func.max(case((hit, 1), else_=0).cast(Integer)) == 1)
    return query.having(and_(*having)) if having else query


def _criterion(c: Criterion) -> ColumnElement[bool]:
    if c.kind == "mailbox":
        hit: ColumnElement[bool] = mailboxes.c.name == c.value
    elif c.kind == "unseen":
        hit = and_(
            entries.c.flags.op("&")(FLAG_BITS[SEEN]) == 0,
            mailboxes.c.name.not_in(c.value.split()),
        )
    elif c.value in FLAG_BITS:
        hit = entries.c.flags.op("&")(FLAG_BITS[c.value]) != 0
    else:
        # Keywords are stored space-separated: match a whole one, in any case (as labels are).
        padded = func.lower(literal(" ") + entries.c.keywords + literal(" "))
        hit = padded.contains(f" {c.value.lower()} ", autoescape=True)
    any_copy = func.max(case((hit, 1), else_=0).cast(Integer))
    return any_copy == (1 if c.present else 0)


def _paged(grouped: Any, stamp: Any, key: Any, page: Page) -> Any:
    name = "blob" if key is entries.c.message_id else "thread"
    query = grouped.add_columns(stamp.label("stamp"), key.label(name))
    if page.before is not None:
        query = query.having(stamp < page.before)
    if page.after is not None:
        query = query.having(stamp >= page.after)
    if page.start is not None:
        position = tuple_(stamp, key)
        bound = tuple_(literal(page.start[0]), literal(page.start[1]))
        query = query.having(position > bound if page.ascending else position < bound)
    order = (stamp.asc(), key.asc()) if page.ascending else (stamp.desc(), key.desc())
    return query.order_by(*order).limit(page.limit)


async def load_mail(conn: Any, keys: Sequence[tuple[int, int]], page: Page) -> list[Mail]:
    """The messages (inbox id, blob id), in the order given, with the copies the page admits."""
    if not keys:
        return []
    wanted_blobs = sorted({blob for _, blob in keys})
    where: list[ColumnElement[bool]] = [
        entries.c.message_id.in_(wanted_blobs),
        mailboxes.c.inbox_id.in_(sorted({inbox for inbox, _ in keys})),
    ]
    if page.mailboxes is not None:
        where.append(mailboxes.c.name.in_(sorted(page.mailboxes)))
    if page.exclude:
        where.append(mailboxes.c.name.not_in(sorted(page.exclude)))
    rows = (
        await conn.execute(
            select(
                mailboxes.c.inbox_id,
                inboxes.c.address,
                entries.c.message_id,
                entries.c.mailbox_id,
                mailboxes.c.name,
                entries.c.uid,
                entries.c.flags,
                entries.c.keywords,
                entries.c.modseq,
                entries.c.internaldate,
                threads.c.public_id,
                messages.c.size,
                messages.c.msgid,
                messages.c.in_reply_to,
                messages.c.refs,
                messages.c.subject,
                messages.c.from_addr,
                messages.c.to_addrs,
                messages.c.cc_addrs,
                messages.c.bcc_addrs,
                messages.c.reply_to,
                messages.c.preview,
                messages.c.attachments,
                messages.c.sent_date,
            )
            .select_from(
                entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id)
                .join(inboxes, inboxes.c.id == mailboxes.c.inbox_id)
                .join(messages, messages.c.id == entries.c.message_id)
                .outerjoin(threads, threads.c.id == entries.c.thread_id)
            )
            .where(*where)
            .order_by(entries.c.internaldate, entries.c.mailbox_id, entries.c.uid)
        )
    ).all()
    grouped: dict[tuple[int, int], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.inbox_id, row.message_id), []).append(row)
    found = []
    for key in keys:
        copies = grouped.get(key)
        if copies:
            found.append(_mail(copies))
    return found


def _mail(rows: list[Any]) -> Mail:
    first = rows[0]
    return Mail(
        inbox_id=first.inbox_id,
        inbox=first.address,
        blob_id=first.message_id,
        message_id=first.msgid or blob_message_id(first.message_id),
        thread=first.public_id or "",
        copies=tuple(
            Copy(r.mailbox_id, r.name, r.uid, join_flags(r.flags, r.keywords), r.modseq)
            for r in rows
        ),
        timestamp=min(r.internaldate for r in rows),
        updated=max(r.internaldate for r in rows),
        size=first.size,
        subject=first.subject,
        from_=first.from_addr,
        to=_addresses(first.to_addrs),
        cc=_addresses(first.cc_addrs),
        bcc=_addresses(first.bcc_addrs),
        reply_to=_addresses(first.reply_to),
        preview=first.preview,
        attachments=first.attachments,
        in_reply_to=first.in_reply_to,
        references=tuple(first.refs.split()),
        sent_date=first.sent_date,
    )


def _addresses(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


async def load_threads(conn: Any, found: Sequence[tuple[int, int]]) -> list[Thread]:
    if not found:
        return []
    rows = {
        r.id: r
        for r in await conn.execute(
            select(threads, inboxes.c.address)
            .select_from(threads.join(inboxes, inboxes.c.id == threads.c.inbox_id))
            .where(threads.c.id.in_([t for t, _ in found]))
        )
    }
    return [
        Thread(r.id, r.public_id, r.inbox_id, r.address, r.created_at, stamp)
        for thread_id, stamp in found
        if (r := rows.get(thread_id)) is not None
    ]
