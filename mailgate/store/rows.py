"""SQL helpers the store's aggregates share: locking and bumping mailboxes, UID ranges, rows
into records, collecting unreferenced messages. Every function runs inside a transaction the
caller holds (`conn`), and follows the lock order of `store/api.py`."""

from __future__ import annotations

import bisect
import datetime
import functools
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from mailgate.store import errors
from mailgate.store.database import Conn
from mailgate.store.models import (
    blobs,
    body_texts,
    counters,
    entries,
    expunged,
    header_texts,
    inboxes,
    mailboxes,
    messages,
    outbound,
    pods,
    search_texts,
    subscriptions,
)
from mailgate.store.records import Inbox, Mailbox, Pod

MAX_UID = 2**32 - 1
MAX_KEYWORDS = 200
# SQL expressions stay small: beyond this many ranges we select the span and filter in Python.
_MAX_RANGE_TERMS = 64

UidRanges = Sequence[tuple[int, int]]


def now() -> int:
    return int(time.time())


def tz_minutes(when: datetime.datetime) -> int:
    offset = when.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def to_datetime(epoch: int, minutes: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, _zone(minutes))


@functools.lru_cache(maxsize=256)
def _zone(minutes: int) -> datetime.timezone:
    # A FETCH or SEARCH converts every row's dates; most share a handful of offsets.
    return datetime.timezone(datetime.timedelta(minutes=minutes))


def chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def uid_filter(uids: UidRanges) -> tuple[ColumnElement[bool], Any]:
    """A WHERE clause for inclusive UID ranges, plus a Python filter when there are many."""
    # RFC 3501 §9: a range "5:3" means 3:5. No UID exceeds MAX_UID, so larger bounds are clamped
    # (SQLite cannot even bind an integer beyond 64 bits).
    ranges = sorted((min(lo, hi, MAX_UID + 1), min(max(lo, hi), MAX_UID + 1)) for lo, hi in uids)
    if not ranges:
        return entries.c.uid < 0, None
    if len(ranges) <= _MAX_RANGE_TERMS:
        terms = [
            entries.c.uid == lo if lo == hi else entries.c.uid.between(lo, hi) for lo, hi in ranges
        ]
        return (terms[0] if len(terms) == 1 else or_(*terms)), None
    lows = [lo for lo, _ in ranges]
    highs = [hi for _, hi in ranges]

    def keep(uid: int) -> bool:
        i = bisect.bisect_right(lows, uid) - 1
        return i >= 0 and uid <= highs[i]

    return entries.c.uid.between(lows[0], max(highs)), keep


# -------------------------------------------------------------------- pods and inboxes


async def pod_row(conn: Conn, name: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(pods).where(pods.c.name == name)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def insert_pod(conn: Conn, name: str, client_id: str | None = None) -> Pod:
    created = now()
    pod_id = (
        await conn.execute(
            insert(pods)
            .values(name=name, created_at=created, updated_at=created, client_id=client_id)
            .returning(pods.c.id)
        )
    ).scalar_one()
    return Pod(pod_id, name, created, client_id, created)


def pod_record(row: Row[Any]) -> Pod:
    return Pod(row.id, row.name, row.created_at, row.client_id, row.updated_at or row.created_at)


def inbox_select() -> Any:
    return select(
        inboxes.c.id,
        inboxes.c.pod_id,
        pods.c.name.label("pod"),
        inboxes.c.address,
        inboxes.c.created_at,
        inboxes.c.display_name,
        inboxes.c.client_id,
        inboxes.c.metadata,
        inboxes.c.updated_at,
    ).select_from(inboxes.join(pods, pods.c.id == inboxes.c.pod_id))


def inbox_record(row: Row[Any]) -> Inbox:
    return Inbox(
        row.id,
        row.pod_id,
        row.pod,
        row.address,
        row.created_at,
        row.display_name,
        row.client_id,
        row.metadata,
        row.updated_at or row.created_at,
    )


async def lock_inbox_shared(conn: Conn, inbox_id: int) -> None:
    """Make sure the inbox exists and stays until commit (delete_inbox locks it FOR UPDATE)."""
    found = await conn.scalar(
        select(inboxes.c.id)
        .where(inboxes.c.id == inbox_id)
        .with_for_update(read=True, key_share=True)
    )
    if found is None:
        raise errors.InboxNotFound("the inbox no longer exists")


# -------------------------------------------------------------------- mailboxes


def mailbox_record(row: Row[Any]) -> Mailbox:
    return Mailbox(
        id=row.id,
        inbox_id=row.inbox_id,
        name=row.name,
        special_use=row.special_use,
        uidvalidity=row.uidvalidity,
        uidnext=row.uidnext,
        highestmodseq=row.highestmodseq,
        keywords=keywords(row.keywords),
        recent_uid=row.recent_uid,
    )


def keywords(text_value: str) -> tuple[str, ...]:
    return tuple(text_value.split()) if text_value else ()


async def mailbox_row(conn: Conn, inbox_id: int, name: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(mailboxes).where(mailboxes.c.inbox_id == inbox_id, mailboxes.c.name == name)
        )
    ).first()


async def mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox:
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))).first()
    if row is None:
        raise errors.MailboxNotFound("the mailbox no longer exists")
    return mailbox_record(row)


async def lock_mailbox(conn: Conn, mailbox_id: int) -> Mailbox:
    """Lock the mailbox row for the rest of the transaction (SQLite: the write lock already)."""
    row = (
        await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id).with_for_update())
    ).first()
    if row is None:
        raise errors.MailboxNotFound("the mailbox no longer exists")
    return mailbox_record(row)


async def bump_mailbox(
    conn: Conn,
    box: Mailbox,
    *,
    modseq: int,
    uidnext: int | None = None,
    keywords: str = "",
    added_size: int = 0,
) -> None:
    values: dict[str, Any] = {"highestmodseq": modseq}
    if uidnext is not None:
        values["uidnext"] = uidnext
    if added_size:
        values["size"] = mailboxes.c.size + added_size
    if keywords:
        known = set(box.keywords)
        fresh = set(keywords.split()) - known
        if fresh:
            if len(known) + len(fresh) > MAX_KEYWORDS:
                raise errors.LimitExceeded(
                    f"a mailbox can hold at most {MAX_KEYWORDS} different keywords"
                )
            values["keywords"] = " ".join(sorted(known | fresh))
    await conn.execute(update(mailboxes).where(mailboxes.c.id == box.id).values(**values))


async def insert_mailbox(
    conn: Conn, inbox_id: int, name: str, special_use: str | None, *, subscribed: bool = True
) -> Mailbox:
    created = now()
    # RFC 3501 §2.3.1.1: a re-created mailbox must never repeat an earlier UIDVALIDITY. Time-based
    # (so a database rebuilt from scratch does not repeat one either), and strictly rising even
    # within one second. One statement: atomic on PostgreSQL, the row lock held until commit.
    following = counters.c.value + 1
    uidvalidity = (
        await conn.execute(
            update(counters)
            .where(counters.c.name == "uidvalidity")
            .values(value=case((following > created, following), else_=created))
            .returning(counters.c.value)
        )
    ).scalar_one()
    if uidvalidity > MAX_UID:
        raise errors.LimitExceeded("UIDVALIDITY values are used up")
    row = (
        await conn.execute(
            insert(mailboxes)
            .values(
                inbox_id=inbox_id,
                name=name,
                special_use=special_use,
                uidvalidity=uidvalidity,
                uidnext=1,
                highestmodseq=1,
                recent_uid=1,
                keywords="",
                created_at=created,
            )
            .returning(*mailboxes.c)
        )
    ).one()
    if subscribed:
        await conn.execute(insert(subscriptions).values(inbox_id=inbox_id, name=name))
    return mailbox_record(row)


# -------------------------------------------------------------------- entries and messages


async def remove_entries(conn: Conn, mailbox_id: int, uids: list[int], modseq: int) -> None:
    """Expunge entries of a locked mailbox, recording them and taking their size off its own."""
    freed = 0
    for chunk in chunks(uids, 500):
        freed += int(
            await conn.scalar(
                select(func.coalesce(func.sum(messages.c.size), 0))
                .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
                .where(entries.c.mailbox_id == mailbox_id, entries.c.uid.in_(chunk))
            )
            or 0
        )
        await conn.execute(
            delete(entries).where(entries.c.mailbox_id == mailbox_id, entries.c.uid.in_(chunk))
        )
    removed_at = now()
    await conn.execute(
        insert(expunged),
        [
            {"mailbox_id": mailbox_id, "uid": u, "modseq": modseq, "expunged_at": removed_at}
            for u in uids
        ],
    )
    if freed:
        await conn.execute(
            update(mailboxes)
            .where(mailboxes.c.id == mailbox_id)
            .values(size=mailboxes.c.size - freed)
        )


async def collect_garbage(conn: Conn, blob_ids: set[int]) -> None:
    """Delete messages (and their blobs) that no entry or queued recipient refers to any more."""
    for chunk in chunks(sorted(blob_ids), 500):
        # Wait for transactions reusing these messages (see ingest.insert_message); READ
        # COMMITTED then lets the next statement see the entries they committed. Decide once,
        # delete by id: deciding per statement could drop a blob and keep its message.
        await conn.execute(
            select(messages.c.id)
            .where(messages.c.id.in_(chunk))
            .order_by(messages.c.id)
            .with_for_update()
        )
        orphans = list(
            await conn.scalars(
                select(messages.c.id).where(
                    messages.c.id.in_(chunk),
                    ~exists().where(entries.c.message_id == messages.c.id),
                    # A recipient still queued for another server needs the message too.
                    ~exists().where(outbound.c.message_id == messages.c.id),
                )
            )
        )
        if orphans:
            await conn.execute(delete(blobs).where(blobs.c.message_id.in_(orphans)))
            for texts in (search_texts, header_texts, body_texts):
                await conn.execute(delete(texts).where(texts.c.message_id.in_(orphans)))
            await conn.execute(delete(messages).where(messages.c.id.in_(orphans)))
