"""The outbound queue: one row per recipient on another server, claimed by delivery workers
with a lease so that, on PostgreSQL, several nodes share it and each recipient is sent once."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Row

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.conversations import blob_message_id
from mailgate.store.database import Conn, Database
from mailgate.store.entries import change_flags
from mailgate.store.events import Change
from mailgate.store.ingest import Filing
from mailgate.store.models import blobs, entries, mailboxes, messages, outbound
from mailgate.store.outbox import Pending, record
from mailgate.store.records import (
    BOUNCED,
    BOUNCED_EVENT,
    DELIVERED,
    SENT,
    Parcel,
    QueuedRecipient,
)
from mailgate.store.rows import chunks, collect_garbage, lock_mailbox, now


class Queue(StoreBase):
    async def claim_outbound(self, owner: str, lease: int, limit: int) -> list[QueuedRecipient]:
        """Claim up to `limit` due recipients for `lease` seconds. On PostgreSQL rows another
        node is claiming are skipped (FOR UPDATE SKIP LOCKED), so each goes to one node; a
        node that dies leaves its claims to be taken again when the lease runs out."""
        current = now()

        async def work(conn: Conn) -> list[QueuedRecipient]:
            ids = list(
                await conn.scalars(
                    select(outbound.c.id)
                    .where(
                        outbound.c.next_attempt_at <= current,
                        or_(outbound.c.lease_until.is_(None), outbound.c.lease_until <= current),
                    )
                    .order_by(outbound.c.next_attempt_at, outbound.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            await conn.execute(
                update(outbound)
                .where(outbound.c.id.in_(ids))
                .values(lease_owner=owner, lease_until=current + lease)
            )
            rows = await conn.execute(
                select(outbound).where(outbound.c.id.in_(ids)).order_by(outbound.c.id)
            )
            return [_queued(r) for r in rows]

        return await self.db.write(work)

    async def finish_outbound(
        self,
        *,
        delivered: Sequence[int] = (),
        deferred: Sequence[tuple[int, int, str]] = (),
        failed: Sequence[int] = (),
        bounces: Sequence[Parcel] = (),
        reasons: Mapping[int, tuple[str, str]] | None = None,
        owner: str | None = None,
    ) -> None:
        """Record what a delivery attempt did, in one transaction: recipients `delivered`
        leave the queue; `deferred` ones (id, next attempt time, last reply) wait for their
        next attempt; `failed` ones leave it and their `bounces` are filed (in the senders'
        INBOXes) in the same commit, so a failure is never lost and never reported twice.

        With `owner`, a deferral applies only to rows that node still holds: one whose lease
        ran out and was taken by another node is that node's to decide now.

        The senders' inboxes are told (message.delivered, message.bounced with `reasons`:
        id -> (status, diagnostic)) in the same commit."""
        filing = await Filing.of(bounces)

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            told = await _outcomes(conn, delivered, failed, reasons or {})
            events = await _file_bounces(conn, self.db, self.inbox_quota, filing, failed)
            gone = [*delivered, *failed]
            if gone:
                blob_ids = set(
                    await conn.scalars(select(outbound.c.message_id).where(outbound.c.id.in_(gone)))
                )
                await conn.execute(delete(outbound).where(outbound.c.id.in_(gone)))
                await collect_garbage(conn, blob_ids)
            for queue_id, next_attempt, reply in deferred:
                query = update(outbound).where(outbound.c.id == queue_id)
                if owner is not None:
                    query = query.where(outbound.c.lease_owner == owner)
                await conn.execute(
                    query.values(
                        attempts=outbound.c.attempts + 1,
                        next_attempt_at=next_attempt,
                        last_reply=reply[:1000],
                        lease_owner=None,
                        lease_until=None,
                    )
                )
            return None, events + await record(conn, self.db, told)

        await self._change(work)

    async def renew_outbound(self, owner: str, queue_ids: Sequence[int], lease: int) -> int:
        """Extend `owner`'s claims on `queue_ids` to `lease` seconds from now (a delivery that
        is still running); rows it no longer holds are left alone."""
        until = now() + lease

        async def work(conn: Conn) -> int:
            count = 0
            for chunk in chunks(list(queue_ids), 500):
                result = await conn.execute(
                    update(outbound)
                    .where(outbound.c.id.in_(list(chunk)), outbound.c.lease_owner == owner)
                    .values(lease_until=until)
                )
                count += int(result.rowcount or 0)
            return count

        return await self.db.write(work)

    async def remove_outbound(
        self,
        queue_id: int,
        *,
        bounces: Sequence[Parcel] = (),
        reason: tuple[str, str] | None = None,
    ) -> None:
        """Take one recipient off the queue for good (an administrator's delete), filing its
        `bounces` in the same commit. Refused while a node holds it: that node may be getting
        its 250 right now, and the sender would be told of a failure that did not happen."""
        filing = await Filing.of(bounces)
        current = now()

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            row = (
                await conn.execute(
                    select(outbound.c.message_id, outbound.c.lease_owner, outbound.c.lease_until)
                    .where(outbound.c.id == queue_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise errors.QueueItemNotFound(f"no queued recipient {queue_id}")
            if row.lease_until is not None and row.lease_until > current:
                raise errors.CannotModify(
                    f"queued recipient {queue_id} is being delivered by {row.lease_owner} "
                    "right now; try again once that attempt is over"
                )
            told = await _outcomes(conn, (), [queue_id], {queue_id: reason} if reason else {})
            events = await _file_bounces(
                conn, self.db, self.inbox_quota, filing, [queue_id] if bounces else []
            )
            await conn.execute(delete(outbound).where(outbound.c.id == queue_id))
            await collect_garbage(conn, {row.message_id})
            return None, events + await record(conn, self.db, told)

        await self._change(work)

    async def release_leases(self, owner: str, keep: Collection[int] = ()) -> int:
        """Give back what `owner` had claimed (a node starting again after a crash), but for
        the rows in `keep` (those its deliveries hold)."""

        async def work(conn: Conn) -> int:
            query = update(outbound).where(outbound.c.lease_owner == owner)
            if keep:
                query = query.where(outbound.c.id.not_in(list(keep)))
            result = await conn.execute(query.values(lease_owner=None, lease_until=None))
            return int(result.rowcount or 0)

        return await self.db.write(work)

    async def list_outbound(self) -> list[QueuedRecipient]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(outbound).order_by(outbound.c.id))
            return [_queued(r) for r in rows]

    async def outbound_summary(self) -> tuple[int, int | None]:
        """How many recipients are queued, and when the oldest was queued (Unix time, None if
        none is): the metrics' queue depth and age, in one read."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(func.count(), func.min(outbound.c.created_at)))).one()
        return int(row[0]), None if row[1] is None else int(row[1])

    async def get_outbound(self, queue_id: int) -> QueuedRecipient:
        async with self.db.read() as conn:
            row = (await conn.execute(select(outbound).where(outbound.c.id == queue_id))).first()
        if row is None:
            raise errors.QueueItemNotFound(f"no queued recipient {queue_id}")
        return _queued(row)

    async def retry_outbound(self, queue_ids: Sequence[int] | None = None) -> int:
        """Make queued recipients due now (all of them when `queue_ids` is None)."""
        current = now()

        async def work(conn: Conn) -> int:
            query = update(outbound).values(next_attempt_at=current)
            if queue_ids is not None:
                query = query.where(outbound.c.id.in_(list(queue_ids)))
            result = await conn.execute(query)
            return int(result.rowcount or 0)

        return await self.db.write(work)

    async def blob(self, blob_id: int) -> bytes:
        async with self.db.read() as conn:
            data = await conn.scalar(select(blobs.c.data).where(blobs.c.message_id == blob_id))
        if data is None:
            raise errors.NotFound(f"no stored message {blob_id}")
        return bytes(data)


def _queued(row: Row[Any]) -> QueuedRecipient:
    return QueuedRecipient(
        id=row.id,
        blob_id=row.message_id,
        inbox_id=row.inbox_id,
        mail_from=row.mail_from,
        recipient=row.recipient,
        domain=row.domain,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
        last_reply=row.last_reply,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        smtputf8=row.smtputf8,
    )


async def _sent_copies(conn: Conn, queue_ids: Sequence[int]) -> dict[int, list[int]]:
    """The senders' Sent copies of the messages of these failed recipients (mailbox id ->
    UIDs). The Sent copy is another stored message when the sender used Bcc, so it is found by
    Message-ID."""
    failed = (
        await conn.execute(
            select(outbound.c.inbox_id, outbound.c.message_id, messages.c.msgid)
            .join(messages, messages.c.id == outbound.c.message_id)
            .where(outbound.c.id.in_(list(queue_ids)), outbound.c.inbox_id.is_not(None))
        )
    ).all()
    copies: dict[int, list[int]] = {}
    for inbox_id, blob_id, msgid in sorted(set(failed)):
        same = (
            entries.c.message_id == blob_id
            if msgid is None
            else entries.c.message_id.in_(select(messages.c.id).where(messages.c.msgid == msgid))
        )
        found = await conn.execute(
            select(entries.c.mailbox_id, entries.c.uid)
            .join(mailboxes, mailboxes.c.id == entries.c.mailbox_id)
            .where(mailboxes.c.inbox_id == inbox_id, mailboxes.c.name == SENT, same)
        )
        for mailbox_id, uid in found:
            copies.setdefault(mailbox_id, []).append(uid)
    return copies


async def _outcomes(
    conn: Conn,
    delivered: Sequence[int],
    failed: Sequence[int],
    reasons: Mapping[int, tuple[str, str]],
) -> list[Pending]:
    """The events telling senders what became of their queued recipients: one message.delivered
    and one message.bounced per sent message, each naming its recipients."""
    wanted = [*delivered, *failed]
    if not wanted:
        return []
    rows = (
        await conn.execute(
            select(
                outbound.c.id,
                outbound.c.inbox_id,
                outbound.c.message_id,
                outbound.c.recipient,
                messages.c.msgid,
            )
            .join(messages, messages.c.id == outbound.c.message_id)
            .where(outbound.c.id.in_(wanted), outbound.c.inbox_id.is_not(None))
            .order_by(outbound.c.id)
        )
    ).all()
    groups: dict[tuple[str, int, int], list[Any]] = {}
    failing = set(failed)
    for row in rows:
        kind = BOUNCED_EVENT if row.id in failing else DELIVERED
        groups.setdefault((kind, row.inbox_id, row.message_id), []).append(row)
    pending: list[Pending] = []
    for (kind, inbox_id, blob_id), group in groups.items():
        msgid = group[0].msgid
        detail: dict[str, Any]
        if kind == DELIVERED:
            detail = {"recipients": [r.recipient for r in group]}
        else:
            statuses = [reasons.get(r.id, ("5.0.0", "")) for r in group]
            permanent = any(code.startswith("5") for code, _ in statuses)
            detail = {
                "type": "Permanent" if permanent else "Transient",
                "sub_type": _bounce_sub_type(statuses[0][0]),
                "recipients": [
                    {"address": r.recipient, "status": code}
                    for r, (code, _) in zip(group, statuses, strict=True)
                ],
                "reason": "; ".join(dict.fromkeys(d for _, d in statuses if d)),
            }
        pending.append(
            Pending(
                kind,
                inbox_id=inbox_id,
                blob_id=blob_id,
                message_id=msgid or blob_message_id(blob_id),
                thread=await _sent_thread(conn, inbox_id, blob_id, msgid),
                detail=detail,
            )
        )
    return pending


def _bounce_sub_type(status: str) -> str:
    """The sub-type a bounce is reported with, from its enhanced status code (RFC 3463)."""
    return {
        "5.1.1": "NoEmail",
        "5.1.10": "NoEmail",
        "5.2.2": "MailboxFull",
        "4.2.2": "MailboxFull",
        "5.2.3": "MessageTooLarge",
        "5.3.4": "MessageTooLarge",
    }.get(status, "General")


async def _sent_thread(conn: Conn, inbox_id: int, blob_id: int, msgid: str | None) -> int | None:
    """The thread of the sender's copy of a message, if it still has one."""
    same = entries.c.message_id == blob_id
    if msgid is not None:
        same = same | entries.c.message_id.in_(
            select(messages.c.id).where(messages.c.msgid == msgid)
        )
    found = await conn.scalar(
        select(entries.c.thread_id)
        .join(mailboxes, mailboxes.c.id == entries.c.mailbox_id)
        .where(mailboxes.c.inbox_id == inbox_id, same)
        .limit(1)
    )
    return int(found) if found is not None else None


async def _file_bounces(
    conn: Conn, db: Database, default_quota: int, filing: Filing, queue_ids: Sequence[int]
) -> list[Change]:
    """File the bounces and mark BOUNCED on the Sent copies they are about, locking every
    mailbox in id order first, as every other writer does, so two never wait on each other."""
    sent = await _sent_copies(conn, queue_ids) if queue_ids else {}
    for mailbox_id in sorted(set(filing.plan) | set(sent)):
        await lock_mailbox(conn, mailbox_id)
    events: list[Change] = []
    if filing.parcels:
        _, events = await filing.file(conn, db, default_quota)
    for mailbox_id, uids in sorted(sent.items()):
        _, changed = await change_flags(
            conn, mailbox_id, [(uid, uid) for uid in uids], "+", 0, {BOUNCED}
        )
        events += changed
    return events
