"""What IMAP SORT and THREAD order messages by: per entry of a mailbox, the keys ingest computed
(mime/sortkeys.py), read in one query and never from the messages' headers."""

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


class Sorting(StoreBase):
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
