"""Messages coming in: indexed once outside the transaction (CPU work), then filed inside it as
a blob, its index, an entry per target mailbox and a queue row per remote recipient."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite

from mailgate.mime.addresses import domain_of
from mailgate.mime.apiview import Summary, attachments_to_json, search_text, summarize
from mailgate.mime.headers import msg_ids, normalize_crlf
from mailgate.mime.imapsearch import SearchTexts, index_texts
from mailgate.mime.imapview import MessageIndex, index_message
from mailgate.mime.sortkeys import sort_keys
from mailgate.store import errors
from mailgate.store.conversations import blob_message_id
from mailgate.store.database import Conn, Database
from mailgate.store.events import Change, MessagesAdded
from mailgate.store.models import (
    FIELD_COLUMNS,
    blobs,
    body_texts,
    entries,
    header_texts,
    messages,
    outbound,
    search_texts,
)
from mailgate.store.names import checked_flags
from mailgate.store.outbox import Pending, record
from mailgate.store.quota import check_room, stricter
from mailgate.store.records import Notice, Parcel, Placed, QuotaRule, split_flags
from mailgate.store.rows import MAX_UID, bump_mailbox, lock_mailbox, now, tz_minutes
from mailgate.store.threads import thread_for

# Messages bigger than this are hashed and indexed in a worker thread, off the event loop.
# Reading an HTML body as text for search costs about 1 ms per 8 KiB of HTML on the loop.
_THREAD_THRESHOLD = 8 * 1024
# RFC 5322 §2.1.1: no line, so no msg-id, is longer. Longer ones are junk, and would not fit
# PostgreSQL's index on Message-IDs.
MAX_MSG_ID = 998


class Prepared:
    """A message ready to store: CRLF-normalised bytes, their hash, their IMAP index, what the
    HTTP API lists about them, what its search matches, what IMAP SORT and THREAD compare and
    what IMAP SEARCH matches."""

    __slots__ = ("digest", "index", "raw", "search", "sort", "summary", "texts")

    def __init__(self, raw: bytes) -> None:
        self.raw = normalize_crlf(raw)
        self.digest = hashlib.sha256(self.raw).hexdigest()
        self.index: MessageIndex = index_message(self.raw)
        summary = summarize(self.raw)
        self.summary = summary_columns(summary)
        self.search = search_values(self.raw, summary)
        self.sort = sort_values(self.index.header)
        self.texts = index_texts(self.index.header, self.raw)


async def prepare(raw: bytes) -> Prepared:
    """Index a message, in a worker thread when it is big enough to stall the event loop."""
    if len(raw) > _THREAD_THRESHOLD:
        return await asyncio.to_thread(Prepared, raw)
    return Prepared(raw)


class Filing:
    """Parcels made ready outside the transaction, filed inside it."""

    def __init__(self, parcels: Sequence[Parcel], prepared: dict[int, Prepared]) -> None:
        self.parcels = parcels
        self.prepared = prepared
        # mailbox id -> {parcel index: flags}, merging a parcel's duplicate targets.
        self.plan: dict[int, dict[int, set[str]]] = {}
        # (parcel index, mailbox id) -> the events reporting its arrival there.
        self.notices: dict[tuple[int, int], list[Notice]] = {}
        # mailbox id -> the strictest quota rule of the targets filed there.
        self.rules: dict[int, QuotaRule] = {}
        for i, parcel in enumerate(parcels):
            for target in parcel.targets:
                flags = checked_flags(target.flags)
                self.plan.setdefault(target.mailbox_id, {}).setdefault(i, set()).update(flags)
                rule = self.rules.get(target.mailbox_id, QuotaRule.EXEMPT)
                self.rules[target.mailbox_id] = stricter(rule, target.quota)
                if target.notices:
                    self.notices.setdefault((i, target.mailbox_id), []).extend(target.notices)
        arrival = datetime.datetime.now(datetime.UTC)
        self.dates = [p.internaldate or arrival for p in parcels]

    @classmethod
    async def of(cls, parcels: Sequence[Parcel]) -> Filing:
        # A parcel going nowhere would leave a message nothing refers to: it is not stored.
        wanted = [i for i, p in enumerate(parcels) if p.targets or p.outbound]
        return cls(parcels, {i: await prepare(parcels[i].raw) for i in wanted})

    async def file(
        self, conn: Conn, db: Database, default_quota: int
    ) -> tuple[dict[tuple[int, int], Placed], list[Change]]:
        """File the parcels; OverQuota, and nothing filed, when an inbox has no room for them
        (`default_quota`: the limit of inboxes without one of their own)."""
        # Mailboxes first, then messages: the lock order expunge and delete use too.
        boxes = {m: await lock_mailbox(conn, m) for m in sorted(self.plan)}
        adding: dict[int, tuple[int, QuotaRule]] = {}
        for mailbox_id, box in boxes.items():
            size, rule = adding.get(box.inbox_id, (0, QuotaRule.EXEMPT))
            size += sum(self.prepared[i].index.size for i in self.plan[mailbox_id])
            adding[box.inbox_id] = (size, stricter(rule, self.rules[mailbox_id]))
        await check_room(conn, adding, default_quota)
        blob_ids = {i: await insert_message(conn, db, p) for i, p in sorted(self.prepared.items())}
        placed: dict[tuple[int, int], Placed] = {}
        events: list[Change] = []
        reports: list[Pending] = []
        # One thread per message and inbox, whichever of its mailboxes the message goes to.
        thread_of: dict[tuple[int, int], int] = {}
        saved_at = now()
        for mailbox_id, box in boxes.items():
            modseq, uid = box.highestmodseq + 1, box.uidnext
            all_keywords: set[str] = set()
            for i, flags in sorted(self.plan[mailbox_id].items()):
                if uid > MAX_UID:
                    raise errors.LimitExceeded("this mailbox has used up its UIDs")
                bits, keywords = split_flags(tuple(flags))
                all_keywords.update(keywords.split())
                arrival = int(self.dates[i].timestamp())
                if (i, box.inbox_id) not in thread_of:
                    index = self.prepared[i].index
                    thread_of[(i, box.inbox_id)] = await thread_for(
                        conn, box.inbox_id, index, *thread_ids(index), arrival
                    )
                await conn.execute(
                    insert(entries).values(
                        mailbox_id=mailbox_id,
                        uid=uid,
                        message_id=blob_ids[i],
                        flags=bits,
                        keywords=keywords,
                        modseq=modseq,
                        internaldate=arrival,
                        internaldate_tz=tz_minutes(self.dates[i]),
                        thread_id=thread_of[(i, box.inbox_id)],
                        saved_at=saved_at,
                    )
                )
                placed[(i, mailbox_id)] = Placed(mailbox_id, box.uidvalidity, uid)
                for notice in self.notices.get((i, mailbox_id), ()):
                    msgid = thread_ids(self.prepared[i].index)[0]
                    reports.append(
                        Pending(
                            notice.event_type,
                            inbox_id=box.inbox_id,
                            blob_id=blob_ids[i],
                            message_id=msgid or blob_message_id(blob_ids[i]),
                            thread=thread_of[(i, box.inbox_id)],
                            detail={"recipients": list(notice.recipients)},
                        )
                    )
                uid += 1
            await bump_mailbox(
                conn,
                box,
                uidnext=uid,
                modseq=modseq,
                keywords=" ".join(sorted(all_keywords)),
                added_size=sum(self.prepared[i].index.size for i in self.plan[mailbox_id]),
            )
            events.append(MessagesAdded(box.inbox_id, mailbox_id, modseq))
        queued_at = now()
        rows = [
            {
                "message_id": blob_ids[i],
                "inbox_id": out.inbox_id,
                "mail_from": out.mail_from,
                "recipient": out.recipient,
                "domain": domain_of(out.recipient),
                "created_at": queued_at,
                "next_attempt_at": queued_at,
                "attempts": 0,
                "last_reply": "",
                "smtputf8": out.smtputf8,
            }
            for i, parcel in enumerate(self.parcels)
            for out in parcel.outbound
        ]
        if rows:
            await conn.execute(insert(outbound), rows)
        # Last: the outbox's ordering lock is held from here to the commit (store/outbox.py).
        events += await record(conn, db, reports)
        return placed, events

    def placed_lists(self, placed: dict[tuple[int, int], Placed]) -> list[list[Placed]]:
        return [
            [placed[(i, t.mailbox_id)] for t in parcel.targets]
            for i, parcel in enumerate(self.parcels)
        ]


async def insert_message(conn: Conn, db: Database, prepared: Prepared) -> int:
    """The message's id, storing its blob and index unless identical bytes are stored already."""
    # FOR SHARE: a concurrent collect_garbage (FOR UPDATE) either finishes first, and we find
    # nothing and store the bytes again, or waits until our entry referring to it is committed.
    existing = await conn.scalar(
        select(messages.c.id).where(messages.c.hash == prepared.digest).with_for_update(read=True)
    )
    if existing is not None:
        return int(existing)
    index = prepared.index
    values = {
        "hash": prepared.digest,
        "size": index.size,
        "header": index.header,
        "envelope": index.envelope,
        "body": index.body,
        "bodystructure": index.bodystructure,
        "parts": index.parts,
        "sent_date": int(index.sent_date.timestamp()) if index.sent_date else None,
        "sent_date_tz": tz_minutes(index.sent_date) if index.sent_date else 0,
        **dict(zip(("msgid", "in_reply_to", "refs"), thread_ids(index), strict=True)),
        **prepared.summary,
        **prepared.sort,
        "created_at": now(),
    }
    dialect_insert = sqlite.insert if db.is_sqlite else postgresql.insert
    blob_id = await conn.scalar(
        dialect_insert(messages)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["hash"])
        .returning(messages.c.id)
    )
    if blob_id is None:
        # A concurrent transaction stored the same bytes first (and has committed: ON CONFLICT
        # waited for it).
        return int(
            await conn.scalar(
                select(messages.c.id)
                .where(messages.c.hash == prepared.digest)
                .with_for_update(read=True)
            )
        )
    await conn.execute(insert(blobs).values(message_id=blob_id, data=prepared.raw))
    await conn.execute(insert(search_texts).values(message_id=blob_id, **prepared.search))
    headers, body = text_values(prepared.texts)
    await conn.execute(insert(header_texts).values(message_id=blob_id, **headers))
    await conn.execute(insert(body_texts).values(message_id=blob_id, **body))
    return int(blob_id)


def thread_ids(index: MessageIndex) -> tuple[str | None, str | None, str]:
    """What threads are built from: the Message-ID, In-Reply-To and References (space-separated)
    of a message, each msg-id as `<id@host>`; junk is left out."""
    found = msg_ids(index.message_id.encode()) if index.message_id else []
    msgid = found[0] if found and len(found[0]) <= MAX_MSG_ID else None
    in_reply_to = index.in_reply_to
    if in_reply_to is not None and len(in_reply_to) > MAX_MSG_ID:
        in_reply_to = None
    refs = " ".join(r for r in index.references if len(r) <= MAX_MSG_ID)
    return msgid, in_reply_to, refs


def summary_values(raw: bytes) -> dict[str, str | None]:
    """The summary columns of a (CRLF-normalised) message (mime/apiview.py's summary)."""
    return summary_columns(summarize(raw))


def summary_columns(summary: Summary) -> dict[str, str | None]:
    return {
        "subject": summary.subject,
        "from_addr": summary.from_,
        "to_addrs": json.dumps(summary.to),
        "cc_addrs": json.dumps(summary.cc),
        "bcc_addrs": json.dumps(summary.bcc),
        "reply_to": json.dumps(summary.reply_to),
        "preview": summary.preview,
        "attachments": attachments_to_json(summary.attachments),
    }


def sort_values(header: bytes) -> dict[str, str | bool]:
    """The sort key columns of a message's header section (mime/sortkeys.py)."""
    keys = sort_keys(header)
    return {
        "sort_subject": keys.subject,
        "subject_reply": keys.reply,
        "sort_from": keys.from_,
        "sort_to": keys.to,
        "sort_cc": keys.cc,
        "sort_display_from": keys.display_from,
        "sort_display_to": keys.display_to,
    }


def search_values(raw: bytes, summary: Summary) -> dict[str, str]:
    """The search_texts columns of a (CRLF-normalised) message and its summary: what search
    matches (store/search.py), case-folded where it matches substrings."""
    return {
        "sender": (summary.from_ or "").casefold(),
        "recipients": "\n".join((*summary.to, *summary.cc, *summary.bcc)).casefold(),
        "subject": (summary.subject or "").casefold(),
        "body": search_text(raw),
    }


def text_values(texts: SearchTexts) -> tuple[dict[str, str], dict[str, str | bool]]:
    """The header_texts and body_texts columns of a message's IMAP SEARCH texts."""
    headers = {FIELD_COLUMNS[f]: v for f, v in texts.fields.items()}
    headers |= {"headers": texts.headers, "header": texts.header}
    return headers, {"body": texts.body, "whole": texts.whole}
