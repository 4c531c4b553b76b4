"""class Store: the only door to the database. Every method is one use case, one transaction.

UID and MODSEQ rules (DESIGN.md "The store"): every write transaction that touches a mailbox
first locks that mailbox's row (mailboxes in ascending id order, so two writers never deadlock),
then takes UIDs from UIDNEXT and one new MODSEQ for everything it changes there. The lock is held
until commit, so UIDs become visible in the order they were given out. Listeners hear about a
change only after its commit.

Lock order, everywhere: inbox row, then mailbox rows (ascending id), then message rows. A message
row is shared by entries in many mailboxes, so whoever reuses one (deliver of identical bytes)
holds it FOR SHARE and whoever garbage-collects one holds it FOR UPDATE: on PostgreSQL, a blob is
never collected while another transaction is adding a reference to it.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime
import hashlib
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from mailgate.mime.addresses import InvalidAddress, domain_of, normalize_address
from mailgate.mime.headers import normalize_crlf
from mailgate.mime.imapview import MessageIndex, index_message
from mailgate.store import errors, notify
from mailgate.store.database import Conn, Database
from mailgate.store.events import EventBus, MailboxChanged
from mailgate.store.models import (
    api_keys,
    blobs,
    counters,
    dkim_keys,
    domains,
    entries,
    expunged,
    inboxes,
    mailboxes,
    messages,
    outbound,
    pods,
    sender_rules,
)
from mailgate.store.records import (
    BUILTIN_MAILBOXES,
    DELETED,
    FLAG_BITS,
    HIERARCHY_DELIMITER,
    INBOX,
    SEEN,
    SENT,
    ApiKey,
    Changes,
    CopyResult,
    Domain,
    DomainKey,
    EntryState,
    FetchRow,
    FlagUpdate,
    Inbox,
    Mailbox,
    MailboxStatus,
    Parcel,
    Placed,
    Pod,
    QueuedRecipient,
    SenderRule,
    Snapshot,
    Target,
    join_flags,
    split_flags,
)

T = TypeVar("T")
# What a write changed: mailbox id -> its new HIGHESTMODSEQ (0: the mailbox is gone).
Changed = dict[int, int]

DEFAULT_POD = "default"
# How long start-up waits for the LISTEN connection before giving up.
LISTEN_TIMEOUT = 10.0
MAX_UID = 2**32 - 1
MAX_MAILBOX_NAME = 1000
MAX_KEYWORDS = 200
MAX_KEYWORD = 200
MAX_KEY_ID = 32
MAX_LABEL = 255
# Messages bigger than this are hashed and indexed in a worker thread, off the event loop.
_THREAD_THRESHOLD = 64 * 1024
# SQL expressions stay small: beyond this many ranges we select the span and filter in Python.
_MAX_RANGE_TERMS = 64

UidRanges = Sequence[tuple[int, int]]

FETCH_COLUMNS = {
    "envelope": messages.c.envelope,
    "body": messages.c.body,
    "bodystructure": messages.c.bodystructure,
    "header": messages.c.header,
    "parts": messages.c.parts,
    "sent_date": messages.c.sent_date,
    "sent_date_tz": messages.c.sent_date_tz,
}


def _now() -> int:
    return int(time.time())


class Prepared:
    """A message ready to store: CRLF-normalised bytes, their hash and their IMAP index."""

    __slots__ = ("digest", "index", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = normalize_crlf(raw)
        self.digest = hashlib.sha256(self.raw).hexdigest()
        self.index: MessageIndex = index_message(self.raw)


async def prepare(raw: bytes) -> Prepared:
    """Index a message, in a worker thread when it is big enough to stall the event loop."""
    if len(raw) > _THREAD_THRESHOLD:
        return await asyncio.to_thread(Prepared, raw)
    return Prepared(raw)


class _Filing:
    """Parcels made ready outside the transaction (indexing is CPU work), filed inside it."""

    def __init__(self, parcels: Sequence[Parcel], prepared: dict[int, Prepared]) -> None:
        self.parcels = parcels
        self.prepared = prepared
        # mailbox id -> {parcel index: flags}, merging a parcel's duplicate targets.
        self.plan: dict[int, dict[int, set[str]]] = {}
        for i, parcel in enumerate(parcels):
            for target in parcel.targets:
                flags = _checked_flags(target.flags)
                self.plan.setdefault(target.mailbox_id, {}).setdefault(i, set()).update(flags)
        now = datetime.datetime.now(datetime.UTC)
        self.dates = [p.internaldate or now for p in parcels]

    @classmethod
    async def of(cls, parcels: Sequence[Parcel]) -> _Filing:
        # A parcel going nowhere would leave a message nothing refers to: it is not stored.
        wanted = [i for i, p in enumerate(parcels) if p.targets or p.outbound]
        return cls(parcels, {i: await prepare(parcels[i].raw) for i in wanted})

    async def file(self, conn: Conn, db: Database) -> tuple[dict[tuple[int, int], Placed], Changed]:
        # Mailboxes first, then messages: the lock order expunge and delete use too.
        boxes = {m: await _lock_mailbox(conn, m) for m in sorted(self.plan)}
        message_ids = {
            i: await _insert_message(conn, db, p) for i, p in sorted(self.prepared.items())
        }
        placed: dict[tuple[int, int], Placed] = {}
        changed: Changed = {}
        for mailbox_id, box in boxes.items():
            modseq, uid = box.highestmodseq + 1, box.uidnext
            all_keywords: set[str] = set()
            for i, flags in sorted(self.plan[mailbox_id].items()):
                if uid > MAX_UID:
                    raise errors.LimitExceeded("this mailbox has used up its UIDs")
                bits, keywords = split_flags(tuple(flags))
                all_keywords.update(keywords.split())
                await conn.execute(
                    insert(entries).values(
                        mailbox_id=mailbox_id,
                        uid=uid,
                        message_id=message_ids[i],
                        flags=bits,
                        keywords=keywords,
                        modseq=modseq,
                        internaldate=int(self.dates[i].timestamp()),
                        internaldate_tz=_tz_minutes(self.dates[i]),
                    )
                )
                placed[(i, mailbox_id)] = Placed(mailbox_id, box.uidvalidity, uid)
                uid += 1
            await _bump_mailbox(
                conn, box, uidnext=uid, modseq=modseq, keywords=" ".join(sorted(all_keywords))
            )
            changed[mailbox_id] = modseq
        now = _now()
        rows = [
            {
                "message_id": message_ids[i],
                "inbox_id": out.inbox_id,
                "mail_from": out.mail_from,
                "recipient": out.recipient,
                "domain": domain_of(out.recipient),
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
                "last_reply": "",
            }
            for i, parcel in enumerate(self.parcels)
            for out in parcel.outbound
        ]
        if rows:
            await conn.execute(insert(outbound), rows)
        return placed, changed

    def placed_lists(self, placed: dict[tuple[int, int], Placed]) -> list[list[Placed]]:
        return [
            [placed[(i, t.mailbox_id)] for t in parcel.targets]
            for i, parcel in enumerate(self.parcels)
        ]


class Store:
    def __init__(self, db: Database, bus: EventBus | None = None) -> None:
        self.db = db
        self.bus = bus or EventBus()
        self._listener: notify.ChangeListener | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 10.0,
        bus: EventBus | None = None,
        migrate: bool = True,
    ) -> Store:
        db = Database(url, pool_size=pool_size, pool_timeout=pool_timeout)
        try:
            if migrate:
                await db.migrate()
        except BaseException:
            await db.close()
            raise
        return cls(db, bus)

    async def listen(self) -> None:
        """On PostgreSQL, relay changes committed by other nodes into this node's event bus
        (LISTEN/NOTIFY); returns once listening. SQLite has one node: nothing to do."""
        if self.db.is_sqlite or self._listener is not None:
            return
        self._listener = notify.ChangeListener(self.db.url, self.bus)
        await self._listener.start()
        try:
            await asyncio.wait_for(self._listener.connected.wait(), LISTEN_TIMEOUT)
        except TimeoutError:
            await self._listener.stop()
            self._listener = None
            raise errors.Unavailable("cannot LISTEN for other nodes' changes") from None

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await self.db.close()

    async def _change(self, work: Callable[[Conn], Awaitable[tuple[T, Changed]]]) -> T:
        """Run a write transaction that changes mailboxes. `work` returns its result and what
        it changed (mailbox id -> new HIGHESTMODSEQ, 0 for a mailbox that is gone), which is
        announced once committed: to this node's listeners after the commit, and on PostgreSQL
        to every node's, by a NOTIFY that the commit delivers."""

        async def announced(conn: Conn) -> tuple[T, Changed]:
            result, changed = await work(conn)
            if changed and not self.db.is_sqlite:
                for payload in notify.encode(changed):
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": notify.CHANNEL, "payload": payload},
                    )
            return result, changed

        def publish(done: tuple[T, Changed]) -> None:
            for mailbox_id, modseq in done[1].items():
                self.bus.publish(MailboxChanged(mailbox_id, modseq))

        result, _ = await self.db.write(announced, after=publish)
        return result

    # ---------------------------------------------------------------- pods

    async def create_pod(self, name: str) -> Pod:
        name = _pod_name(name)

        async def work(conn: Conn) -> Pod:
            if await _pod_row(conn, name) is not None:
                raise errors.PodExists(f"pod {name} already exists")
            return await _insert_pod(conn, name)

        return await self.db.write(work)

    async def list_pods(self) -> list[Pod]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(pods).order_by(pods.c.name))
            return [Pod(r.id, r.name, r.created_at) for r in rows]

    async def get_pod(self, name: str) -> Pod:
        async with self.db.read() as conn:
            row = await _pod_row(conn, _pod_name(name))
        if row is None:
            raise errors.PodNotFound(f"no pod {name}")
        return Pod(row.id, row.name, row.created_at)

    async def delete_pod(self, name: str) -> None:
        name = _pod_name(name)

        async def work(conn: Conn) -> None:
            # Locked, so that an inbox created meanwhile on another node waits and then fails
            # (and retries into a new pod) instead of being cascade-deleted with this one.
            row = await _pod_row(conn, name, lock=True)
            if row is None:
                raise errors.PodNotFound(f"no pod {name}")
            if name == DEFAULT_POD:
                raise errors.CannotModify(f"the {DEFAULT_POD} pod cannot be deleted")
            count = await conn.scalar(
                select(func.count()).select_from(inboxes).where(inboxes.c.pod_id == row.id)
            )
            if count:
                raise errors.CannotModify(f"pod {name} still has {count} inbox(es)")
            await conn.execute(delete(pods).where(pods.c.id == row.id))

        await self.db.write(work)

    # ---------------------------------------------------------------- inboxes

    async def create_inbox(self, address: str, pod: str = DEFAULT_POD) -> Inbox:
        address = _address(address)
        pod = _pod_name(pod)

        async def work(conn: Conn) -> Inbox:
            existing = await conn.scalar(select(inboxes.c.id).where(inboxes.c.address == address))
            if existing is not None:
                raise errors.InboxExists(f"inbox {address} already exists")
            pod_row = await _pod_row(conn, pod)
            pod_rec = (
                await _insert_pod(conn, pod)
                if pod_row is None
                else Pod(pod_row.id, pod_row.name, pod_row.created_at)
            )
            now = _now()
            inbox_id = (
                await conn.execute(
                    insert(inboxes)
                    .values(pod_id=pod_rec.id, address=address, created_at=now)
                    .returning(inboxes.c.id)
                )
            ).scalar_one()
            for name, special_use in BUILTIN_MAILBOXES.items():
                await _insert_mailbox(conn, inbox_id, name, special_use)
            return Inbox(inbox_id, pod_rec.id, pod_rec.name, address, now)

        return await self.db.write(work)

    async def get_inbox(self, address: str) -> Inbox:
        try:
            address = normalize_address(address)
        except InvalidAddress:
            raise errors.InboxNotFound(f"no inbox {address}") from None
        found = await self.find_inboxes([address])
        if address not in found:
            raise errors.InboxNotFound(f"no inbox {address}")
        return found[address]

    async def find_inboxes(self, addresses: Iterable[str]) -> dict[str, Inbox]:
        """The hosted inboxes among `addresses` (already normalised), keyed by address."""
        wanted = sorted(a for a in set(addresses) if _storable(a))
        if not wanted:
            return {}
        async with self.db.read() as conn:
            rows = await conn.execute(_inbox_select().where(inboxes.c.address.in_(wanted)))
            return {r.address: _inbox(r) for r in rows}

    async def inbox_reached_by(self, address: str) -> Inbox | None:
        """The inbox that mail to `address` (normalised) reaches: its own, or by
        plus-addressing name+tag@domain reaches name@domain (unless name+tag is an inbox)."""
        local, _, domain = address.rpartition("@")
        candidates = [address]
        if "+" in local:
            candidates.append(f"{local.split('+', 1)[0]}@{domain}")
        found = await self.find_inboxes(candidates)
        return next((found[c] for c in candidates if c in found), None)

    async def delivery_mailboxes(
        self, sender_inbox_id: int, recipients: Iterable[str]
    ) -> tuple[int | None, dict[str, int]]:
        """In one query: the sender's Sent mailbox (None if the inbox is gone) and the INBOX
        mailbox of every hosted recipient among `recipients` (normalised), by address."""
        wanted = sorted(a for a in set(recipients) if _storable(a))
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

    async def list_inboxes(self, pod: str | None = None) -> list[Inbox]:
        query = _inbox_select().order_by(inboxes.c.address)
        if pod is not None:
            if not _storable(pod):
                return []
            query = query.where(pods.c.name == pod)
        async with self.db.read() as conn:
            return [_inbox(r) for r in await conn.execute(query)]

    async def delete_inbox(self, address: str) -> None:
        address = _address(address)

        async def work(conn: Conn) -> tuple[None, Changed]:
            # Locked first: no mailbox can be created in it, nor message added, while it goes.
            inbox_id = await conn.scalar(
                select(inboxes.c.id).where(inboxes.c.address == address).with_for_update()
            )
            if inbox_id is None:
                raise errors.InboxNotFound(f"no inbox {address}")
            box_ids = list(
                await conn.scalars(
                    select(mailboxes.c.id)
                    .where(mailboxes.c.inbox_id == inbox_id)
                    .order_by(mailboxes.c.id)
                    .with_for_update()
                )
            )
            message_ids = set(
                await conn.scalars(
                    select(entries.c.message_id).where(entries.c.mailbox_id.in_(box_ids))
                )
            )
            await conn.execute(delete(entries).where(entries.c.mailbox_id.in_(box_ids)))
            await conn.execute(delete(expunged).where(expunged.c.mailbox_id.in_(box_ids)))
            await conn.execute(delete(api_keys).where(api_keys.c.inbox_id == inbox_id))
            await conn.execute(delete(mailboxes).where(mailboxes.c.inbox_id == inbox_id))
            await conn.execute(delete(inboxes).where(inboxes.c.id == inbox_id))
            await _collect_garbage(conn, message_ids)
            return None, dict.fromkeys(box_ids, 0)

        await self._change(work)

    # ---------------------------------------------------------------- API keys

    async def add_key(
        self,
        key_id: str,
        secret_hash: str,
        *,
        pod: str | None = None,
        inbox: str | None = None,
        label: str = "",
    ) -> ApiKey:
        """Record a key (auth.py makes the secret); scoped to one inbox, or to a whole pod."""
        if (pod is None) == (inbox is None):
            raise ValueError("a key is scoped to exactly one of pod or inbox")
        if not _valid_key_id(key_id):
            raise errors.InvalidName(f"{key_id!r} is not a valid key id")
        if len(label) > MAX_LABEL or not _storable(label):
            raise errors.InvalidName(f"a key label is at most {MAX_LABEL} printable characters")

        async def work(conn: Conn) -> ApiKey:
            if await conn.scalar(select(api_keys.c.id).where(api_keys.c.id == key_id)):
                raise errors.AlreadyExists(f"key {key_id} already exists")
            inbox_id: int | None = None
            if inbox is not None:
                row = (
                    await conn.execute(
                        select(inboxes.c.id, inboxes.c.pod_id).where(
                            inboxes.c.address == _address(inbox)
                        )
                    )
                ).first()
                if row is None:
                    raise errors.InboxNotFound(f"no inbox {inbox}")
                inbox_id, pod_id = row.id, row.pod_id
            else:
                assert pod is not None
                pod_row = await _pod_row(conn, _pod_name(pod))
                if pod_row is None:
                    raise errors.PodNotFound(f"no pod {pod}")
                pod_id = pod_row.id
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    pod_id=pod_id,
                    inbox_id=inbox_id,
                    secret_hash=secret_hash,
                    label=label,
                    created_at=_now(),
                )
            )
            row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).one()
            return _key(row)

        return await self.db.write(work)

    async def get_key(self, key_id: str) -> ApiKey | None:
        if not _valid_key_id(key_id):
            return None
        async with self.db.read() as conn:
            row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).first()
        return None if row is None else _key(row)

    async def list_keys(self) -> list[ApiKey]:
        async with self.db.read() as conn:
            rows = await conn.execute(_key_select().order_by(api_keys.c.created_at, api_keys.c.id))
            return [_key(r) for r in rows]

    async def revoke_key(self, key_id: str) -> ApiKey:
        if not _valid_key_id(key_id):
            raise errors.KeyNotFound(f"no key {key_id!r}")

        async def work(conn: Conn) -> ApiKey:
            row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).first()
            if row is None:
                raise errors.KeyNotFound(f"no key {key_id}")
            if row.revoked_at is None:
                await conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=_now())
                )
                row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).one()
            return _key(row)

        return await self.db.write(work)

    # ---------------------------------------------------------------- mailboxes

    async def list_mailboxes(self, inbox_id: int) -> list[Mailbox]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(mailboxes).where(mailboxes.c.inbox_id == inbox_id).order_by(mailboxes.c.name)
            )
            return [_mailbox(r) for r in rows]

    async def get_mailbox(self, inbox_id: int, name: str) -> Mailbox:
        name = _existing_mailbox_name(name)
        async with self.db.read() as conn:
            row = await _mailbox_row(conn, inbox_id, name)
        if row is None:
            raise _no_mailbox(name)
        return _mailbox(row)

    async def create_mailbox(self, inbox_id: int, name: str) -> Mailbox:
        """Create `name`, and any missing parents in the hierarchy (RFC 3501 §6.3.3)."""
        name = _valid_mailbox_name(name)

        async def work(conn: Conn) -> Mailbox:
            await _lock_inbox_shared(conn, inbox_id)
            if await _mailbox_row(conn, inbox_id, name) is not None:
                raise errors.MailboxExists(f"mailbox {name} already exists")
            parts = name.split(HIERARCHY_DELIMITER)
            for depth in range(1, len(parts)):
                parent = HIERARCHY_DELIMITER.join(parts[:depth])
                if await _mailbox_row(conn, inbox_id, parent) is None:
                    await _insert_mailbox(conn, inbox_id, parent, None)
            await _insert_mailbox(conn, inbox_id, name, None)
            row = await _mailbox_row(conn, inbox_id, name)
            assert row is not None
            return _mailbox(row)

        # PostgreSQL: if another node creates it between our check and our insert, the write is
        # retried and the check answers MailboxExists.
        return await self.db.write(work)

    async def delete_mailbox(self, inbox_id: int, name: str) -> None:
        name = _existing_mailbox_name(name)

        async def work(conn: Conn) -> tuple[None, Changed]:
            row = await _mailbox_row(conn, inbox_id, name)
            if row is None:
                raise _no_mailbox(name)
            if name in BUILTIN_MAILBOXES:
                raise errors.CannotModify(f"{name} is a built-in mailbox and cannot be deleted")
            # Wait for writers into it, so that their entries are seen and collected below.
            await _lock_mailbox(conn, row.id)
            child = await conn.scalar(
                select(mailboxes.c.id)
                .where(mailboxes.c.inbox_id == inbox_id, _children_of(name))
                .limit(1)
            )
            if child is not None:
                raise errors.CannotModify(f"{name} has child mailboxes; delete them first")
            message_ids = set(
                await conn.scalars(
                    select(entries.c.message_id).where(entries.c.mailbox_id == row.id)
                )
            )
            await conn.execute(delete(entries).where(entries.c.mailbox_id == row.id))
            await conn.execute(delete(expunged).where(expunged.c.mailbox_id == row.id))
            await conn.execute(delete(mailboxes).where(mailboxes.c.id == row.id))
            await _collect_garbage(conn, message_ids)
            return None, {int(row.id): 0}

        await self._change(work)

    async def rename_mailbox(self, inbox_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children; UIDVALIDITY and UIDs stay (RFC 3501 §6.3.5)."""
        old = _existing_mailbox_name(old)
        new = _valid_mailbox_name(new)

        async def work(conn: Conn) -> None:
            row = await _mailbox_row(conn, inbox_id, old)
            if row is None:
                raise _no_mailbox(old)
            if old in BUILTIN_MAILBOXES:
                raise errors.CannotModify(f"{old} is a built-in mailbox and cannot be renamed")
            if new == old or new.startswith(old + HIERARCHY_DELIMITER):
                raise errors.CannotModify(f"cannot rename {old} into itself")
            if await _mailbox_row(conn, inbox_id, new) is not None:
                raise errors.MailboxExists(f"mailbox {new} already exists")
            children = (
                await conn.execute(
                    select(mailboxes.c.id, mailboxes.c.name).where(
                        mailboxes.c.inbox_id == inbox_id, _children_of(old)
                    )
                )
            ).all()
            parts = new.split(HIERARCHY_DELIMITER)
            for depth in range(1, len(parts)):
                parent = HIERARCHY_DELIMITER.join(parts[:depth])
                if await _mailbox_row(conn, inbox_id, parent) is None:
                    await _insert_mailbox(conn, inbox_id, parent, None)
            await conn.execute(update(mailboxes).where(mailboxes.c.id == row.id).values(name=new))
            for child in children:
                # A longer new prefix can push a child past the length limit.
                renamed = _valid_mailbox_name(new + child.name[len(old) :])
                await conn.execute(
                    update(mailboxes).where(mailboxes.c.id == child.id).values(name=renamed)
                )

        await self.db.write(work)

    async def set_subscribed(self, inbox_id: int, name: str, subscribed: bool) -> None:
        name = _existing_mailbox_name(name)

        async def work(conn: Conn) -> None:
            result = await conn.execute(
                update(mailboxes)
                .where(mailboxes.c.inbox_id == inbox_id, mailboxes.c.name == name)
                .values(subscribed=subscribed)
            )
            if result.rowcount == 0:
                raise _no_mailbox(name)

        await self.db.write(work)

    async def status(self, mailbox_id: int) -> MailboxStatus:
        async with self.db.read(snapshot=True) as conn:
            box = await _mailbox_by_id(conn, mailbox_id)
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
                    )
                    .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
                    .where(entries.c.mailbox_id == mailbox_id)
                )
            ).one()
        return MailboxStatus(
            messages=int(row[0]),
            size=int(row[1]),
            unseen=int(row[2]),
            deleted=int(row[3]),
            uidnext=box.uidnext,
            uidvalidity=box.uidvalidity,
            highestmodseq=box.highestmodseq,
        )

    async def snapshot(self, mailbox_id: int) -> Snapshot:
        """What SELECT shows: every UID in order, and where the unseen messages start."""
        async with self.db.read(snapshot=True) as conn:
            box = await _mailbox_by_id(conn, mailbox_id)
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

    # ---------------------------------------------------------------- messages in

    async def append(
        self,
        mailbox_id: int,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internaldate: datetime.datetime | None = None,
    ) -> Placed:
        """APPEND: one message into one mailbox; returns its UID once committed."""
        placed = await self.deliver(
            [Parcel(raw, (Target(mailbox_id, tuple(flags)),), internaldate)]
        )
        return placed[0][0]

    async def deliver(self, parcels: Sequence[Parcel]) -> list[list[Placed]]:
        """File messages in mailboxes and queue them for remote recipients, all in one
        transaction: a submission's Sent copy, every local recipient's INBOX entry and its
        outbound queue rows share one blob. Returns, per parcel, one Placed per target."""
        filing = await _Filing.of(parcels)

        async def work(conn: Conn) -> tuple[dict[tuple[int, int], Placed], Changed]:
            return await filing.file(conn, self.db)

        return filing.placed_lists(await self._change(work))

    # ---------------------------------------------------------------- messages out

    async def fetch(
        self,
        mailbox_id: int,
        uids: UidRanges,
        columns: Iterable[str] = (),
    ) -> list[FetchRow]:
        """Entries in `uids` (inclusive ranges) with the requested extra columns, by UID."""
        wanted = frozenset(columns)
        selected = [
            entries.c.uid,
            entries.c.flags,
            entries.c.keywords,
            entries.c.modseq,
            entries.c.internaldate,
            entries.c.internaldate_tz,
            messages.c.size,
        ]
        if "sent_date" in wanted:
            wanted |= {"sent_date_tz"}
        extra = [name for name in FETCH_COLUMNS if name in wanted]
        selected += [FETCH_COLUMNS[name] for name in extra]
        source = entries.join(messages, messages.c.id == entries.c.message_id)
        if "data" in wanted:
            selected.append(blobs.c.data)
            source = source.join(blobs, blobs.c.message_id == entries.c.message_id)
            extra.append("data")
        where, post_filter = _uid_filter(uids)
        query = (
            select(*selected)
            .select_from(source)
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(entries.c.uid)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        result = []
        for row in rows:
            if post_filter is not None and not post_filter(row[0]):
                continue
            values: dict[str, Any] = dict(zip(extra, row[7:], strict=True))
            if "sent_date" in values:
                sent, tz = values.pop("sent_date"), values.pop("sent_date_tz")
                values["sent_date"] = None if sent is None else _datetime(sent, tz)
            result.append(
                FetchRow(
                    uid=row[0],
                    flags=join_flags(row[1], row[2]),
                    modseq=row[3],
                    internaldate=_datetime(row[4], row[5]),
                    size=row[6],
                    **values,
                )
            )
        return result

    # ---------------------------------------------------------------- changes

    async def store_flags(
        self,
        mailbox_id: int,
        uids: UidRanges,
        mode: str,
        flags: Sequence[str],
        *,
        unchangedsince: int | None = None,
    ) -> FlagUpdate:
        """STORE: mode "+" adds, "-" removes, "" replaces. One MODSEQ for the whole change."""
        if mode not in ("+", "-", ""):
            raise ValueError(f"bad STORE mode {mode!r}")
        change_bits, change_kw = split_flags(_checked_flags(flags))
        change_keywords = set(change_kw.split())
        where, post_filter = _uid_filter(uids)

        async def work(conn: Conn) -> tuple[FlagUpdate, Changed]:
            box = await _lock_mailbox(conn, mailbox_id)
            rows = (
                await conn.execute(
                    select(entries.c.uid, entries.c.flags, entries.c.keywords, entries.c.modseq)
                    .where(entries.c.mailbox_id == mailbox_id, where)
                    .order_by(entries.c.uid)
                )
            ).all()
            modseq = box.highestmodseq + 1
            states: list[EntryState] = []
            modified: list[int] = []
            updates: list[dict[str, Any]] = []
            for uid, bits, keywords, old_modseq in rows:
                if post_filter is not None and not post_filter(uid):
                    continue
                if unchangedsince is not None and old_modseq > unchangedsince:
                    modified.append(uid)
                    continue
                kw = set(keywords.split())
                if mode == "+":
                    new_bits, new_kw = bits | change_bits, kw | change_keywords
                elif mode == "-":
                    new_bits, new_kw = bits & ~change_bits, kw - change_keywords
                else:
                    new_bits, new_kw = change_bits, set(change_keywords)
                new_keywords = " ".join(sorted(new_kw))
                if new_bits == bits and new_keywords == keywords:
                    states.append(EntryState(uid, join_flags(bits, keywords), old_modseq))
                    continue
                updates.append({"b_uid": uid, "b_flags": new_bits, "b_keywords": new_keywords})
                states.append(EntryState(uid, join_flags(new_bits, new_keywords), modseq))
            if not updates:
                return FlagUpdate(states, modified, box.highestmodseq), {}
            await conn.execute(
                update(entries)
                .where(
                    entries.c.mailbox_id == mailbox_id,
                    entries.c.uid == bindparam("b_uid"),
                )
                .values(
                    flags=bindparam("b_flags"), keywords=bindparam("b_keywords"), modseq=modseq
                ),
                updates,
            )
            added = "" if mode == "-" else " ".join(sorted(change_keywords))
            await _bump_mailbox(conn, box, modseq=modseq, keywords=added)
            return FlagUpdate(states, modified, modseq), {mailbox_id: modseq}

        return await self._change(work)

    async def expunge(self, mailbox_id: int, uids: UidRanges | None = None) -> list[int]:
        """Remove the \\Deleted messages (only those in `uids`, if given); returns their UIDs."""
        deleted_bit = FLAG_BITS[DELETED]

        async def work(conn: Conn) -> tuple[list[int], Changed]:
            box = await _lock_mailbox(conn, mailbox_id)
            query = select(entries.c.uid, entries.c.message_id).where(
                entries.c.mailbox_id == mailbox_id,
                entries.c.flags.op("&")(deleted_bit) != 0,
            )
            post_filter = None
            if uids is not None:
                where, post_filter = _uid_filter(uids)
                query = query.where(where)
            rows = [
                r
                for r in (await conn.execute(query.order_by(entries.c.uid))).all()
                if post_filter is None or post_filter(r.uid)
            ]
            if not rows:
                return [], {}
            modseq = box.highestmodseq + 1
            gone = [r.uid for r in rows]
            await _remove_entries(conn, mailbox_id, gone, modseq)
            await _bump_mailbox(conn, box, modseq=modseq)
            await _collect_garbage(conn, {r.message_id for r in rows})
            return gone, {mailbox_id: modseq}

        return await self._change(work)

    async def copy(self, source_id: int, uids: UidRanges, dest_id: int) -> CopyResult:
        return await self._copy(source_id, uids, dest_id, move=False)

    async def move(self, source_id: int, uids: UidRanges, dest_id: int) -> CopyResult:
        """RFC 6851 MOVE: copy and expunge from the source, atomically."""
        return await self._copy(source_id, uids, dest_id, move=True)

    async def _copy(
        self, source_id: int, uids: UidRanges, dest_id: int, *, move: bool
    ) -> CopyResult:
        where, post_filter = _uid_filter(uids)

        async def work(conn: Conn) -> tuple[CopyResult, Changed]:
            boxes = {}
            for mailbox_id in sorted({source_id, dest_id}):
                boxes[mailbox_id] = await _lock_mailbox(conn, mailbox_id)
            rows = [
                r
                for r in (
                    await conn.execute(
                        select(entries)
                        .where(entries.c.mailbox_id == source_id, where)
                        .order_by(entries.c.uid)
                    )
                ).all()
                if post_filter is None or post_filter(r.uid)
            ]
            dest = boxes[dest_id]
            if not rows:
                return CopyResult(dest.uidvalidity, [], []), {}
            if dest.uidnext + len(rows) - 1 > MAX_UID:
                raise errors.LimitExceeded("the destination mailbox has used up its UIDs")
            changed: dict[int, int] = {}
            dest_modseq = dest.highestmodseq + 1
            dest_uids = list(range(dest.uidnext, dest.uidnext + len(rows)))
            await conn.execute(
                insert(entries),
                [
                    {
                        "mailbox_id": dest_id,
                        "uid": new_uid,
                        "message_id": r.message_id,
                        "flags": r.flags,
                        "keywords": r.keywords,
                        "modseq": dest_modseq,
                        "internaldate": r.internaldate,
                        "internaldate_tz": r.internaldate_tz,
                    }
                    for r, new_uid in zip(rows, dest_uids, strict=True)
                ],
            )
            copied_keywords = " ".join(sorted({k for r in rows for k in r.keywords.split()}))
            if move and source_id != dest_id:
                source = boxes[source_id]
                source_modseq = source.highestmodseq + 1
                await _remove_entries(conn, source_id, [r.uid for r in rows], source_modseq)
                await _bump_mailbox(conn, source, modseq=source_modseq)
                changed[source_id] = source_modseq
            elif move:
                # MOVE into the same mailbox: the old entries go, the new ones stay.
                await _remove_entries(conn, source_id, [r.uid for r in rows], dest_modseq)
            await _bump_mailbox(
                conn,
                dest,
                uidnext=dest_uids[-1] + 1,
                modseq=dest_modseq,
                keywords=copied_keywords,
            )
            changed[dest_id] = dest_modseq
            return CopyResult(dest.uidvalidity, [r.uid for r in rows], dest_uids), changed

        return await self._change(work)

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        """Everything that changed in a mailbox after `modseq`: new and re-flagged entries,
        and expunged UIDs. A deleted mailbox answers with exists=False."""
        async with self.db.read(snapshot=True) as conn:
            row = (
                await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))
            ).first()
            if row is None:
                return Changes(modseq, 0, (), [], [], exists=False)
            if row.highestmodseq <= modseq:
                return Changes(row.highestmodseq, row.uidnext, _keywords(row.keywords), [], [])
            changed = [
                EntryState(uid, join_flags(bits, keywords), entry_modseq)
                for uid, bits, keywords, entry_modseq in await conn.execute(
                    select(entries.c.uid, entries.c.flags, entries.c.keywords, entries.c.modseq)
                    .where(entries.c.mailbox_id == mailbox_id, entries.c.modseq > modseq)
                    .order_by(entries.c.uid)
                )
            ]
            gone = list(
                await conn.scalars(
                    select(expunged.c.uid)
                    .where(expunged.c.mailbox_id == mailbox_id, expunged.c.modseq > modseq)
                    .order_by(expunged.c.uid)
                )
            )
            present = None
            if modseq < row.pruned_modseq:
                present = frozenset(
                    await conn.scalars(
                        select(entries.c.uid).where(entries.c.mailbox_id == mailbox_id)
                    )
                )
        return Changes(
            row.highestmodseq, row.uidnext, _keywords(row.keywords), changed, gone, present=present
        )

    async def prune_expunged(self, before: int) -> int:
        """Forget the expunges recorded before `before` (Unix time); returns how many. Each
        mailbox remembers the last MODSEQ forgotten, so a session that looked before it is
        given the whole UID list instead (changes_since) and still learns what went."""

        async def work(conn: Conn) -> int:
            old = await conn.execute(
                select(expunged.c.mailbox_id, func.max(expunged.c.modseq))
                .where(expunged.c.expunged_at < before)
                .group_by(expunged.c.mailbox_id)
                .order_by(expunged.c.mailbox_id)  # nodes pruning at once lock in one order
            )
            for mailbox_id, modseq in old.all():
                await conn.execute(
                    update(mailboxes)
                    .where(mailboxes.c.id == mailbox_id, mailboxes.c.pruned_modseq < modseq)
                    .values(pruned_modseq=modseq)
                )
            result = await conn.execute(delete(expunged).where(expunged.c.expunged_at < before))
            return int(result.rowcount or 0)

        return await self.db.write(work)

    # ---------------------------------------------------------------- the outbound queue

    async def claim_outbound(self, owner: str, lease: int, limit: int) -> list[QueuedRecipient]:
        """Claim up to `limit` due recipients for `lease` seconds. On PostgreSQL rows another
        node is claiming are skipped (FOR UPDATE SKIP LOCKED), so each goes to one node; a
        node that dies leaves its claims to be taken again when the lease runs out."""
        now = _now()

        async def work(conn: Conn) -> list[QueuedRecipient]:
            ids = list(
                await conn.scalars(
                    select(outbound.c.id)
                    .where(
                        outbound.c.next_attempt_at <= now,
                        or_(outbound.c.lease_until.is_(None), outbound.c.lease_until <= now),
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
                .values(lease_owner=owner, lease_until=now + lease)
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
        owner: str | None = None,
    ) -> None:
        """Record what a delivery attempt did, in one transaction: recipients `delivered`
        leave the queue; `deferred` ones (id, next attempt time, last reply) wait for their
        next attempt; `failed` ones leave it and their `bounces` are filed (in the senders'
        INBOXes) in the same commit, so a failure is never lost and never reported twice.

        With `owner`, a deferral applies only to rows that node still holds: one whose lease
        ran out and was taken by another node is that node's to decide now."""
        filing = await _Filing.of(bounces)

        async def work(conn: Conn) -> tuple[None, Changed]:
            changed: Changed = {}
            if bounces:
                _, changed = await filing.file(conn, self.db)
            gone = [*delivered, *failed]
            if gone:
                message_ids = set(
                    await conn.scalars(select(outbound.c.message_id).where(outbound.c.id.in_(gone)))
                )
                await conn.execute(delete(outbound).where(outbound.c.id.in_(gone)))
                await _collect_garbage(conn, message_ids)
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
            return None, changed

        await self._change(work)

    async def renew_outbound(self, owner: str, queue_ids: Sequence[int], lease: int) -> int:
        """Extend `owner`'s claims on `queue_ids` to `lease` seconds from now (a delivery that
        is still running); rows it no longer holds are left alone."""
        until = _now() + lease

        async def work(conn: Conn) -> int:
            count = 0
            for chunk in _chunks(list(queue_ids), 500):
                result = await conn.execute(
                    update(outbound)
                    .where(outbound.c.id.in_(list(chunk)), outbound.c.lease_owner == owner)
                    .values(lease_until=until)
                )
                count += int(result.rowcount or 0)
            return count

        return await self.db.write(work)

    async def remove_outbound(self, queue_id: int, *, bounces: Sequence[Parcel] = ()) -> None:
        """Take one recipient off the queue for good (an administrator's delete), filing its
        `bounces` in the same commit. Refused while a node holds it: that node may be getting
        its 250 right now, and the sender would be told of a failure that did not happen."""
        filing = await _Filing.of(bounces)
        now = _now()

        async def work(conn: Conn) -> tuple[None, Changed]:
            row = (
                await conn.execute(
                    select(outbound.c.message_id, outbound.c.lease_owner, outbound.c.lease_until)
                    .where(outbound.c.id == queue_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise errors.QueueItemNotFound(f"no queued recipient {queue_id}")
            if row.lease_until is not None and row.lease_until > now:
                raise errors.CannotModify(
                    f"queued recipient {queue_id} is being delivered by {row.lease_owner} "
                    "right now; try again once that attempt is over"
                )
            changed: Changed = {}
            if bounces:
                _, changed = await filing.file(conn, self.db)
            await conn.execute(delete(outbound).where(outbound.c.id == queue_id))
            await _collect_garbage(conn, {row.message_id})
            return None, changed

        await self._change(work)

    async def release_leases(self, owner: str) -> int:
        """Give back what `owner` had claimed (a node starting again after a crash)."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(
                update(outbound)
                .where(outbound.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
            return int(result.rowcount or 0)

        return await self.db.write(work)

    async def list_outbound(self) -> list[QueuedRecipient]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(outbound).order_by(outbound.c.id))
            return [_queued(r) for r in rows]

    async def get_outbound(self, queue_id: int) -> QueuedRecipient:
        async with self.db.read() as conn:
            row = (await conn.execute(select(outbound).where(outbound.c.id == queue_id))).first()
        if row is None:
            raise errors.QueueItemNotFound(f"no queued recipient {queue_id}")
        return _queued(row)

    async def retry_outbound(self, queue_ids: Sequence[int] | None = None) -> int:
        """Make queued recipients due now (all of them when `queue_ids` is None)."""
        now = _now()

        async def work(conn: Conn) -> int:
            query = update(outbound).values(next_attempt_at=now)
            if queue_ids is not None:
                query = query.where(outbound.c.id.in_(list(queue_ids)))
            result = await conn.execute(query)
            return int(result.rowcount or 0)

        return await self.db.write(work)

    async def message_bytes(self, message_id: int) -> bytes:
        async with self.db.read() as conn:
            data = await conn.scalar(select(blobs.c.data).where(blobs.c.message_id == message_id))
        if data is None:
            raise errors.NotFound(f"no message {message_id}")
        return bytes(data)

    # ---------------------------------------------------------------- domains and DKIM keys

    async def add_domain(
        self, name: str, *, spf: str, dmarc: str, keys: Sequence[DomainKey]
    ) -> Domain:
        name = _domain_name(name)

        async def work(conn: Conn) -> Domain:
            if await conn.scalar(select(domains.c.id).where(domains.c.name == name)):
                raise errors.DomainExists(f"domain {name} already exists")
            domain_id = (
                await conn.execute(
                    insert(domains)
                    .values(name=name, spf=spf, dmarc=dmarc, created_at=_now())
                    .returning(domains.c.id)
                )
            ).scalar_one()
            await _insert_keys(conn, domain_id, keys)
            return await _domain(conn, name)

        return await self.db.write(work)

    async def get_domain(self, name: str) -> Domain:
        async with self.db.read() as conn:
            return await _domain(conn, _domain_name(name))

    async def list_domains(self) -> list[Domain]:
        async with self.db.read() as conn:
            names = list(await conn.scalars(select(domains.c.name).order_by(domains.c.name)))
            return [await _domain(conn, name) for name in names]

    async def delete_domain(self, name: str) -> None:
        name = _domain_name(name)

        async def work(conn: Conn) -> None:
            row_id = await _locked_domain_id(conn, name)
            count = await conn.scalar(
                select(func.count())
                .select_from(inboxes)
                .where(inboxes.c.address.endswith("@" + name, autoescape=True))
            )
            if count:
                raise errors.CannotModify(f"domain {name} still has {count} inbox(es)")
            await conn.execute(delete(domains).where(domains.c.id == row_id))

        await self.db.write(work)

    async def add_dkim_keys(self, name: str, keys: Sequence[DomainKey]) -> Domain:
        """Add new keys; they sign from now on, and the older ones stop signing but stay
        published (rotation: old signatures in transit still verify)."""
        name = _domain_name(name)

        async def work(conn: Conn) -> Domain:
            domain_id = await _locked_domain_id(conn, name)
            await conn.execute(
                update(dkim_keys).where(dkim_keys.c.domain_id == domain_id).values(active=False)
            )
            await _insert_keys(conn, domain_id, keys)
            return await _domain(conn, name)

        return await self.db.write(work)

    async def remove_dkim_key(self, name: str, selector: str) -> Domain:
        name = _domain_name(name)

        async def work(conn: Conn) -> Domain:
            domain = await _domain(conn, name)
            key = next((k for k in domain.keys if k.selector == selector), None)
            if key is None:
                raise errors.NotFound(f"domain {name} has no DKIM selector {selector!r}")
            if key.active:
                raise errors.CannotModify(
                    f"selector {selector} still signs mail; rotate the keys first"
                )
            await conn.execute(
                delete(dkim_keys).where(
                    dkim_keys.c.domain_id == domain.id, dkim_keys.c.selector == selector
                )
            )
            return await _domain(conn, name)

        return await self.db.write(work)

    async def is_local_domain(self, name: str) -> bool:
        """Whether mail for `name` is ours: a domain we host, or the domain of an inbox."""
        if not _storable(name):
            return False
        name = name.lower()
        async with self.db.read() as conn:
            if await conn.scalar(select(domains.c.id).where(domains.c.name == name)):
                return True
            return bool(
                await conn.scalar(
                    select(inboxes.c.id)
                    .where(inboxes.c.address.endswith("@" + name, autoescape=True))
                    .limit(1)
                )
            )

    # ---------------------------------------------------------------- allow and block lists

    async def add_sender_rule(
        self, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
    ) -> SenderRule:
        action, entry = _rule(action, entry)

        async def work(conn: Conn) -> SenderRule:
            owner = await _rule_owner(conn, inbox, pod)
            this_rule = _rules_select(owner).where(
                sender_rules.c.action == action, sender_rules.c.entry == entry
            )
            existing = (await conn.execute(this_rule)).first()
            if existing is not None:
                return _sender_rule(existing)
            await conn.execute(
                insert(sender_rules).values(
                    pod_id=owner.pod_id,
                    inbox_id=owner.inbox_id,
                    action=action,
                    entry=entry,
                    created_at=_now(),
                )
            )
            return _sender_rule((await conn.execute(this_rule)).one())

        return await self.db.write(work)

    async def remove_sender_rule(
        self, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
    ) -> None:
        action, entry = _rule(action, entry)

        async def work(conn: Conn) -> None:
            owner = await _rule_owner(conn, inbox, pod)
            ids = list(
                await conn.scalars(
                    select(sender_rules.c.id).where(
                        _owner_clause(owner),
                        sender_rules.c.action == action,
                        sender_rules.c.entry == entry,
                    )
                )
            )
            if not ids:
                raise errors.NotFound(f"no {action} entry {entry}")
            await conn.execute(delete(sender_rules).where(sender_rules.c.id.in_(ids)))

        await self.db.write(work)

    async def list_sender_rules(
        self, *, inbox: str | None = None, pod: str | None = None
    ) -> list[SenderRule]:
        async with self.db.read() as conn:
            owner = await _rule_owner(conn, inbox, pod)
            rows = await conn.execute(
                _rules_select(owner).order_by(sender_rules.c.action, sender_rules.c.entry)
            )
            return [_sender_rule(r) for r in rows]

    async def sender_rules_for(self, inbox_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
        """(action, entry) rules that apply to each inbox: its own and its pod's."""
        wanted = sorted(set(inbox_ids))
        found: dict[int, list[tuple[str, str]]] = {i: [] for i in wanted}
        if not wanted:
            return found
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(inboxes.c.id, sender_rules.c.action, sender_rules.c.entry)
                .select_from(
                    inboxes.join(
                        sender_rules,
                        or_(
                            sender_rules.c.inbox_id == inboxes.c.id,
                            sender_rules.c.pod_id == inboxes.c.pod_id,
                        ),
                    )
                )
                .where(inboxes.c.id.in_(wanted))
            )
            for inbox_id, action, entry in rows:
                found[inbox_id].append((action, entry))
        return found


# -------------------------------------------------------------------- helpers (SQL)


def _uid_filter(uids: UidRanges) -> tuple[ColumnElement[bool], Any]:
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


async def _pod_row(conn: Conn, name: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(pods).where(pods.c.name == name)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def _insert_pod(conn: Conn, name: str) -> Pod:
    now = _now()
    pod_id = (
        await conn.execute(insert(pods).values(name=name, created_at=now).returning(pods.c.id))
    ).scalar_one()
    return Pod(pod_id, name, now)


def _inbox_select() -> Any:
    return select(
        inboxes.c.id,
        inboxes.c.pod_id,
        pods.c.name.label("pod"),
        inboxes.c.address,
        inboxes.c.created_at,
    ).select_from(inboxes.join(pods, pods.c.id == inboxes.c.pod_id))


def _inbox(row: Row[Any]) -> Inbox:
    return Inbox(row.id, row.pod_id, row.pod, row.address, row.created_at)


def _key_select() -> Any:
    return select(
        api_keys.c.id,
        api_keys.c.pod_id,
        pods.c.name.label("pod"),
        api_keys.c.inbox_id,
        inboxes.c.address.label("inbox"),
        api_keys.c.label,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.secret_hash,
    ).select_from(
        api_keys.join(pods, pods.c.id == api_keys.c.pod_id).outerjoin(
            inboxes, inboxes.c.id == api_keys.c.inbox_id
        )
    )


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        pod_id=row.pod_id,
        pod=row.pod,
        inbox_id=row.inbox_id,
        inbox=row.inbox,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        secret_hash=row.secret_hash,
    )


async def _mailbox_row(conn: Conn, inbox_id: int, name: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(mailboxes).where(mailboxes.c.inbox_id == inbox_id, mailboxes.c.name == name)
        )
    ).first()


async def _mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox:
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))).first()
    if row is None:
        raise errors.MailboxNotFound("the mailbox no longer exists")
    return _mailbox(row)


async def _lock_inbox_shared(conn: Conn, inbox_id: int) -> None:
    """Make sure the inbox exists and stays until commit (delete_inbox locks it FOR UPDATE)."""
    found = await conn.scalar(
        select(inboxes.c.id)
        .where(inboxes.c.id == inbox_id)
        .with_for_update(read=True, key_share=True)
    )
    if found is None:
        raise errors.InboxNotFound("the inbox no longer exists")


async def _lock_mailbox(conn: Conn, mailbox_id: int) -> Mailbox:
    """Lock the mailbox row for the rest of the transaction (SQLite: the write lock already)."""
    row = (
        await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id).with_for_update())
    ).first()
    if row is None:
        raise errors.MailboxNotFound("the mailbox no longer exists")
    return _mailbox(row)


async def _bump_mailbox(
    conn: Conn,
    box: Mailbox,
    *,
    modseq: int,
    uidnext: int | None = None,
    keywords: str = "",
) -> None:
    values: dict[str, Any] = {"highestmodseq": modseq}
    if uidnext is not None:
        values["uidnext"] = uidnext
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


async def _insert_mailbox(conn: Conn, inbox_id: int, name: str, special_use: str | None) -> None:
    now = _now()
    # RFC 3501 §2.3.1.1: a re-created mailbox must never repeat an earlier UIDVALIDITY. Time-based
    # (so a database rebuilt from scratch does not repeat one either), and strictly rising even
    # within one second. One statement: atomic on PostgreSQL, the row lock held until commit.
    following = counters.c.value + 1
    uidvalidity = (
        await conn.execute(
            update(counters)
            .where(counters.c.name == "uidvalidity")
            .values(value=case((following > now, following), else_=now))
            .returning(counters.c.value)
        )
    ).scalar_one()
    if uidvalidity > MAX_UID:
        raise errors.LimitExceeded("UIDVALIDITY values are used up")
    await conn.execute(
        insert(mailboxes).values(
            inbox_id=inbox_id,
            name=name,
            special_use=special_use,
            uidvalidity=uidvalidity,
            uidnext=1,
            highestmodseq=1,
            subscribed=True,
            keywords="",
            created_at=now,
        )
    )


async def _insert_message(conn: Conn, db: Database, prepared: Prepared) -> int:
    """The message's id, storing its blob and index unless identical bytes are stored already."""
    # FOR SHARE: a concurrent _collect_garbage (FOR UPDATE) either finishes first, and we find
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
        "sent_date_tz": _tz_minutes(index.sent_date) if index.sent_date else 0,
        "created_at": _now(),
    }
    dialect_insert = sqlite.insert if db.is_sqlite else postgresql.insert
    message_id = await conn.scalar(
        dialect_insert(messages)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["hash"])
        .returning(messages.c.id)
    )
    if message_id is None:
        # A concurrent transaction stored the same bytes first (and has committed: ON CONFLICT
        # waited for it).
        return int(
            await conn.scalar(
                select(messages.c.id)
                .where(messages.c.hash == prepared.digest)
                .with_for_update(read=True)
            )
        )
    await conn.execute(insert(blobs).values(message_id=message_id, data=prepared.raw))
    return int(message_id)


async def _remove_entries(conn: Conn, mailbox_id: int, uids: list[int], modseq: int) -> None:
    for chunk in _chunks(uids, 500):
        await conn.execute(
            delete(entries).where(entries.c.mailbox_id == mailbox_id, entries.c.uid.in_(chunk))
        )
    now = _now()
    await conn.execute(
        insert(expunged),
        [{"mailbox_id": mailbox_id, "uid": u, "modseq": modseq, "expunged_at": now} for u in uids],
    )


async def _collect_garbage(conn: Conn, message_ids: set[int]) -> None:
    """Delete messages (and their blobs) that no entry or queued recipient refers to any more."""
    for chunk in _chunks(sorted(message_ids), 500):
        # Wait for transactions reusing these messages (see _insert_message); READ COMMITTED then
        # lets the next statement see the entries they committed. Decide once, delete by id:
        # deciding per statement could drop a blob and keep its message.
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
            await conn.execute(delete(messages).where(messages.c.id.in_(orphans)))


def _queued(row: Row[Any]) -> QueuedRecipient:
    return QueuedRecipient(
        id=row.id,
        message_id=row.message_id,
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
    )


async def _insert_keys(conn: Conn, domain_id: int, keys: Sequence[DomainKey]) -> None:
    if keys:
        await conn.execute(
            insert(dkim_keys),
            [
                {
                    "domain_id": domain_id,
                    "selector": k.selector,
                    "algorithm": k.algorithm,
                    "private_key": k.private_key,
                    "public_key": k.public_key,
                    "active": k.active,
                    "created_at": k.created_at,
                }
                for k in keys
            ],
        )


async def _locked_domain_id(conn: Conn, name: str) -> int:
    """The domain's row id, locked for the rest of the transaction; DomainNotFound if none."""
    row_id = await conn.scalar(select(domains.c.id).where(domains.c.name == name).with_for_update())
    if row_id is None:
        raise errors.DomainNotFound(f"no domain {name}")
    return int(row_id)


async def _domain(conn: Conn, name: str) -> Domain:
    row = (await conn.execute(select(domains).where(domains.c.name == name))).first()
    if row is None:
        raise errors.DomainNotFound(f"no domain {name}")
    keys = await conn.execute(
        select(dkim_keys).where(dkim_keys.c.domain_id == row.id).order_by(dkim_keys.c.id)
    )
    return Domain(
        id=row.id,
        name=row.name,
        spf=row.spf,
        dmarc=row.dmarc,
        created_at=row.created_at,
        keys=tuple(
            DomainKey(
                selector=k.selector,
                algorithm=k.algorithm,
                private_key=k.private_key,
                public_key=k.public_key,
                active=bool(k.active),
                created_at=k.created_at,
            )
            for k in keys
        ),
    )


@dataclass(frozen=True, slots=True)
class _Owner:
    """Whose allow/block list: one inbox, or a whole pod."""

    scope: str
    name: str
    inbox_id: int | None
    pod_id: int | None


async def _rule_owner(conn: Conn, inbox: str | None, pod: str | None) -> _Owner:
    if (inbox is None) == (pod is None):
        raise ValueError("a list belongs to exactly one of inbox or pod")
    if inbox is not None:
        address = _address(inbox)
        inbox_id = await conn.scalar(select(inboxes.c.id).where(inboxes.c.address == address))
        if inbox_id is None:
            raise errors.InboxNotFound(f"no inbox {address}")
        return _Owner("inbox", address, int(inbox_id), None)
    assert pod is not None
    row = await _pod_row(conn, _pod_name(pod))
    if row is None:
        raise errors.PodNotFound(f"no pod {pod}")
    return _Owner("pod", row.name, None, int(row.id))


def _owner_clause(owner: _Owner) -> ColumnElement[bool]:
    if owner.inbox_id is not None:
        return sender_rules.c.inbox_id == owner.inbox_id
    return sender_rules.c.pod_id == owner.pod_id


def _rules_select(owner: _Owner) -> Any:
    return select(
        sender_rules,
        literal(owner.scope).label("scope"),
        literal(owner.name).label("owner"),
    ).where(_owner_clause(owner))


def _sender_rule(row: Row[Any]) -> SenderRule:
    return SenderRule(
        id=row.id,
        scope=row.scope,
        owner=row.owner,
        action=row.action,
        entry=row.entry,
        created_at=row.created_at,
    )


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _mailbox(row: Row[Any]) -> Mailbox:
    return Mailbox(
        id=row.id,
        inbox_id=row.inbox_id,
        name=row.name,
        special_use=row.special_use,
        uidvalidity=row.uidvalidity,
        uidnext=row.uidnext,
        highestmodseq=row.highestmodseq,
        subscribed=bool(row.subscribed),
        keywords=_keywords(row.keywords),
    )


def _keywords(text_value: str) -> tuple[str, ...]:
    return tuple(text_value.split()) if text_value else ()


def _tz_minutes(when: datetime.datetime) -> int:
    offset = when.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def _datetime(epoch: int, tz_minutes: int) -> datetime.datetime:
    tz = datetime.timezone(datetime.timedelta(minutes=tz_minutes))
    return datetime.datetime.fromtimestamp(epoch, tz)


# -------------------------------------------------------------------- helpers (names)


def canonical_mailbox_name(name: str) -> str:
    """INBOX is case-insensitive, also as a parent ("inbox/x" is "INBOX/x"); nothing else is."""
    head, sep, rest = name.partition(HIERARCHY_DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def _storable(text_value: str) -> bool:
    """Whether a string can be stored and compared at all (PostgreSQL refuses NUL, and UTF-8
    cannot encode lone surrogates such as surrogateescape leaves behind)."""
    if "\x00" in text_value:
        return False
    try:
        text_value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _existing_mailbox_name(name: str) -> str:
    """The canonical form of a name to look up; one that create would refuse cannot exist."""
    name = canonical_mailbox_name(name)
    if not _storable(name):
        raise _no_mailbox(name.encode("utf-8", "replace").decode())
    return name


def _children_of(name: str) -> ColumnElement[bool]:
    """Mailboxes below `name`. Not LIKE: SQLite's LIKE ignores case, and names other than INBOX
    are case-sensitive."""
    prefix = name + HIERARCHY_DELIMITER
    return func.substr(mailboxes.c.name, 1, len(prefix)) == prefix


_SYSTEM_FLAG_NAMES = {name.upper(): name for name in FLAG_BITS}


def _checked_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Flags with system flags in their canonical case, or InvalidName. Keywords are stored
    space-separated, so none may hold a space or a control character, or be empty; other
    backslash names (\\Recent, \\Foo) are not flags a client can set (RFC 3501 §2.3.2)."""
    checked = []
    for flag in flags:
        if flag.startswith("\\"):
            system = _SYSTEM_FLAG_NAMES.get(flag.upper())
            if system is None:
                raise errors.InvalidName(f"{flag!r} cannot be set")
            checked.append(system)
            continue
        if (
            not flag
            or len(flag) > MAX_KEYWORD
            or not _storable(flag)
            or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in flag)
        ):
            raise errors.InvalidName(f"{flag!r} is not a valid flag")
        checked.append(flag)
    return tuple(checked)


def _valid_key_id(key_id: str) -> bool:
    return 0 < len(key_id) <= MAX_KEY_ID and _storable(key_id) and key_id.isprintable()


def _valid_mailbox_name(name: str) -> str:
    name = canonical_mailbox_name(name)
    if not _storable(name):
        raise errors.InvalidName("a mailbox name must be valid UTF-8 without NUL")
    if not name or len(name.encode()) > MAX_MAILBOX_NAME:
        raise errors.InvalidName("a mailbox name must be 1 to 1000 bytes long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise errors.InvalidName("a mailbox name cannot contain control characters")
    parts = name.split(HIERARCHY_DELIMITER)
    if any(not p for p in parts):
        raise errors.InvalidName(f"{name!r} has an empty level in its hierarchy")
    if any(c in name for c in "*%"):
        raise errors.InvalidName("a mailbox name cannot contain the wildcards * or %")
    return name


def _no_mailbox(name: str) -> errors.MailboxNotFound:
    hint = "" if name == INBOX else " (mailbox names other than INBOX are case-sensitive)"
    return errors.MailboxNotFound(f'Mailbox "{name}" does not exist{hint}')


def _domain_name(name: str) -> str:
    try:
        return normalize_address(f"postmaster@{name}").partition("@")[2]
    except InvalidAddress:
        raise errors.InvalidName(f"{name!r} is not a valid domain name") from None


def _rule(action: str, entry: str) -> tuple[str, str]:
    if action not in ("allow", "block"):
        raise errors.InvalidName(f"{action!r}: a rule is allow or block")
    entry = entry.strip().lower()
    candidate = entry if "@" in entry else f"postmaster@{entry}"
    try:
        normalize_address(candidate)
    except InvalidAddress:
        raise errors.InvalidName(f"{entry!r} is neither an address nor a domain") from None
    return action, entry


def _pod_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255 or not _storable(name) or any(ord(c) < 0x21 for c in name):
        raise errors.InvalidName(f"{name!r} is not a valid pod name")
    return name


def _address(address: str) -> str:
    try:
        return normalize_address(address)
    except InvalidAddress as exc:
        raise errors.InvalidName(str(exc)) from None
