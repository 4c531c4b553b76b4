"""Metrics: the counts behind the API's metrics (http/metrics.py), read from what the store holds.

Event counts and rates come from the event outbox (store/outbox.py): every event mailgate
reports is written there in the transaction of its change, with the time it committed. Usage
is counted from the rows that exist now, each from when it was created: what was deleted since
is in no point of the history, so a series shows what exists now as it grew, and its newest
point is the true current value.

Times are integer Unix seconds. Rows are grouped into their bucket in SQL (integer division of
their age), so a query returns a row per bucket, not per event or message. Usage has to look
at every row of its scope (a point counts everything created before it); events and rates only
at the rows of their time range (the outbox's index on created_at).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, BigInteger, case, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from mailgate.mime.addresses import domain_of
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import domains, entries, events, inboxes, mailboxes, messages, pods
from mailgate.store.records import DRAFTS, Inbox, Pod

STORAGE_BYTES = "storage_bytes"
MESSAGE_COUNT = "message_count"
THREAD_COUNT = "thread_count"
INBOX_COUNT = "inbox_count"
POD_COUNT = "pod_count"
DOMAIN_COUNT = "domain_count"
USAGE_TYPES = (STORAGE_BYTES, MESSAGE_COUNT, THREAD_COUNT, INBOX_COUNT, POD_COUNT, DOMAIN_COUNT)

# Drafts are stored (they count in storage_bytes) but are not messages: the API lists them as
# drafts, never among an inbox's messages or threads.


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose metrics: one inbox, one pod, or (neither given) the whole server."""

    pod: Pod | None = None
    inbox: Inbox | None = None

    @property
    def level(self) -> str:
        """ "inbox", "pod" or "organization"."""
        if self.inbox is not None:
            return "inbox"
        return "organization" if self.pod is None else "pod"


@dataclass(frozen=True, slots=True)
class Grid:
    """`count` points `period` seconds apart, the newest at `end`."""

    end: int
    period: int
    count: int

    @property
    def oldest(self) -> int:
        return self.end - (self.count - 1) * self.period

    def points(self) -> list[int]:
        """The points, oldest first."""
        return [self.oldest + k * self.period for k in range(self.count)]


class Metrics(StoreBase):
    async def event_counts(
        self, scope: Scope, event_types: Collection[str], start: int, end: int, period: int
    ) -> dict[str, dict[int, int]]:
        """Per event type, how many events of the scope there were in each bucket of `period`
        seconds from `start` (bucket k: [start + k*period, start + (k+1)*period)), from `start`
        to `end`, both included; buckets without events are left out."""
        bucket = (events.c.created_at - start) // period
        query = (
            select(events.c.event_type, bucket.label("bucket"), func.count().label("n"))
            .where(
                events.c.created_at >= start,
                events.c.created_at <= end,
                events.c.event_type.in_(sorted(set(event_types))),
                *_events_of(scope),
            )
            .group_by(events.c.event_type, bucket)
        )
        found: dict[str, dict[int, int]] = {t: {} for t in event_types}
        async with self.db.read() as conn:
            for row in await conn.execute(query):
                found[row.event_type][int(row.bucket)] = int(row.n)
        return found

    async def event_times(
        self,
        scope: Scope,
        event_types: Collection[str],
        start: int,
        end: int,
        *,
        limit: int,
        descending: bool = False,
    ) -> dict[str, list[int]]:
        """Per event type, when each event of the scope from `start` to `end` happened, oldest
        first (newest with `descending`), at most `limit` of them."""
        found: dict[str, list[int]] = {}
        async with self.db.read(snapshot=True) as conn:
            for event_type in event_types:
                order = (events.c.created_at, events.c.seq)
                query = (
                    select(events.c.created_at)
                    .where(
                        events.c.event_type == event_type,
                        events.c.created_at >= start,
                        events.c.created_at <= end,
                        *_events_of(scope),
                    )
                    .order_by(*(c.desc() for c in order) if descending else order)
                    .limit(limit)
                )
                found[event_type] = [int(t) for t in await conn.scalars(query)]
        return found

    async def recipient_counts(
        self, scope: Scope, event_types: Collection[str], end: int, period: int, buckets: int
    ) -> dict[str, list[int]]:
        """Per event type, the recipients that the scope's events of that type name, in each of
        `buckets` buckets of `period` seconds back from `end`, newest first: bucket j holds
        the events of (end - (j+1)*period, end - j*period]."""
        age = (literal(end, BigInteger) - events.c.created_at) // period
        named = self._recipients_named()
        query = (
            select(events.c.event_type, age.label("bucket"), func.sum(named).label("n"))
            .where(
                events.c.created_at <= end,
                events.c.created_at > end - buckets * period,
                events.c.event_type.in_(sorted(set(event_types))),
                *_events_of(scope),
            )
            .group_by(events.c.event_type, age)
        )
        found = {t: [0] * buckets for t in event_types}
        async with self.db.read() as conn:
            for row in await conn.execute(query):
                found[row.event_type][int(row.bucket)] = int(row.n or 0)
        return found

    def _recipients_named(self) -> ColumnElement[Any]:
        """How many recipients an event's detail lists (`recipients`, a JSON array; 0 without
        one), in each database's JSON functions."""
        if self.db.is_sqlite:
            return func.coalesce(func.json_array_length(events.c.detail, "$.recipients"), 0)
        listed = cast(events.c.detail, JSON)["recipients"]
        return case((func.json_typeof(listed) == "array", func.json_array_length(listed)), else_=0)

    async def usage(
        self, scope: Scope, usage_types: Collection[str], grid: Grid
    ) -> dict[str, list[int]]:
        """Per usage type, what the scope held at each point of the grid (oldest first),
        counting what exists now from when it was created."""
        wanted = set(usage_types)
        found: dict[str, list[int]] = {}
        async with self.db.read(snapshot=True) as conn:
            if wanted & {STORAGE_BYTES, MESSAGE_COUNT}:
                held = await _message_usage(conn, scope, grid)
                found.update({k: v for k, v in held.items() if k in wanted})
            if THREAD_COUNT in wanted:
                found[THREAD_COUNT] = await _thread_usage(conn, scope, grid)
            if INBOX_COUNT in wanted:
                query = select(inboxes.c.created_at.label("created"))
                if scope.inbox is not None:
                    query = query.where(inboxes.c.id == scope.inbox.id)
                elif scope.pod is not None:
                    query = query.where(inboxes.c.pod_id == scope.pod.id)
                found[INBOX_COUNT] = await _grown(conn, query.subquery(), grid)
            if POD_COUNT in wanted:
                query = select(pods.c.created_at.label("created"))
                if scope.level != "organization":
                    query = query.where(pods.c.id == _pod_id(scope))
                found[POD_COUNT] = await _grown(conn, query.subquery(), grid)
            if DOMAIN_COUNT in wanted:
                found[DOMAIN_COUNT] = await _domain_usage(conn, scope, grid)
        return found


def _pod_id(scope: Scope) -> int | None:
    if scope.inbox is not None:
        return scope.inbox.pod_id
    return scope.pod.id if scope.pod is not None else None


def _events_of(scope: Scope) -> list[ColumnElement[bool]]:
    """The outbox names an event's inbox and pod by address and name (they outlive a deleted
    inbox), so an inbox's events are those naming its address, as the event stream shows them;
    a domain's events belong to no pod, only to the organization."""
    if scope.inbox is not None:
        return [events.c.inbox == scope.inbox.address]
    if scope.pod is not None:
        return [events.c.pod == scope.pod.name]
    return []


def _age(created: ColumnElement[Any], grid: Grid) -> ColumnElement[Any]:
    """The newest-first index of the oldest grid point a row created at `created` counts at:
    0 counts only at the newest point (`grid.end`), count-1 at every point (created at or
    before the oldest)."""
    return case(
        (created <= grid.oldest, grid.count - 1),
        else_=(literal(grid.end, BigInteger) - created) // grid.period,
    )


def _cumulative(by_age: dict[int, int], grid: Grid) -> list[int]:
    """Running totals at the grid's points, oldest first, from what was added per age."""
    totals: list[int] = []
    running = 0
    for age in range(grid.count - 1, -1, -1):
        running += by_age.get(age, 0)
        totals.append(running)
    return totals


async def _grown(conn: Conn, rows: Any, grid: Grid, weight: Any = None) -> list[int]:
    """The running count (or sum of `weight`) at each grid point of the rows of a subquery
    with a `created` column."""
    age = _age(rows.c.created, grid)
    amount = func.count() if weight is None else func.sum(weight)
    query = select(age.label("age"), amount.label("n")).where(rows.c.created <= grid.end)
    result = await conn.execute(query.group_by(age))
    return _cumulative({int(r.age): int(r.n or 0) for r in result}, grid)


def _held(scope: Scope) -> Any:
    """The scope's messages, one row per message of an inbox (however many of its mailboxes
    hold a copy): when it came (the earliest copy's arrival, as the API's `timestamp`, but not
    before it was stored: an IMAP APPEND may give an older date), its size, its thread, and
    whether it is a message the API lists (a copy outside Drafts)."""
    in_scope: list[ColumnElement[bool]] = []
    if scope.inbox is not None:
        in_scope.append(mailboxes.c.inbox_id == scope.inbox.id)
    elif scope.pod is not None:
        pod_inboxes = select(inboxes.c.id).where(inboxes.c.pod_id == scope.pod.id)
        in_scope.append(mailboxes.c.inbox_id.in_(pod_inboxes))
    copies = (
        select(
            mailboxes.c.inbox_id,
            entries.c.message_id.label("blob"),
            func.min(entries.c.internaldate).label("arrived"),
            func.max(case((mailboxes.c.name != DRAFTS, 1), else_=0)).label("listed"),
            func.min(entries.c.thread_id).label("thread"),
        )
        .select_from(entries.join(mailboxes, mailboxes.c.id == entries.c.mailbox_id))
        .where(*in_scope)
        .group_by(mailboxes.c.inbox_id, entries.c.message_id)
        .subquery()
    )
    created = case(
        (messages.c.created_at > copies.c.arrived, messages.c.created_at), else_=copies.c.arrived
    )
    return (
        select(copies.c.listed, copies.c.thread, messages.c.size, created.label("created"))
        .join_from(copies, messages, messages.c.id == copies.c.blob)
        .subquery()
    )


async def _message_usage(conn: Conn, scope: Scope, grid: Grid) -> dict[str, list[int]]:
    held = _held(scope)
    age = _age(held.c.created, grid)
    query = (
        select(
            age.label("age"),
            func.sum(held.c.listed).label("listed"),
            func.sum(held.c.size).label("size"),
        )
        .where(held.c.created <= grid.end)
        .group_by(age)
    )
    counted: dict[int, int] = {}
    stored: dict[int, int] = {}
    for row in await conn.execute(query):
        counted[int(row.age)] = int(row.listed or 0)
        stored[int(row.age)] = int(row.size or 0)
    return {MESSAGE_COUNT: _cumulative(counted, grid), STORAGE_BYTES: _cumulative(stored, grid)}


async def _thread_usage(conn: Conn, scope: Scope, grid: Grid) -> list[int]:
    """Threads as the API lists them (with a message outside Drafts), each from when its first
    such message came: the same history as message_count's."""
    held = _held(scope)
    threads = (
        select(func.min(held.c.created).label("created"))
        .where(held.c.listed == 1, held.c.thread.is_not(None))
        .group_by(held.c.thread)
        .subquery()
    )
    return await _grown(conn, threads, grid)


async def _domain_usage(conn: Conn, scope: Scope, grid: Grid) -> list[int]:
    """Domains: every hosted domain for the organization; for a pod (or an inbox), those its
    inboxes are at, as the domains API lists them there, each from when both it and the first
    of those inboxes existed."""
    if scope.pod is None and scope.inbox is None:
        return await _grown(conn, select(domains.c.created_at.label("created")).subquery(), grid)
    query = select(inboxes.c.address, inboxes.c.created_at)
    if scope.inbox is not None:
        query = query.where(inboxes.c.id == scope.inbox.id)
    else:
        assert scope.pod is not None
        query = query.where(inboxes.c.pod_id == scope.pod.id)
    first: dict[str, int] = {}
    for row in await conn.execute(query):
        name = domain_of(row.address)
        first[name] = min(first.get(name, row.created_at), row.created_at)
    hosted = await conn.execute(
        select(domains.c.name, domains.c.created_at).where(domains.c.name.in_(sorted(first)))
    )
    return _counted([max(r.created_at, first[r.name]) for r in hosted], grid)


def _counted(times: Iterable[int], grid: Grid) -> list[int]:
    """The running count at each grid point of things created at `times`."""
    by_age: dict[int, int] = {}
    for created in times:
        if created <= grid.end:
            age = grid.count - 1 if created <= grid.oldest else (grid.end - created) // grid.period
            by_age[age] = by_age.get(age, 0) + 1
    return _cumulative(by_age, grid)
