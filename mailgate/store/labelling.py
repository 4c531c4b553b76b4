"""A message's labels, as the HTTP API shows them, from its copies (the mailboxes of one inbox
that hold it, and each copy's flags) — and what a change did to them: the inbox events
label.added and label.removed, written in the change's own transaction.

    label        is, over IMAP
    received     a copy in INBOX
    sent         a copy in Sent
    draft        a copy in Drafts
    spam         a copy in Spam
    trash        a copy in Trash
    unread       a copy not \\Seen (not in Sent, Drafts)
    read         no such copy
    starred      \\Flagged
    bounced      $Bounced (a sent message some server refused for good)
    <folder>     a copy in a folder of that name (one made over IMAP)
    <keyword>    the IMAP keyword

A change that may relabel messages (flags stored, copies made, moved or expunged) takes a
`LabelWatch` of the messages it touches before it writes, and `record`s the difference after:
two reads of those messages' copies, so what it records is exact whichever copies the change
touched. A message that leaves the inbox altogether is deleted, not relabelled: it records
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from mailgate.store.base import StoreBase
from mailgate.store.conversations import blob_message_id
from mailgate.store.database import Conn
from mailgate.store.models import entries, label_events, mailboxes, messages
from mailgate.store.records import (
    BOUNCED,
    DRAFTS,
    FLAGGED,
    INBOX,
    SEEN,
    SENT,
    SPAM,
    TRASH,
    join_flags,
)
from mailgate.store.rows import chunks, now

RECEIVED, SENT_LABEL, DRAFT, SPAM_LABEL, TRASH_LABEL = "received", "sent", "draft", "spam", "trash"
UNREAD, READ, STARRED, BOUNCED_LABEL = "unread", "read", "starred", "bounced"
ADDED, REMOVED = "label.added", "label.removed"

# The label of each built-in mailbox.
FOLDER_LABELS = {
    INBOX: RECEIVED,
    SENT: SENT_LABEL,
    DRAFTS: DRAFT,
    SPAM: SPAM_LABEL,
    TRASH: TRASH_LABEL,
}
# Copies in these never make a message unread: the inbox wrote them.
OWN = (SENT, DRAFTS)

Copy = tuple[str, Sequence[str]]  # (mailbox name, flags)


def labels_of_copies(copies: Iterable[Copy]) -> list[str]:
    """A message's labels: its folders' (built-in ones first, in FOLDER_LABELS order), then
    read or unread, starred, bounced, and its keywords, sorted."""
    folders: set[str] = set()
    unread = False
    starred = False
    keywords: set[str] = set()
    for mailbox, flag_list in copies:
        folders.add(mailbox)
        flags = set(flag_list)
        unread |= SEEN not in flags and mailbox not in OWN
        starred |= FLAGGED in flags
        keywords.update(f for f in flags if not f.startswith("\\"))
    found = [label for mailbox, label in FOLDER_LABELS.items() if mailbox in folders]
    found += sorted(folders - FOLDER_LABELS.keys())
    found.append(UNREAD if unread else READ)
    if starred:
        found.append(STARRED)
    if any(k.casefold() == BOUNCED.casefold() for k in keywords):
        found.append(BOUNCED_LABEL)
        keywords = {k for k in keywords if k.casefold() != BOUNCED.casefold()}
    known = {label.casefold() for label in found}
    found += sorted(k for k in keywords if k.casefold() not in known)
    return found


class LabelWatch:
    """The labels of some messages of one inbox before a change."""

    __slots__ = ("_before", "_blobs", "_inbox_id")

    def __init__(self, inbox_id: int, blobs: set[int], before: dict[int, tuple[str, list[str]]]):
        self._inbox_id = inbox_id
        self._blobs = blobs
        self._before = before

    @classmethod
    async def of(cls, conn: Conn, inbox_id: int, blobs: Iterable[int]) -> LabelWatch:
        wanted = set(blobs)
        return cls(inbox_id, wanted, await _labels(conn, inbox_id, wanted))

    async def record(self, conn: Conn) -> None:
        """Write the labels each message gained and lost since the watch began."""
        if not self._blobs:
            return
        after = await _labels(conn, self._inbox_id, self._blobs)
        created = now()
        rows = []
        for blob_id, (message_id, old) in sorted(self._before.items()):
            if blob_id not in after:
                continue  # gone from the inbox: deleted, not relabelled
            new = after[blob_id][1]
            old_folded = {label.casefold() for label in old}
            new_folded = {label.casefold() for label in new}
            changes = [(ADDED, label) for label in new if label.casefold() not in old_folded]
            changes += [(REMOVED, label) for label in old if label.casefold() not in new_folded]
            rows += [
                {
                    "inbox_id": self._inbox_id,
                    "message_id": message_id,
                    "event_type": kind,
                    "label": label[:255],
                    "created_at": created,
                }
                for kind, label in changes
            ]
        if rows:
            await conn.execute(insert(label_events), rows)


async def _labels(conn: Conn, inbox_id: int, blobs: set[int]) -> dict[int, tuple[str, list[str]]]:
    """Blob id -> (the API's message_id, its labels) for those of `blobs` in the inbox."""
    copies: dict[int, list[Copy]] = {}
    ids: dict[int, str] = {}
    for chunk in chunks(sorted(blobs), 500):
        rows = await conn.execute(
            select(
                entries.c.message_id,
                mailboxes.c.name,
                entries.c.flags,
                entries.c.keywords,
                messages.c.msgid,
            )
            .join(mailboxes, mailboxes.c.id == entries.c.mailbox_id)
            .join(messages, messages.c.id == entries.c.message_id)
            .where(mailboxes.c.inbox_id == inbox_id, entries.c.message_id.in_(list(chunk)))
        )
        for row in rows:
            copies.setdefault(row.message_id, []).append(
                (row.name, join_flags(row.flags, row.keywords))
            )
            ids[row.message_id] = row.msgid or blob_message_id(row.message_id)
    return {blob: (ids[blob], labels_of_copies(found)) for blob, found in copies.items()}


@dataclass(frozen=True, slots=True)
class LabelEvent:
    id: int  # orders an inbox's events
    inbox_id: int
    message_id: str
    event_type: str  # label.added or label.removed
    label: str
    created_at: int


class Labelling(StoreBase):
    async def label_events(
        self, inbox_id: int, *, after: int | None, limit: int, ascending: bool
    ) -> list[LabelEvent]:
        """An inbox's label events, newest first (oldest with `ascending`), those past the
        event id `after` only."""
        query = select(label_events).where(label_events.c.inbox_id == inbox_id)
        if after is not None:
            past = label_events.c.id > after if ascending else label_events.c.id < after
            query = query.where(past)
        order = label_events.c.id.asc() if ascending else label_events.c.id.desc()
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(order).limit(limit))
            return [
                LabelEvent(r.id, r.inbox_id, r.message_id, r.event_type, r.label, int(r.created_at))
                for r in rows
            ]

    async def prune_label_events(self, before: int) -> int:
        """Forget label events recorded before `before` (Unix seconds); how many."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(
                delete(label_events).where(label_events.c.created_at < before)
            )
            return int(result.rowcount or 0)

        return await self.db.write(work)
