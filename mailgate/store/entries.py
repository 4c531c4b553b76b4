"""Message entries: a message in a mailbox, with its UID, flags and MODSEQ. Filing new ones,
fetching them, changing their flags, copying, moving and expunging them, and telling a session
what changed since the MODSEQ it knows."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.events import Change, FlagsChanged, MessagesAdded, MessagesExpunged
from mailgate.store.ingest import Filing
from mailgate.store.labelling import LabelWatch
from mailgate.store.models import (
    FIELD_COLUMNS,
    blobs,
    body_texts,
    entries,
    expunged,
    header_texts,
    mailboxes,
    messages,
    send_receipts,
    threads,
)
from mailgate.store.names import checked_flags
from mailgate.store.quota import check_room
from mailgate.store.records import (
    DELETED,
    FLAG_BITS,
    MAX_FILTER_RANGES,
    RECEIPT_LIFETIME,
    AllOf,
    AnyOf,
    BodyHas,
    BodyWhole,
    Changes,
    CopyResult,
    EntryFilter,
    EntryState,
    EveryEntry,
    FetchRow,
    FieldHas,
    FlagUpdate,
    HasFlag,
    HeaderHas,
    HeadersHave,
    ModSeqFrom,
    NoneOf,
    Parcel,
    Placed,
    QuotaRule,
    SendReceipt,
    SizeAbove,
    SizeBelow,
    Target,
    UidIn,
    join_flags,
    split_flags,
)
from mailgate.store.rows import (
    MAX_UID,
    UidRanges,
    bump_mailbox,
    collect_garbage,
    keywords,
    lock_mailbox,
    now,
    remove_entries,
    to_datetime,
    uid_filter,
)

FETCH_COLUMNS: dict[str, ColumnElement[Any]] = {
    "envelope": messages.c.envelope,
    "body": messages.c.body,
    "bodystructure": messages.c.bodystructure,
    "header": messages.c.header,
    "parts": messages.c.parts,
    "sent_date": messages.c.sent_date,
    "sent_date_tz": messages.c.sent_date_tz,
    "msgid": messages.c.msgid,
    "in_reply_to": messages.c.in_reply_to,
    "references": messages.c.refs,
    "blob_id": entries.c.message_id,
    "saved_date": func.coalesce(entries.c.saved_at, entries.c.internaldate),
    "preview": messages.c.preview,
}


class Entries(StoreBase):
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

    async def deliver(
        self, parcels: Sequence[Parcel], *, receipt: SendReceipt | None = None
    ) -> list[list[Placed]]:
        """File messages in mailboxes and queue them for remote recipients, all in one
        transaction: a submission's Sent copy, every local recipient's INBOX entry and its
        outbound queue rows share one blob. Returns, per parcel, one Placed per target.

        With a `receipt`, its key is remembered in the same transaction; AlreadySent, and
        nothing filed, if the inbox used that key within RECEIPT_LIFETIME. Two sends with one
        key at once: the second's insert fails, its transaction is retried and finds the first.
        """
        filing = await Filing.of(parcels)

        async def work(conn: Conn) -> tuple[dict[tuple[int, int], Placed], list[Change]]:
            if receipt is not None:
                await _keep_receipt(conn, receipt)
            return await filing.file(conn, self.db, self.inbox_quota)

        size = sum(len(p.raw) for p in parcels)
        return filing.placed_lists(await self._change(work, size))

    async def replace(
        self, mailbox_id: int, uids: Sequence[int], raw: bytes, *, flags: Sequence[str] = ()
    ) -> Placed:
        """A new version of a message in place of its entries `uids` (a draft saved again):
        the new entry is filed and the old ones expunged in one transaction, at one MODSEQ, so
        neither a reader nor a restart ever finds both versions, or neither. NotFound, and
        nothing filed, when one of the old entries is gone."""
        filing = await Filing.of([Parcel(raw, (Target(mailbox_id, tuple(flags)),))])
        wanted = sorted(set(uids))

        async def work(conn: Conn) -> tuple[dict[tuple[int, int], Placed], list[Change]]:
            box = await lock_mailbox(conn, mailbox_id)
            old = (
                await conn.execute(
                    select(entries.c.uid, entries.c.message_id).where(
                        entries.c.mailbox_id == mailbox_id, entries.c.uid.in_(wanted)
                    )
                )
            ).all()
            if len(old) != len(wanted):
                raise errors.NotFound("the message to replace is no longer there")
            placed, events = await filing.file(conn, self.db, self.inbox_quota)
            # Filed first, so the new version joins the old one's thread.
            modseq = box.highestmodseq + 1
            await remove_entries(conn, mailbox_id, wanted, modseq)
            await collect_garbage(conn, {r.message_id for r in old})
            return placed, [*events, MessagesExpunged(box.inbox_id, mailbox_id, modseq)]

        return filing.placed_lists(await self._change(work, len(raw)))[0][0]

    # ---------------------------------------------------------------- messages out

    async def matching_entries(
        self, mailbox_id: int, where: EntryFilter, up_to: int
    ) -> tuple[list[tuple[int, int]], int]:
        """(UID, MODSEQ) of the mailbox's entries that pass `where`, by UID: a search of
        flags, sizes, UIDs, MODSEQs and indexed text done by the database; and how many
        entries up to UID `up_to` are there (fewer than a session numbers: some it still
        numbers were expunged meanwhile, and could not be searched)."""
        query = self._filtered(mailbox_id, where, where, sizes=_reads_size(where))
        found, present = await self._run_filtered(mailbox_id, query, up_to)
        return [(uid, modseq) for uid, modseq, _, _ in found], present

    async def candidate_entries(
        self, mailbox_id: int, maybe: EntryFilter, surely: EntryFilter, up_to: int
    ) -> tuple[list[tuple[int, int, int, bool]], int]:
        """Like matching_entries for a search the database can answer only in part: the
        entries that pass `maybe` (a superset of the matches), as (UID, MODSEQ, size, whether
        they pass `surely` too, a subset of them), by UID; the others still need a look."""
        query = self._filtered(mailbox_id, maybe, surely, sizes=True)
        return await self._run_filtered(mailbox_id, query, up_to)

    def _filtered(
        self, mailbox_id: int, maybe: EntryFilter, surely: EntryFilter, *, sizes: bool
    ) -> Any:
        """(UID, MODSEQ, size or 0, passes `surely`) of the entries that pass `maybe`."""
        sqlite = self.db.is_sqlite
        sure: ColumnElement[Any] = true()
        if surely != maybe:
            sure = case((_entry_filter(surely, sqlite), true()), else_=false())
        source: Any = entries
        size: ColumnElement[Any] = literal(0)
        if sizes:
            source = source.join(messages, messages.c.id == entries.c.message_id)
            size = messages.c.size
        reads = _reads(maybe) | _reads(surely)
        # Every stored message has its texts (ingest files them, migration 0021 made them).
        if header_texts in reads:
            source = source.join(header_texts, header_texts.c.message_id == entries.c.message_id)
        if body_texts in reads:
            source = source.join(body_texts, body_texts.c.message_id == entries.c.message_id)
        return (
            select(entries.c.uid, entries.c.modseq, size, sure)
            .select_from(source)
            .where(entries.c.mailbox_id == mailbox_id, _entry_filter(maybe, sqlite))
            .order_by(entries.c.uid)
        )

    async def _run_filtered(
        self, mailbox_id: int, query: Any, up_to: int
    ) -> tuple[list[tuple[int, int, int, bool]], int]:
        present = select(func.count()).where(
            entries.c.mailbox_id == mailbox_id, entries.c.uid <= up_to
        )

        async def read(conn: Conn) -> tuple[list[tuple[int, int, int, bool]], int]:
            found = [
                (uid, modseq, size, bool(sure))
                for uid, modseq, size, sure in await conn.execute(query)
            ]
            return found, int(await conn.scalar(present) or 0)

        return await self.db.run_read(read, snapshot=True)

    async def sizes(self, mailbox_id: int, uids: UidRanges) -> list[tuple[int, int]]:
        """(UID, size) of the entries in `uids` (inclusive ranges), by UID: what a FETCH of
        message bytes plans its batches by."""
        where, post_filter = uid_filter(uids)
        query = (
            select(entries.c.uid, messages.c.size)
            .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(entries.c.uid)
        )

        async def read(conn: Conn) -> list[tuple[int, int]]:
            return [(uid, size) for uid, size in await conn.execute(query)]

        rows = await self.db.run_read(read)
        return rows if post_filter is None else [row for row in rows if post_filter(row[0])]

    async def fetch(
        self,
        mailbox_id: int,
        uids: UidRanges,
        columns: Iterable[str] = (),
    ) -> list[FetchRow]:
        """Entries in `uids` (inclusive ranges) with the requested extra columns, by UID."""
        wanted = frozenset(columns)
        selected: list[ColumnElement[Any]] = [
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
        if "thread" in wanted:
            selected.append(threads.c.public_id)
            source = source.outerjoin(threads, threads.c.id == entries.c.thread_id)
            extra.append("thread")
        if "data" in wanted:
            selected.append(blobs.c.data)
            source = source.join(blobs, blobs.c.message_id == entries.c.message_id)
            extra.append("data")
        where, post_filter = uid_filter(uids)
        query = (
            select(*selected)
            .select_from(source)
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(entries.c.uid)
        )

        async def read(conn: Conn) -> list[Any]:
            return list((await conn.execute(query)).all())

        rows = await self.db.run_read(read)
        result = []
        for row in rows:
            if post_filter is not None and not post_filter(row[0]):
                continue
            if not extra:  # SEARCH of flags, UIDs and sizes: the common case, kept lean
                result.append(
                    FetchRow(
                        row[0],
                        join_flags(row[1], row[2]),
                        row[3],
                        to_datetime(row[4], row[5]),
                        row[6],
                    )
                )
                continue
            values: dict[str, Any] = dict(zip(extra, row[7:], strict=True))
            if "sent_date" in values:
                sent, tz = values.pop("sent_date"), values.pop("sent_date_tz")
                values["sent_date"] = None if sent is None else to_datetime(sent, tz)
            if "saved_date" in values:
                values["saved_date"] = to_datetime(values["saved_date"], 0)
            if "references" in values:
                values["references"] = tuple(values["references"].split())
            result.append(
                FetchRow(
                    uid=row[0],
                    flags=join_flags(row[1], row[2]),
                    modseq=row[3],
                    internaldate=to_datetime(row[4], row[5]),
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
        change_bits, change_kw = split_flags(checked_flags(flags))
        change_keywords = set(change_kw.split())

        async def work(conn: Conn) -> tuple[FlagUpdate, list[Change]]:
            return await change_flags(
                conn, mailbox_id, uids, mode, change_bits, change_keywords, unchangedsince
            )

        return await self._change(work)

    async def expunge(self, mailbox_id: int, uids: UidRanges | None = None) -> list[int]:
        """Remove the \\Deleted messages (only those in `uids`, if given); returns their UIDs."""
        deleted_bit = FLAG_BITS[DELETED]

        async def work(conn: Conn) -> tuple[list[int], list[Change]]:
            box = await lock_mailbox(conn, mailbox_id)
            query = select(entries.c.uid, entries.c.message_id).where(
                entries.c.mailbox_id == mailbox_id,
                entries.c.flags.op("&")(deleted_bit) != 0,
            )
            post_filter = None
            if uids is not None:
                where, post_filter = uid_filter(uids)
                query = query.where(where)
            rows = [
                r
                for r in (await conn.execute(query.order_by(entries.c.uid))).all()
                if post_filter is None or post_filter(r.uid)
            ]
            if not rows:
                return [], []
            modseq = box.highestmodseq + 1
            gone = [r.uid for r in rows]
            watch = await LabelWatch.of(conn, box.inbox_id, {r.message_id for r in rows})
            await remove_entries(conn, mailbox_id, gone, modseq)
            await watch.record(conn)
            await bump_mailbox(conn, box, modseq=modseq)
            await collect_garbage(conn, {r.message_id for r in rows})
            return gone, [MessagesExpunged(box.inbox_id, mailbox_id, modseq)]

        return await self._change(work)

    async def copy(self, source_id: int, uids: UidRanges, dest_id: int) -> CopyResult:
        return await self._copy(source_id, uids, dest_id, move=False)

    async def move(self, source_id: int, uids: UidRanges, dest_id: int) -> CopyResult:
        """RFC 6851 MOVE: copy and expunge from the source, atomically."""
        return await self._copy(source_id, uids, dest_id, move=True)

    async def _copy(
        self, source_id: int, uids: UidRanges, dest_id: int, *, move: bool
    ) -> CopyResult:
        where, post_filter = uid_filter(uids)

        async def work(conn: Conn) -> tuple[CopyResult, list[Change]]:
            boxes = {}
            for mailbox_id in sorted({source_id, dest_id}):
                boxes[mailbox_id] = await lock_mailbox(conn, mailbox_id)
            rows = [
                r
                for r in (
                    await conn.execute(
                        select(entries, messages.c.size)
                        .select_from(entries.join(messages, messages.c.id == entries.c.message_id))
                        .where(entries.c.mailbox_id == source_id, where)
                        .order_by(entries.c.uid)
                    )
                ).all()
                if post_filter is None or post_filter(r.uid)
            ]
            dest = boxes[dest_id]
            if not rows:
                return CopyResult(dest.uidvalidity, [], []), []
            if dest.uidnext + len(rows) - 1 > MAX_UID:
                raise errors.LimitExceeded("the destination mailbox has used up its UIDs")
            copied_size = sum(r.size for r in rows)
            if not move or boxes[source_id].inbox_id != dest.inbox_id:
                # A MOVE within one inbox takes no more room; anything else must fit.
                await check_room(
                    conn, {dest.inbox_id: (copied_size, QuotaRule.FIT)}, self.inbox_quota
                )
            events: list[Change] = []
            # Mailboxes of one inbox only relabel; copied to another inbox, a message is new
            # there (and leaves this one on a move: deleted, not relabelled).
            same_inbox = boxes[source_id].inbox_id == dest.inbox_id
            watch = await LabelWatch.of(
                conn, dest.inbox_id, {r.message_id for r in rows} if same_inbox else ()
            )
            dest_modseq = dest.highestmodseq + 1
            dest_uids = list(range(dest.uidnext, dest.uidnext + len(rows)))
            saved_at = now()
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
                        # Mailboxes of one inbox: the copy stays in its conversation.
                        "thread_id": r.thread_id,
                        # RFC 8514 §3: a copy (or a move) is saved into its mailbox now.
                        "saved_at": saved_at,
                    }
                    for r, new_uid in zip(rows, dest_uids, strict=True)
                ],
            )
            copied_keywords = " ".join(sorted({k for r in rows for k in r.keywords.split()}))
            if move:
                source = boxes[source_id]
                # MOVE into the same mailbox: the old entries go, the new ones stay, at one MODSEQ.
                source_modseq = dest_modseq if source_id == dest_id else source.highestmodseq + 1
                await remove_entries(conn, source_id, [r.uid for r in rows], source_modseq)
                if source_id != dest_id:
                    await bump_mailbox(conn, source, modseq=source_modseq)
                events.append(MessagesExpunged(source.inbox_id, source_id, source_modseq))
            await bump_mailbox(
                conn,
                dest,
                uidnext=dest_uids[-1] + 1,
                modseq=dest_modseq,
                keywords=copied_keywords,
                added_size=copied_size,
            )
            events.append(MessagesAdded(dest.inbox_id, dest_id, dest_modseq))
            await watch.record(conn)
            return CopyResult(dest.uidvalidity, [r.uid for r in rows], dest_uids), events

        return await self._change(work)

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        """Everything that changed in a mailbox after `modseq`: new and re-flagged entries,
        and expunged UIDs. A deleted mailbox answers with exists=False.

        Callers asking the same while no event was published in between share one read: it
        began after every commit they have heard of, so it answers for each of them. (A new
        message on a mailbox watched by N sessions costs one read, not N.)"""
        key = (mailbox_id, modseq, self.bus.published)
        shared = self._catch_ups.get(key)
        if shared is None:
            reading = asyncio.ensure_future(self._changes_since(mailbox_id, modseq))
            shared = self._catch_ups[key] = (reading, [])
            reading.add_done_callback(lambda done: self._read_done(key, done))
        # A future of its own per caller (cheaper than asyncio.shield, the same effect): one
        # that goes away does not cancel the read the others wait for.
        waiter: asyncio.Future[Changes] = asyncio.get_running_loop().create_future()
        shared[1].append(waiter)
        return await waiter

    def _read_done(self, key: tuple[int, int, int], done: asyncio.Task[Changes]) -> None:
        _, waiters = self._catch_ups.pop(key)
        failed = None if done.cancelled() else done.exception()
        for waiter in waiters:
            if waiter.done():
                continue
            if done.cancelled():
                waiter.cancel()
            elif failed is not None:
                waiter.set_exception(failed)
            else:
                waiter.set_result(done.result())

    async def _changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        async def read(conn: Conn) -> Changes:
            row = (
                await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))
            ).first()
            if row is None:
                return Changes(modseq, 0, (), [], [], exists=False)
            if row.highestmodseq <= modseq:
                return Changes(
                    row.highestmodseq,
                    row.uidnext,
                    keywords(row.keywords),
                    [],
                    [],
                    recent_uid=row.recent_uid,
                )
            changed = [
                EntryState(uid, join_flags(bits, keywords_text), entry_modseq)
                for uid, bits, keywords_text, entry_modseq in await conn.execute(
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
                row.highestmodseq,
                row.uidnext,
                keywords(row.keywords),
                changed,
                gone,
                present=present,
                recent_uid=row.recent_uid,
            )

        return await self.db.run_read(read, snapshot=True)

    async def recall_receipt(self, inbox_id: int, key: str) -> tuple[str, str] | None:
        """The Message-ID and request fingerprint of the inbox's send with idempotency `key`,
        if it was made within RECEIPT_LIFETIME."""
        query = select(send_receipts.c.message_id, send_receipts.c.fingerprint).where(
            send_receipts.c.inbox_id == inbox_id,
            send_receipts.c.key == key,
            send_receipts.c.created_at >= now() - RECEIPT_LIFETIME,
        )
        async with self.db.read() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else (found.message_id, found.fingerprint)

    async def prune_receipts(self, before: int) -> int:
        """Forget the idempotency keys of sends made before `before`; returns how many."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(
                delete(send_receipts).where(send_receipts.c.created_at < before)
            )
            return int(result.rowcount or 0)

        return await self.db.write(work)

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


async def change_flags(
    conn: Conn,
    mailbox_id: int,
    uids: UidRanges,
    mode: str,
    change_bits: int,
    change_keywords: set[str],
    unchangedsince: int | None = None,
) -> tuple[FlagUpdate, list[Change]]:
    """STORE within a transaction: mode "+" adds, "-" removes, "" replaces; one MODSEQ for the
    whole change, and the event that tells the mailbox's sessions."""
    where, post_filter = uid_filter(uids)
    box = await lock_mailbox(conn, mailbox_id)
    rows = (
        await conn.execute(
            select(
                entries.c.uid,
                entries.c.flags,
                entries.c.keywords,
                entries.c.modseq,
                entries.c.message_id,
            )
            .where(entries.c.mailbox_id == mailbox_id, where)
            .order_by(entries.c.uid)
        )
    ).all()
    modseq = box.highestmodseq + 1
    states: list[EntryState] = []
    modified: list[int] = []
    updates: list[dict[str, Any]] = []
    touched: set[int] = set()
    for uid, bits, keywords_text, old_modseq, blob_id in rows:
        if post_filter is not None and not post_filter(uid):
            continue
        if unchangedsince is not None and old_modseq > unchangedsince:
            modified.append(uid)
            continue
        kw = set(keywords_text.split())
        if mode == "+":
            new_bits, new_kw = bits | change_bits, kw | change_keywords
        elif mode == "-":
            new_bits, new_kw = bits & ~change_bits, kw - change_keywords
        else:
            new_bits, new_kw = change_bits, set(change_keywords)
        new_keywords = " ".join(sorted(new_kw))
        if new_bits == bits and new_keywords == keywords_text:
            states.append(EntryState(uid, join_flags(bits, keywords_text), old_modseq))
            continue
        updates.append({"b_uid": uid, "b_flags": new_bits, "b_keywords": new_keywords})
        touched.add(blob_id)
        states.append(EntryState(uid, join_flags(new_bits, new_keywords), modseq))
    if not updates:
        return FlagUpdate(states, modified, box.highestmodseq), []
    watch = await LabelWatch.of(conn, box.inbox_id, touched)
    await conn.execute(
        update(entries)
        .where(
            entries.c.mailbox_id == mailbox_id,
            entries.c.uid == bindparam("b_uid"),
        )
        .values(flags=bindparam("b_flags"), keywords=bindparam("b_keywords"), modseq=modseq),
        updates,
    )
    await watch.record(conn)
    added = "" if mode == "-" else " ".join(sorted(change_keywords))
    await bump_mailbox(conn, box, modseq=modseq, keywords=added)
    return FlagUpdate(states, modified, modseq), [FlagsChanged(box.inbox_id, mailbox_id, modseq)]


async def _keep_receipt(conn: Conn, receipt: SendReceipt) -> None:
    mine = (send_receipts.c.inbox_id == receipt.inbox_id) & (send_receipts.c.key == receipt.key)
    found = (
        await conn.execute(
            select(
                send_receipts.c.message_id, send_receipts.c.fingerprint, send_receipts.c.created_at
            ).where(mine)
        )
    ).first()
    current = now()
    if found is not None and found.created_at >= current - RECEIPT_LIFETIME:
        raise errors.AlreadySent(found.message_id, found.fingerprint)
    if found is not None:  # expired, not yet pruned: the key is free again
        await conn.execute(delete(send_receipts).where(mine))
    await conn.execute(
        insert(send_receipts).values(
            inbox_id=receipt.inbox_id,
            key=receipt.key,
            fingerprint=receipt.fingerprint,
            message_id=receipt.message_id,
            created_at=current,
        )
    )


def _entry_filter(where: EntryFilter, sqlite: bool) -> ColumnElement[bool]:
    match where:
        case EveryEntry():
            return true()
        case HasFlag(flag=flag):
            bit = FLAG_BITS.get(flag)
            if bit is not None:
                return entries.c.flags.op("&")(bit) != 0
            # Keywords are atoms (ASCII, no backslash) kept space-separated: a whole word, any case.
            word = flag.lower().replace("_", "\\_")
            spaced = literal(" ") + func.lower(entries.c.keywords) + literal(" ")
            return spaced.like(f"% {word} %", escape="\\")
        case SizeAbove(size=size):
            return messages.c.size > size
        case SizeBelow(size=size):
            return messages.c.size < size
        case UidIn(ranges=ranges):
            if len(ranges) > MAX_FILTER_RANGES:
                raise ValueError(f"{len(ranges)} UID ranges: at most {MAX_FILTER_RANGES}")
            terms = [entries.c.uid.between(lo, min(hi, MAX_UID)) for lo, hi in ranges]
            return or_(false(), *terms)
        case ModSeqFrom(modseq=modseq):
            return entries.c.modseq >= modseq
        case FieldHas(field=field, needle=needle):
            column = header_texts.c[FIELD_COLUMNS[field]]
            # Each value is stored with "\n" in front: "" is a field that is not there.
            return column != "" if not needle else _holds(column, needle, sqlite)
        case HeadersHave(needle=needle):
            return _holds(header_texts.c.headers, needle, sqlite)
        case HeaderHas(needle=needle):
            return _holds(header_texts.c.header, needle, sqlite)
        case BodyHas(needle=needle):
            return _holds(body_texts.c.body, needle, sqlite)
        case BodyWhole():
            return body_texts.c.whole.is_(True)
        case AllOf(filters=filters):
            return and_(true(), *(_entry_filter(f, sqlite) for f in filters))
        case AnyOf(filters=filters):
            return or_(false(), *(_entry_filter(f, sqlite) for f in filters))
        case NoneOf(filter=inner):
            return not_(_entry_filter(inner, sqlite))
    raise TypeError(f"not an entry filter: {type(where).__name__}")


def _holds(column: Any, needle: str, sqlite: bool) -> ColumnElement[bool]:
    """`needle` is a substring of `column`: instr/strpos compare characters exactly, where LIKE
    would need escaping and on SQLite folds ASCII case."""
    return (func.instr if sqlite else func.strpos)(column, needle) > 0


def _reads(where: EntryFilter) -> set[Any]:
    """The text tables a filter reads."""
    if isinstance(where, FieldHas | HeadersHave | HeaderHas):
        return {header_texts}
    if isinstance(where, BodyHas | BodyWhole):
        return {body_texts}
    if isinstance(where, AllOf | AnyOf):
        return set().union(*(_reads(f) for f in where.filters))
    return _reads(where.filter) if isinstance(where, NoneOf) else set()


def _reads_size(where: EntryFilter) -> bool:
    if isinstance(where, SizeAbove | SizeBelow):
        return True
    if isinstance(where, AllOf | AnyOf):
        return any(_reads_size(f) for f in where.filters)
    return isinstance(where, NoneOf) and _reads_size(where.filter)
