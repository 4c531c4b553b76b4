"""The event outbox: what the HTTP API reports (message.received, message.sent, ...), one row per
event, written by the transaction that makes the change it reports. A change that rolls back
leaves no event; a change that commits always has its event.

Readers (webhooks, websockets, listings) follow the outbox by `seq`, so seq order must be commit
order: a reader that has seen seq 7 must never later find a 6 committed after it. SQLite has one
writer at a time, so it is. On PostgreSQL two transactions could take seqs in one order and
commit in the other, so a writer takes a transaction-level advisory lock right before it inserts
its events and keeps it until it commits: event writers commit one after another, and only for
the last moments of their transactions.

After the commit, `EventsRecorded` on the event bus (and through NOTIFY, on every node) tells
readers to look.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, text

from mailgate.store.base import StoreBase
from mailgate.store.database import Conn, Database
from mailgate.store.events import Change, EventsRecorded
from mailgate.store.models import events, inboxes, pods, threads
from mailgate.store.records import SENT_EVENT, OutboxEvent
from mailgate.store.rows import now

# Any constant, the same on every node: the advisory lock that orders event writers.
_ORDER_LOCK = 0x6D61696C67617465  # "mailgate"


@dataclass(slots=True)
class Pending:
    """An event to write, inside the transaction of its change."""

    event_type: str
    inbox_id: int | None = None  # resolved to the inbox's and its pod's public ids
    pod: str | None = None  # for events of no inbox (a domain's)
    blob_id: int | None = None
    message_id: str | None = None
    thread: int | None = None  # the thread's row id, resolved to its public id
    detail: dict[str, Any] = field(default_factory=dict)


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


async def record(conn: Conn, db: Database, pending: Sequence[Pending]) -> list[Change]:
    """Write `pending` into the outbox; the bus change that announces them once committed."""
    if not pending:
        return []
    names = await _inbox_names(conn, db, {p.inbox_id for p in pending if p.inbox_id is not None})
    public = await _thread_ids(conn, {p.thread for p in pending if p.thread is not None})
    if not db.is_sqlite:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ORDER_LOCK})
    created = now()
    rows = []
    for p in pending:
        pod, inbox = names.get(p.inbox_id, (p.pod, None))
        rows.append(
            {
                "event_id": new_event_id(),
                "event_type": p.event_type,
                "pod": pod,
                "inbox": inbox,
                "blob_id": p.blob_id,
                "message_id": p.message_id,
                "thread_id": public.get(p.thread) if p.thread is not None else None,
                "detail": json.dumps(p.detail, separators=(",", ":")),
                "created_at": created,
            }
        )
    # One statement for all of them (a multi-row INSERT ... RETURNING).
    seqs = await conn.scalars(events.insert().returning(events.c.seq), rows)
    last = max(int(seq) for seq in seqs)
    return [EventsRecorded(0, 0, last)]


async def _inbox_names(
    conn: Conn, db: Database, inbox_ids: set[int]
) -> dict[int | None, tuple[str, str]]:
    """Inbox id -> (its pod's name, its address). Neither ever changes for an id (ids are
    never reused), so they are remembered per database."""
    known = db.facts.setdefault("inbox names", {})
    missing = sorted(i for i in inbox_ids if i not in known)
    if missing:
        rows = await conn.execute(
            select(inboxes.c.id, pods.c.name, inboxes.c.address)
            .join(pods, pods.c.id == inboxes.c.pod_id)
            .where(inboxes.c.id.in_(missing))
        )
        for r in rows:
            known[r.id] = (r.name, r.address)
    return {i: known[i] for i in inbox_ids if i in known}


async def _thread_ids(conn: Conn, thread_ids: set[int]) -> dict[int, str]:
    if not thread_ids:
        return {}
    rows = await conn.execute(
        select(threads.c.id, threads.c.public_id).where(threads.c.id.in_(sorted(thread_ids)))
    )
    return {r.id: r.public_id for r in rows}


def _event(row: Any) -> OutboxEvent:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {}
    return OutboxEvent(
        seq=int(row.seq),
        event_id=row.event_id,
        event_type=row.event_type,
        pod=row.pod,
        inbox=row.inbox,
        blob_id=row.blob_id,
        message_id=row.message_id,
        thread_id=row.thread_id,
        detail=detail if isinstance(detail, dict) else {},
        created_at=int(row.created_at),
    )


class Outbox(StoreBase):
    async def last_event_seq(self) -> int:
        """The seq of the newest event (0: none yet): where a new reader starts."""
        async with self.db.read() as conn:
            found = await conn.scalar(select(func.max(events.c.seq)))
            return int(found) if found is not None else 0

    async def events_after(
        self,
        seq: int,
        *,
        limit: int = 500,
        inboxes: Iterable[str] | None = None,
        pods: Iterable[str] | None = None,
        event_types: Iterable[str] | None = None,
    ) -> list[OutboxEvent]:
        """Events committed after `seq`, oldest first; with `inboxes` and `pods`, those of any
        of the inboxes or pods named (either filter alone: only it); with `event_types`, only
        those types."""
        query = select(events).where(events.c.seq > seq)
        query = _scoped(query, inboxes, pods, event_types)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(events.c.seq).limit(limit))
            return [_event(r) for r in rows]

    async def events_page(
        self,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int,
        ascending: bool = False,
        inboxes: Iterable[str] | None = None,
        pods: Iterable[str] | None = None,
        event_types: Iterable[str] | None = None,
    ) -> list[OutboxEvent]:
        """A page of events, newest first (or oldest first with `ascending`), strictly
        before (after) the seq given: what a listing pages through."""
        query = _scoped(select(events), inboxes, pods, event_types)
        if before is not None:
            query = query.where(events.c.seq < before)
        if after is not None:
            query = query.where(events.c.seq > after)
        order = events.c.seq.asc() if ascending else events.c.seq.desc()
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(order).limit(limit))
            return [_event(r) for r in rows]

    async def sent_in_window(self, inbox: str, since: int, limit: int) -> int | None:
        """When `inbox` sent the `limit`-th newest of its messages sent at or after `since`
        (Unix seconds): None while it sent fewer. (When it sent its limit in a window.)"""
        query = (
            select(events.c.created_at)
            .where(
                events.c.inbox == inbox,
                events.c.created_at >= since,
                events.c.event_type == SENT_EVENT,
            )
            .order_by(events.c.created_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        async with self.db.read() as conn:
            found = await conn.scalar(query)
            return int(found) if found is not None else None

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(events).where(events.c.event_id == event_id))).first()
            return _event(row) if row is not None else None

    async def record_events(self, pending: Sequence[Pending]) -> None:
        """Events of no other change (a domain found verified is recorded with its change)."""

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            return None, await record(conn, self.db, pending)

        await self._change(work)

    async def prune_events(self, before: int) -> int:
        """Forget events created before `before` (Unix seconds); how many."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(delete(events).where(events.c.created_at < before))
            return int(result.rowcount or 0)

        return await self.db.write(work)


def _scoped(
    query: Any,
    inboxes: Iterable[str] | None,
    pods: Iterable[str] | None,
    event_types: Iterable[str] | None,
) -> Any:
    inbox_list = sorted(set(inboxes)) if inboxes is not None else None
    pod_list = sorted(set(pods)) if pods is not None else None
    if inbox_list is not None and pod_list is not None:
        query = query.where(events.c.inbox.in_(inbox_list) | events.c.pod.in_(pod_list))
    elif inbox_list is not None:
        query = query.where(events.c.inbox.in_(inbox_list))
    elif pod_list is not None:
        query = query.where(events.c.pod.in_(pod_list))
    if event_types is not None:
        query = query.where(events.c.event_type.in_(sorted(set(event_types))))
    return query
