"""Storage quota (RFC 9208's STORAGE resource): one limit per inbox, over all its mailboxes.

An inbox's usage is the sum of its mailboxes' `size` counters, which the transactions that add
and remove entries keep under the mailbox lock they hold anyway: a handful of rows to add up,
whatever the number of messages. A message in two mailboxes counts twice, as its RFC822.SIZE
does in each (RFC 9208 §5.1: the sum of the messages' RFC822.SIZE).

The check runs inside the transaction that stores, after the mailboxes are locked. On SQLite
writers take turns, so it is exact; on PostgreSQL two transactions storing into different
mailboxes of one inbox at the same moment may both pass it, so the limit can be overrun by what
is being stored concurrently (Dovecot's quota has the same slack).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import inboxes, mailboxes
from mailgate.store.names import address as valid_address
from mailgate.store.records import Quota, QuotaRule


class Quotas(StoreBase):
    async def quota(self, inbox_id: int) -> Quota:
        """The inbox's storage usage and limit; InboxNotFound if it is gone."""
        async with self.db.read() as conn:
            found = await quotas(conn, [inbox_id], self.inbox_quota)
        if inbox_id not in found:
            raise errors.InboxNotFound("the inbox no longer exists")
        return found[inbox_id][1]

    async def set_inbox_quota(self, address: str, limit: int | None) -> Quota:
        """Give the inbox its own limit in bytes (0: none), or None: `[limits] inbox_quota`."""
        address = valid_address(address)
        if limit is not None and limit < 0:
            raise errors.InvalidName("a quota is 0 (none) or a number of bytes")

        async def work(conn: Conn) -> Quota:
            inbox_id = await conn.scalar(
                update(inboxes)
                .where(inboxes.c.address == address)
                .values(quota=limit)
                .returning(inboxes.c.id)
            )
            if inbox_id is None:
                raise errors.InboxNotFound(f"no inbox {address}")
            return (await quotas(conn, [inbox_id], self.inbox_quota))[inbox_id][1]

        return await self.db.write(work)


async def quotas(
    conn: Conn, inbox_ids: Iterable[int], default: int
) -> dict[int, tuple[str, Quota]]:
    """Per inbox: its address and its Quota (`default` where the inbox has no limit of its own)."""
    wanted = sorted(set(inbox_ids))
    if not wanted:
        return {}
    used = (
        select(mailboxes.c.inbox_id, func.sum(mailboxes.c.size).label("used"))
        .where(mailboxes.c.inbox_id.in_(wanted))
        .group_by(mailboxes.c.inbox_id)
        .subquery()
    )
    rows = await conn.execute(
        select(inboxes.c.id, inboxes.c.address, inboxes.c.quota, used.c.used)
        .select_from(inboxes.outerjoin(used, used.c.inbox_id == inboxes.c.id))
        .where(inboxes.c.id.in_(wanted))
    )
    return {
        row.id: (
            row.address,
            Quota(int(row.used or 0), default if row.quota is None else int(row.quota)),
        )
        for row in rows
    }


async def check_room(conn: Conn, adding: dict[int, tuple[int, QuotaRule]], default: int) -> None:
    """OverQuota, naming the inboxes, unless each inbox in `adding` (inbox id -> bytes to add
    and the strictest rule among its targets) takes what is to be added."""
    checked = {i: v for i, v in adding.items() if v[1] is not QuotaRule.EXEMPT}
    if not checked:
        return
    full = []
    for inbox_id, (address, quota) in sorted((await quotas(conn, checked, default)).items()):
        size, rule = checked[inbox_id]
        if not quota.limit:
            continue
        if quota.full or (rule is QuotaRule.FIT and quota.used + size > quota.limit):
            full.append(address)
    if full:
        raise errors.OverQuota(full)


def stricter(a: QuotaRule, b: QuotaRule) -> QuotaRule:
    order = (QuotaRule.EXEMPT, QuotaRule.NOT_FULL, QuotaRule.FIT)
    return max(a, b, key=order.index)
