"""What IMAP SORT and THREAD order messages by: per entry of a mailbox, the keys ingest computed
(mime/sortkeys.py), read in one query and never from the messages' headers. SORT has the database
order the UIDs by them; THREAD reads them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from mailgate.store.base import StoreBase
from mailgate.store.models import entries, messages
from mailgate.store.rows import UidRanges, uid_filter

# The keys, by the names callers use. RFC 5256 §3 "DATE": the sent date, or the INTERNALDATE
# where the message has no (usable) Date field; both are kept as UTC seconds.
ORDER_KEYS: dict[str, Any] = {
    "arrival": entries.c.internaldate,
    "date": func.coalesce(messages.c.sent_date, entries.c.internaldate),
    "size": messages.c.size,
    "subject": messages.c.sort_subject,
    "reply": messages.c.subject_reply,
    "from": messages.c.sort_from,
    "to": messages.c.sort_to,
    "cc": messages.c.sort_cc,
    "displayfrom": messages.c.sort_display_from,
    "displayto": messages.c.sort_display_to,
    "msgid": messages.c.msgid,
    "in_reply_to": messages.c.in_reply_to,
    "references": messages.c.refs,
}


# Keys compared as text. They are stored casemapped, so comparing their code points is the
# i;ascii-casemap collation: SQLite's default (BINARY, on UTF-8) does; PostgreSQL's "C" does.
_TEXT_KEYS = frozenset({"subject", "from", "to", "cc", "displayfrom", "displayto"})


class Sorting(StoreBase):
    async def sorted_uids(
        self, mailbox_id: int, uids: UidRanges, order: Sequence[tuple[str, bool]]
    ) -> list[int]:
        """The UIDs of the entries in `uids` ordered by the named keys, each descending where
        its flag says so, and by UID where they are all equal."""
        terms = []
        for name, descending in order:
            key = ORDER_KEYS[name]
            if name in _TEXT_KEYS and not self.db.is_sqlite:
                key = key.collate("C")
            terms.append(key.desc() if descending else key.asc())
        where, post_filter = uid_filter(uids)
        query = (
            select(entries.c.uid)
            .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(*terms, entries.c.uid)
        )
        async with self.db.read() as conn:
            found = list((await conn.execute(query)).scalars())
        return found if post_filter is None else [u for u in found if post_filter(u)]

    async def order_keys(
        self, mailbox_id: int, uids: UidRanges, keys: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """(uid, *the named keys) of the entries in `uids` (inclusive ranges), by UID."""
        where, post_filter = uid_filter(uids)
        query = (
            select(entries.c.uid, *(ORDER_KEYS[k] for k in keys))
            .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(entries.c.uid)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        if post_filter is None:
            return [tuple(r) for r in rows]
        return [tuple(r) for r in rows if post_filter(r[0])]
