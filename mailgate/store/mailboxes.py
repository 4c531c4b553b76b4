"""Mailboxes: an inbox's folders, their hierarchy and subscriptions, their counters (STATUS) and
the UID list a SELECT starts from."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.events import (
    Change,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    SubscriptionChanged,
)
from mailgate.store.models import entries, expunged, inboxes, mailboxes, messages, subscriptions
from mailgate.store.names import (
    existing_mailbox_name,
    no_mailbox,
    parents,
    storable,
    valid_mailbox_name,
)
from mailgate.store.records import (
    BUILTIN_MAILBOXES,
    DELETED,
    FLAG_BITS,
    HIERARCHY_DELIMITER,
    INBOX,
    SEEN,
    SENT,
    Mailbox,
    MailboxStatus,
    Snapshot,
)
from mailgate.store.rows import (
    collect_garbage,
    insert_mailbox,
    lock_inbox_shared,
    lock_mailbox,
    mailbox_by_id,
    mailbox_record,
    mailbox_row,
)


class Mailboxes(StoreBase):
    async def list_mailboxes(self, inbox_id: int) -> list[Mailbox]:
        async def read(conn: Conn) -> list[Mailbox]:
            rows = await conn.execute(
                select(mailboxes).where(mailboxes.c.inbox_id == inbox_id).order_by(mailboxes.c.name)
            )
            return [mailbox_record(r) for r in rows]

        return await self.db.run_read(read)

    async def get_mailbox(self, inbox_id: int, name: str) -> Mailbox:
        name = existing_mailbox_name(name)

        async def read(conn: Conn) -> Mailbox | None:
            row = await mailbox_row(conn, inbox_id, name)
            return None if row is None else mailbox_record(row)

        box = await self.db.run_read(read)
        if box is None:
            raise no_mailbox(name)
        return box

    async def delivery_mailboxes(
        self, sender_inbox_id: int, recipients: Iterable[str]
    ) -> tuple[int | None, dict[str, int]]:
        """In one query: the sender's Sent mailbox (None if the inbox is gone) and the INBOX
        mailbox of every hosted recipient among `recipients` (normalised), by address."""
        wanted = sorted(a for a in set(recipients) if storable(a))
        query = (
            select(inboxes.c.address, mailboxes.c.name, mailboxes.c.id)
            .select_from(inboxes.join(mailboxes, mailboxes.c.inbox_id == inboxes.c.id))
            .where(
                or_(
                    (inboxes.c.id == sender_inbox_id) & (mailboxes.c.name == SENT),
                    inboxes.c.address.in_(wanted) & (mailboxes.c.name == INBOX),
                )
            )
        )
        sent: int | None = None
        found: dict[str, int] = {}
        async with self.db.read() as conn:
            for address, name, mailbox_id in await conn.execute(query):
                if name == SENT:
                    sent = mailbox_id
                else:
                    found[address] = mailbox_id
        return sent, found

    async def create_mailbox(self, inbox_id: int, name: str) -> Mailbox:
        """Create `name`, and any missing parents in the hierarchy (RFC 3501 §6.3.3). They are
        not subscribed: CREATE does not subscribe (as in Dovecot and Cyrus; a client that
        wants it sends SUBSCRIBE, as Thunderbird does). The built-in mailboxes are."""
        name = valid_mailbox_name(name)

        async def work(conn: Conn) -> tuple[Mailbox, list[Change]]:
            await lock_inbox_shared(conn, inbox_id)
            if await mailbox_row(conn, inbox_id, name) is not None:
                raise errors.MailboxExists(f"mailbox {name} already exists")
            created = await _create_parents(conn, inbox_id, name)
            box = await insert_mailbox(conn, inbox_id, name, None, subscribed=False)
            created.append(box)
            return box, [MailboxCreated(inbox_id, b.id, b.highestmodseq, b.name) for b in created]

        # PostgreSQL: if another node creates it between our check and our insert, the write is
        # retried and the check answers MailboxExists.
        return await self._change(work)

    async def delete_mailbox(self, inbox_id: int, name: str) -> None:
        name = existing_mailbox_name(name)

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            row = await mailbox_row(conn, inbox_id, name)
            if row is None:
                raise no_mailbox(name)
            if name in BUILTIN_MAILBOXES:
                raise errors.CannotModify(f"{name} is a built-in mailbox and cannot be deleted")
            # Wait for writers into it, so that their entries are seen and collected below.
            await lock_mailbox(conn, row.id)
            child = await conn.scalar(
                select(mailboxes.c.id)
                .where(mailboxes.c.inbox_id == inbox_id, _children_of(name))
                .limit(1)
            )
            if child is not None:
                raise errors.HasChildren(f"{name} has child mailboxes; delete them first")
            blob_ids = set(
                await conn.scalars(
                    select(entries.c.message_id).where(entries.c.mailbox_id == row.id)
                )
            )
            await conn.execute(delete(entries).where(entries.c.mailbox_id == row.id))
            await conn.execute(delete(expunged).where(expunged.c.mailbox_id == row.id))
            await conn.execute(delete(mailboxes).where(mailboxes.c.id == row.id))
            await collect_garbage(conn, blob_ids)
            return None, [MailboxDeleted(inbox_id, int(row.id), 0, name)]

        await self._change(work)

    async def rename_mailbox(self, inbox_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children; UIDVALIDITY and UIDs stay (RFC 3501 §6.3.5)."""
        old = existing_mailbox_name(old)
        new = valid_mailbox_name(new)

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            row = await mailbox_row(conn, inbox_id, old)
            if row is None:
                raise no_mailbox(old)
            if old in BUILTIN_MAILBOXES:
                raise errors.CannotModify(f"{old} is a built-in mailbox and cannot be renamed")
            if new == old or new.startswith(old + HIERARCHY_DELIMITER):
                raise errors.CannotModify(f"cannot rename {old} into itself")
            if await mailbox_row(conn, inbox_id, new) is not None:
                raise errors.MailboxExists(f"mailbox {new} already exists")
            children = (
                await conn.execute(
                    select(mailboxes.c.id, mailboxes.c.name, mailboxes.c.highestmodseq).where(
                        mailboxes.c.inbox_id == inbox_id, _children_of(old)
                    )
                )
            ).all()
            events: list[Change] = [
                MailboxCreated(inbox_id, b.id, b.highestmodseq, b.name)
                for b in await _create_parents(conn, inbox_id, new)
            ]
            await conn.execute(update(mailboxes).where(mailboxes.c.id == row.id).values(name=new))
            await _move_subscription(conn, inbox_id, old, new)
            events.append(MailboxRenamed(inbox_id, row.id, row.highestmodseq, new, old))
            for child in children:
                # A longer new prefix can push a child past the length limit.
                renamed = valid_mailbox_name(new + child.name[len(old) :])
                await conn.execute(
                    update(mailboxes).where(mailboxes.c.id == child.id).values(name=renamed)
                )
                await _move_subscription(conn, inbox_id, child.name, renamed)
                events.append(
                    MailboxRenamed(inbox_id, child.id, child.highestmodseq, renamed, child.name)
                )
            return None, events

        await self._change(work)

    async def subscriptions(self, inbox_id: int) -> set[str]:
        """The names the inbox subscribes to, whether or not such a mailbox exists now."""
        async with self.db.read() as conn:
            return set(
                await conn.scalars(
                    select(subscriptions.c.name).where(subscriptions.c.inbox_id == inbox_id)
                )
            )

    async def set_subscribed(self, inbox_id: int, name: str, subscribed: bool) -> None:
        """SUBSCRIBE an existing mailbox, or UNSUBSCRIBE a name (a mailbox deleted since keeps
        its subscription until then, RFC 3501 §6.3.6). Either is idempotent; a name that is
        neither a mailbox nor subscribed is MailboxNotFound."""
        name = existing_mailbox_name(name)
        dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            if subscribed:
                if await mailbox_row(conn, inbox_id, name) is None:
                    raise no_mailbox(name)
                result = await conn.execute(
                    dialect_insert(subscriptions)
                    .values(inbox_id=inbox_id, name=name)
                    .on_conflict_do_nothing(index_elements=["inbox_id", "name"])
                )
            else:
                result = await conn.execute(
                    delete(subscriptions).where(
                        subscriptions.c.inbox_id == inbox_id, subscriptions.c.name == name
                    )
                )
                if result.rowcount == 0 and await mailbox_row(conn, inbox_id, name) is None:
                    raise no_mailbox(name)
            # Only a change is news (IMAP NOTIFY's SubscriptionChange).
            if not result.rowcount:
                return None, []
            return None, [SubscriptionChanged(inbox_id, 0, 0, name, subscribed)]

        await self._change(work)

    async def status(self, mailbox_id: int) -> MailboxStatus:
        async def read(conn: Conn) -> tuple[Mailbox, tuple[Any, ...]]:
            box = await mailbox_by_id(conn, mailbox_id)
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(messages.c.size), 0),
                        func.coalesce(
                            func.sum((entries.c.flags.op("&")(FLAG_BITS[SEEN]) == 0).cast(Integer)),
                            0,
                        ),
                        func.coalesce(
                            func.sum(
                                (entries.c.flags.op("&")(FLAG_BITS[DELETED]) != 0).cast(Integer)
                            ),
                            0,
                        ),
                        func.coalesce(func.sum((entries.c.uid >= box.recent_uid).cast(Integer)), 0),
                        func.coalesce(
                            func.sum(
                                case(
                                    (
                                        entries.c.flags.op("&")(FLAG_BITS[DELETED]) != 0,
                                        messages.c.size,
                                    ),
                                    else_=0,
                                )
                            ),
                            0,
                        ),
                    )
                    .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
                    .where(entries.c.mailbox_id == mailbox_id)
                )
            ).one()
            return box, tuple(row)

        box, row = await self.db.run_read(read, snapshot=True)
        return MailboxStatus(
            messages=int(row[0]),
            size=int(row[1]),
            unseen=int(row[2]),
            deleted=int(row[3]),
            uidnext=box.uidnext,
            uidvalidity=box.uidvalidity,
            highestmodseq=box.highestmodseq,
            recent=int(row[4]),
            deleted_size=int(row[5]),
        )

    async def claim_recent(self, mailbox_id: int, last_uid: int) -> tuple[int, int] | None:
        """\\Recent (RFC 3501 §2.3.2): claim for the calling session the UIDs up to `last_uid`
        that no session has claimed yet. Returns the first and last UID it got, or None. One
        row, locked: whichever session asks first, on any node, gets each UID, and only it.
        Sessions of this node that hear of the same new mail after a claim covered it are
        answered from memory, so a delivery costs one claim per node, not one per session."""
        claimed = self._recent_claimed
        if claimed.get(mailbox_id, 0) >= last_uid:
            return None

        async def work(conn: Conn) -> tuple[int, int] | None:
            first = await conn.scalar(
                select(mailboxes.c.recent_uid).where(mailboxes.c.id == mailbox_id).with_for_update()
            )
            if first is None or first > last_uid:
                return None
            await conn.execute(
                update(mailboxes)
                .where(mailboxes.c.id == mailbox_id)
                .values(recent_uid=last_uid + 1)
            )
            return int(first), last_uid

        async with self._recent_lock:
            before = claimed.get(mailbox_id, 0)
            if before >= last_uid:
                return None
            if len(claimed) >= RECENT_CACHE:
                claimed.clear()
            # Marked before the write: the other sessions of this node that hear of the same
            # mail meanwhile get none of it at once, rather than queue on the lock one by one
            # (thousands idle on one mailbox). Either way every UID up to last_uid is claimed
            # once the write is done, by us or before us.
            claimed[mailbox_id] = last_uid
            try:
                return await self.db.write(work)
            except BaseException:
                claimed[mailbox_id] = before  # nobody has them: a later session may
                raise

    async def snapshot(self, mailbox_id: int) -> Snapshot:
        """What SELECT shows: every UID in order, and where the unseen messages start."""

        async def read(conn: Conn) -> Snapshot:
            box = await mailbox_by_id(conn, mailbox_id)
            rows = await conn.execute(
                select(entries.c.uid, entries.c.flags)
                .where(entries.c.mailbox_id == mailbox_id)
                .order_by(entries.c.uid)
            )
            uids: array[int] = array("I")
            unseen = 0
            first_unseen: int | None = None
            seen_bit = FLAG_BITS[SEEN]
            for uid, bits in rows:
                uids.append(uid)
                if not bits & seen_bit:
                    unseen += 1
                    if first_unseen is None:
                        first_unseen = len(uids)
            return Snapshot(box, uids, unseen, first_unseen)

        return await self.db.run_read(read, snapshot=True)


# Mailboxes whose \\Recent claims a node remembers (Mailboxes.claim_recent) before it forgets
# them all and asks the database again: a bound on the memory, not on correctness.
RECENT_CACHE = 10_000


async def _move_subscription(conn: Conn, inbox_id: int, old: str, new: str) -> None:
    """A renamed mailbox keeps its subscription under its new name (as in Dovecot)."""
    moved = await conn.execute(
        delete(subscriptions).where(
            subscriptions.c.inbox_id == inbox_id, subscriptions.c.name == old
        )
    )
    if moved.rowcount:
        await conn.execute(
            delete(subscriptions).where(
                subscriptions.c.inbox_id == inbox_id, subscriptions.c.name == new
            )
        )
        await conn.execute(insert(subscriptions).values(inbox_id=inbox_id, name=new))


async def _create_parents(conn: Conn, inbox_id: int, name: str) -> list[Mailbox]:
    """Create the missing parents of `name`; returns those it created."""
    created = []
    for parent in parents(name):
        if await mailbox_row(conn, inbox_id, parent) is None:
            created.append(await insert_mailbox(conn, inbox_id, parent, None, subscribed=False))
    return created


def _children_of(name: str) -> ColumnElement[bool]:
    """Mailboxes below `name`. Not LIKE: SQLite's LIKE ignores case, and names other than INBOX
    are case-sensitive."""
    prefix = name + HIERARCHY_DELIMITER
    return func.substr(mailboxes.c.name, 1, len(prefix)) == prefix
