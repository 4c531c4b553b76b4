"""Metrics: /v0/metrics, /v0/pods/{pod_id}/metrics and /v0/inboxes/{inbox_id}/metrics, each with
`events`, `usage` and `rates` (the SDK's `client.metrics`, `client.pods.metrics` and
`client.inboxes.metrics`), counted by the store (store/metrics.py) from the event outbox and
the rows it holds; nothing is estimated.

Whose: what the path names, narrowed to what the key sees (an inbox key's metrics are its
inbox's wherever it asks; a pod or inbox outside the key's scope is a 404, as everywhere).

When: from `start` (default: a day before `end`; at most 90 days ago) to `end` (default, and at
most, now), both included, in whole seconds.

- events: per event type, the events counted one by one (a message.sent naming three recipients
  is one event). With `period`, buckets of that many seconds from `start`, each stamped with
  its first second, empty ones included (the last may be shorter); without, one bucket per
  event, of count 1, at its time.
- usage: per usage type, the running total at points `period` seconds apart ending at `end`
  (hourly by default, daily over ranges of more than 1000 hours); the last point is the value
  at `end`.
- rates: per rate type, at points `period` seconds apart ending at `end` (hourly by default),
  the recipients bounced (complained) over the `window` seconds before the point (a day by
  default), divided by the recipients sent to in that window; null where none were sent.

`descending` orders each list newest first; `limit` keeps its first so many buckets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from mailgate.http.caller import CallerDep
from mailgate.http.context import ServicesDep
from mailgate.http.errors import Invalid
from mailgate.http.events import EVENT_TYPES
from mailgate.http.inboxes import visible_inbox
from mailgate.http.pods import visible_pod
from mailgate.http.queries import listed
from mailgate.store.metrics import (
    DOMAIN_COUNT,
    INBOX_COUNT,
    MESSAGE_COUNT,
    POD_COUNT,
    STORAGE_BYTES,
    THREAD_COUNT,
    Grid,
    Scope,
)

DAY = 86_400
HOUR = 3_600
MAX_AGE = 90 * DAY  # how far back `start` may be
MAX_PERIOD = DAY
MAX_BUCKETS = 1000  # buckets (or points) a query may span, and list items it returns per type

# The usage types each level carries (the SDK's docstrings); others asked for are left out.
USAGE_BY_LEVEL = {
    "organization": (
        STORAGE_BYTES,
        MESSAGE_COUNT,
        THREAD_COUNT,
        INBOX_COUNT,
        POD_COUNT,
        DOMAIN_COUNT,
    ),
    "pod": (STORAGE_BYTES, MESSAGE_COUNT, THREAD_COUNT, INBOX_COUNT, DOMAIN_COUNT),
    "inbox": (STORAGE_BYTES, MESSAGE_COUNT, THREAD_COUNT),
}
# A rate type, and the event whose recipients are its numerator (over message.sent's).
RATES = {"bounce": "message.bounced", "complaint": "message.complained"}
SENT = "message.sent"


class MetricBucket(BaseModel):
    timestamp: datetime
    count: int


class UsagePoint(BaseModel):
    timestamp: datetime
    value: int


class RatePoint(BaseModel):
    timestamp: datetime  # the end of the window it covers
    rate: float | None
    sent: int


Limit = Annotated[int | None, Query(ge=1, le=MAX_BUCKETS)]
Period = Annotated[int | None, Query(ge=1, le=MAX_PERIOD)]


async def _organization(caller: CallerDep, services: ServicesDep) -> Scope:
    if caller.key.inbox is not None:
        return Scope(inbox=await visible_inbox(caller, services, None, caller.key.inbox))
    if caller.pod is not None:
        return Scope(pod=await visible_pod(caller, services, caller.pod))
    return Scope()


async def _pod(pod_id: str, caller: CallerDep, services: ServicesDep) -> Scope:
    pod = await visible_pod(caller, services, pod_id)
    if caller.key.inbox is not None:
        # The only inbox of the pod an inbox key sees is its own.
        return Scope(inbox=await visible_inbox(caller, services, pod, caller.key.inbox))
    return Scope(pod=pod)


async def _inbox(inbox_id: str, caller: CallerDep, services: ServicesDep) -> Scope:
    return Scope(inbox=await visible_inbox(caller, services, None, inbox_id))


@dataclass(frozen=True, slots=True)
class Span:
    """The time a query covers, in Unix seconds, both ends included."""

    start: int
    end: int
    now: int


@dataclass(frozen=True, slots=True)
class Range:
    """What every metrics query asks besides its types: its time range and how to show it."""

    span: Span
    period: int | None
    limit: int | None
    descending: bool


def _range(
    start: datetime | None = None,
    end: datetime | None = None,
    period: Period = None,
    limit: Limit = None,
    descending: bool = False,
) -> Range:
    return Range(_span(start, end), period, limit, descending)


RangeDep = Annotated[Range, Depends(_range)]


def _span(start: datetime | None, end: datetime | None) -> Span:
    current = int(time.time())
    oldest = current - MAX_AGE
    last = current if end is None else min(_seconds(end), current)
    if last < oldest:
        raise Invalid.field("end", "must be within the last 90 days")
    first = max(last - DAY, oldest) if start is None else _seconds(start)
    if first < oldest:
        raise Invalid.field("start", "must be within the last 90 days")
    if first > last:
        raise Invalid.field("start", "must not be after end (a future end is now)")
    return Span(first, last, current)


def _seconds(value: datetime) -> int:
    # A time without a zone is UTC.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return math.floor(aware.timestamp())


def _types(name: str, given: list[str] | None, known: Sequence[str]) -> list[str]:
    """The types asked for, in the SDK's order (all of `known` when none are), or a 400."""
    wanted = listed(name, given)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise Invalid.field(name, f"unknown: {', '.join(unknown)} (known: {', '.join(known)})")
    return [t for t in known if t in wanted] if wanted else list(known)


def _too_many(field: str, buckets: int, period: int) -> None:
    if buckets > MAX_BUCKETS:
        raise Invalid.field(
            field, f"{period} seconds makes {buckets} buckets of the range; at most {MAX_BUCKETS}"
        )


def _when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _ordered(items: list[Any], limit: int | None, descending: bool) -> list[Any]:
    ordered = items[::-1] if descending else items
    return ordered[:limit] if limit is not None else ordered


def _routes(prefix: str, scope_of: Any) -> APIRouter:
    routes = APIRouter(prefix=prefix, tags=["metrics"])
    # A default value, not an Annotated alias, as in threads.py: the dependency is this tree's.
    in_scope: Any = Depends(scope_of)

    @routes.get("/events")
    async def query_events(
        caller: CallerDep,
        services: ServicesDep,
        asked: RangeDep,
        event_types: Annotated[list[str] | None, Query()] = None,
        scope: Scope = in_scope,
    ) -> dict[str, list[MetricBucket]]:
        """Counts of the scope's events over time, from the event outbox."""
        types = _types("event_types", event_types, EVENT_TYPES)
        span, period, limit, descending = asked.span, asked.period, asked.limit, asked.descending
        if period is None:
            times = await services.store.event_times(
                scope,
                types,
                span.start,
                span.end,
                limit=limit or MAX_BUCKETS,
                descending=descending,
            )
            return {t: [MetricBucket(timestamp=_when(s), count=1) for s in times[t]] for t in types}
        buckets = max(1, math.ceil((span.end - span.start) / period))
        _too_many("period", buckets, period)
        counted = await services.store.event_counts(scope, types, span.start, span.end, period)
        found: dict[str, list[MetricBucket]] = {}
        for event_type in types:
            per_bucket = [0] * buckets
            for k, n in counted[event_type].items():
                # The range's last second may start a bucket of its own: it joins the last.
                per_bucket[min(k, buckets - 1)] += n
            series = [
                MetricBucket(timestamp=_when(span.start + k * period), count=n)
                for k, n in enumerate(per_bucket)
            ]
            found[event_type] = _ordered(series, limit, descending)
        return found

    @routes.get("/usage")
    async def query_usage(
        caller: CallerDep,
        services: ServicesDep,
        asked: RangeDep,
        usage_types: Annotated[list[str] | None, Query()] = None,
        scope: Scope = in_scope,
    ) -> dict[str, list[UsagePoint]]:
        """Running totals of what the scope holds, at points `period` seconds apart."""
        applies = USAGE_BY_LEVEL[scope.level]
        named = _types("usage_types", usage_types, USAGE_BY_LEVEL["organization"])
        types = [t for t in named if t in applies]
        span, period, limit, descending = asked.span, asked.period, asked.limit, asked.descending
        if period is None:
            period = HOUR if (span.end - span.start) / HOUR <= MAX_BUCKETS else DAY
        _too_many("period", math.ceil((span.end - span.start) / period), period)
        grid = Grid(span.end, period, (span.end - span.start) // period + 1)
        values = await services.store.usage(scope, types, grid)
        points = grid.points()
        return {
            t: _ordered(
                [
                    UsagePoint(timestamp=_when(p), value=v)
                    for p, v in zip(points, values[t], strict=True)
                ],
                limit,
                descending,
            )
            for t in types
        }

    @routes.get("/rates")
    async def query_rates(
        caller: CallerDep,
        services: ServicesDep,
        asked: RangeDep,
        rate_types: Annotated[list[str] | None, Query()] = None,
        window: Annotated[int | None, Query(ge=1)] = None,
        scope: Scope = in_scope,
    ) -> dict[str, list[RatePoint]]:
        """Rolling bounce and complaint rates, from the outbox's sent, bounced and complained
        events, counted per recipient."""
        types = _types("rate_types", rate_types, tuple(RATES))
        span, period, limit, descending = asked.span, asked.period, asked.limit, asked.descending
        period = period or HOUR
        # Unless given, a day's window, in whole periods.
        window = window or math.ceil(DAY / period) * period
        if window % period:
            raise Invalid.field("window", f"must be a whole multiple of period ({period})")
        width = window // period
        points = (span.end - span.start) // period + 1
        _too_many("period", math.ceil((span.end - span.start + window) / period), period)
        counts = await services.store.recipient_counts(
            scope, [SENT, *(RATES[t] for t in types)], span.end, period, points + width - 1
        )
        sent = _windows(counts[SENT], points, width)
        grid = Grid(span.end, period, points)
        found: dict[str, list[RatePoint]] = {}
        for rate_type in types:
            hit = _windows(counts[RATES[rate_type]], points, width)
            # Newest first from the store; the grid's points are oldest first.
            series = [
                RatePoint(
                    timestamp=_when(p),
                    rate=hit[k] / sent[k] if sent[k] else None,
                    sent=sent[k],
                )
                for p, k in zip(grid.points(), range(points - 1, -1, -1), strict=True)
            ]
            found[rate_type] = _ordered(series, limit, descending)
        return found

    return routes


def _windows(per_bucket: Sequence[int], points: int, width: int) -> list[int]:
    """Sums over `width` consecutive buckets (newest first) for each of `points` points:
    point k sums buckets k .. k+width-1."""
    sums: list[int] = []
    running = sum(per_bucket[:width])
    for k in range(points):
        sums.append(running)
        if k + width < len(per_bucket):
            running += per_bucket[k + width]
        running -= per_bucket[k]
    return sums


router = APIRouter()
router.include_router(_routes("/v0/metrics", _organization))
router.include_router(_routes("/v0/pods/{pod_id}/metrics", _pod))
router.include_router(_routes("/v0/inboxes/{inbox_id}/metrics", _inbox))
