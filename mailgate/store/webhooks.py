"""Webhook endpoints: what the API manages (owner, URL, secret, filters, headers) and what the
delivery worker keeps (a cursor into the event outbox, failures, a lease).

Each endpoint reads the outbox in seq order from its own cursor. A worker claims an endpoint
with a lease, as the outbound queue is claimed (store/queue.py): on PostgreSQL several nodes
share the endpoints, and each is delivered by one node at a time, in order. The cursor moves only
when the node that holds the lease says so, so a node that lost its lease (it stalled past it)
cannot move another node's cursor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.engine import Row

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import events, inboxes, pods, webhooks
from mailgate.store.names import optional_text
from mailgate.store.records import UNSET, Unset, Webhook
from mailgate.store.rows import now


def owner_key(pod_id: int | None, inbox_id: int | None) -> str:
    """The owner a client_id is unique within: an inbox, a pod or the organization."""
    if inbox_id is not None:
        return f"inbox:{inbox_id}"
    return "org" if pod_id is None else f"pod:{pod_id}"


def select_hooks(table: Table) -> Any:
    """Rows of `table` (webhooks or polling webhooks) with their owner's pod name and address."""
    return (
        select(table, pods.c.name.label("pod_name"), inboxes.c.address.label("inbox_address"))
        .outerjoin(pods, pods.c.id == table.c.pod_id)
        .outerjoin(inboxes, inboxes.c.id == table.c.inbox_id)
    )


def names_of(text: str | None) -> tuple[str, ...] | None:
    """A stored JSON list of names (None: no list)."""
    if text is None:
        return None
    value = json.loads(text)
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def json_of(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values), separators=(",", ":"))


def _record(row: Row[Any]) -> Webhook:
    try:
        headers = json.loads(row.headers)
    except ValueError:
        headers = {}
    return Webhook(
        id=int(row.id),
        public_id=row.public_id,
        pod_id=row.pod_id,
        pod=row.pod_name,
        inbox_id=row.inbox_id,
        inbox=row.inbox_address,
        url=row.url,
        secret=row.secret,
        event_types=names_of(row.event_types),
        pod_ids=names_of(row.pod_ids),
        inbox_ids=names_of(row.inbox_ids),
        headers=tuple((str(k), str(v)) for k, v in dict(headers).items()),
        client_id=row.client_id,
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        cursor=int(row.cursor),
        attempts=int(row.attempts),
        next_attempt_at=int(row.next_attempt_at),
        failing_since=row.failing_since,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


async def _one(conn: Conn, public_id: str, *, lock: bool = False) -> Webhook:
    query = select_hooks(webhooks).where(webhooks.c.public_id == public_id)
    if lock:
        query = query.with_for_update(of=webhooks)
    row = (await conn.execute(query)).first()
    if row is None:
        raise errors.WebhookNotFound(f"no webhook {public_id}")
    return _record(row)


def _merged(
    current: tuple[str, ...] | None, add: Sequence[str], remove: Sequence[str]
) -> tuple[str, ...] | None:
    """`current` with `add` appended (once each) and `remove` taken out."""
    if not add and not remove:
        return current
    values = [v for v in (current or ()) if v not in remove]
    values += [v for v in dict.fromkeys(add) if v not in values and v not in remove]
    return tuple(values)


class Webhooks(StoreBase):
    async def create_webhook(
        self,
        *,
        public_id: str,
        pod_id: int | None,
        inbox_id: int | None,
        url: str,
        secret: str,
        event_types: Sequence[str] | None,
        pod_ids: Sequence[str] | None,
        inbox_ids: Sequence[str] | None,
        headers: Mapping[str, str],
        client_id: str | None = None,
    ) -> Webhook:
        """A new endpoint, owned by the inbox, else the pod, else the organization; it gets the
        events committed from now on. With a `client_id` a webhook of the same owner has, that
        webhook (creating twice is creating once)."""
        client_id = optional_text(client_id, "client id")
        owner = owner_key(pod_id, inbox_id)

        async def work(conn: Conn) -> Webhook:
            if client_id is not None:
                same = await conn.execute(
                    select_hooks(webhooks).where(
                        webhooks.c.owner == owner, webhooks.c.client_id == client_id
                    )
                )
                if (row := same.first()) is not None:
                    return _record(row)
            created = now()
            # Where it starts: the newest event committed. seq order is commit order
            # (store/outbox.py), so every event committed after this is after it.
            cursor = await conn.scalar(select(func.coalesce(func.max(events.c.seq), 0)))
            await conn.execute(
                webhooks.insert().values(
                    public_id=public_id,
                    pod_id=pod_id,
                    inbox_id=inbox_id,
                    url=url,
                    secret=secret,
                    event_types=json_of(event_types),
                    pod_ids=json_of(pod_ids),
                    inbox_ids=json_of(inbox_ids),
                    headers=json.dumps(dict(headers), separators=(",", ":")),
                    owner=owner,
                    client_id=client_id,
                    enabled=True,
                    cursor=int(cursor),
                    attempts=0,
                    next_attempt_at=created,
                    created_at=created,
                    updated_at=created,
                )
            )
            return await _one(conn, public_id)

        return await self.db.write(work)

    async def list_webhooks(
        self, *, pod_id: int | None = None, inbox_id: int | None = None
    ) -> list[Webhook]:
        """Every webhook; with `pod_id`, the pod's (its inboxes' included); with `inbox_id`,
        the inbox's."""
        query = select_hooks(webhooks)
        if pod_id is not None:
            query = query.where(webhooks.c.pod_id == pod_id)
        if inbox_id is not None:
            query = query.where(webhooks.c.inbox_id == inbox_id)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(webhooks.c.id))
            return [_record(r) for r in rows]

    async def get_webhook(self, public_id: str) -> Webhook:
        async with self.db.read() as conn:
            return await _one(conn, public_id)

    async def update_webhook(
        self,
        public_id: str,
        *,
        event_types: Sequence[str] | Unset = UNSET,
        add_pod_ids: Sequence[str] = (),
        remove_pod_ids: Sequence[str] = (),
        add_inbox_ids: Sequence[str] = (),
        remove_inbox_ids: Sequence[str] = (),
        enabled: bool | Unset = UNSET,
        max_filters: int = 10,
    ) -> Webhook:
        """Change what is given, in one transaction (two updates adding ids both count).

        Adding pods or inboxes to a webhook that lists none (it gets every event its owner
        sees) changes nothing, as adding an inbox of a listed pod adds nothing either. Removing
        the last one is refused (CannotModify): that would widen it to every event. Re-enabling
        starts from the newest event: what happened while it was disabled is not sent.
        LimitExceeded: more than `max_filters` pods and inboxes."""

        async def work(conn: Conn) -> Webhook:
            hook = await _one(conn, public_id, lock=True)
            values: dict[str, Any] = {}
            if not isinstance(event_types, Unset):
                values["event_types"] = json_of(event_types)
            if hook.pod_ids is not None or hook.inbox_ids is not None:
                pod_list = _merged(hook.pod_ids, add_pod_ids, remove_pod_ids)
                inbox_list = _merged(hook.inbox_ids, add_inbox_ids, remove_inbox_ids)
                if not pod_list and not inbox_list:
                    raise errors.CannotModify(
                        "a webhook that lists pods or inboxes must keep at least one "
                        "(delete it, or create one without them)"
                    )
                if len(pod_list or ()) + len(inbox_list or ()) > max_filters:
                    raise errors.LimitExceeded(
                        f"a webhook lists at most {max_filters} pods and inboxes"
                    )
                values["pod_ids"] = json_of(pod_list) if pod_list else None
                values["inbox_ids"] = json_of(inbox_list) if inbox_list else None
            if not isinstance(enabled, Unset) and enabled != hook.enabled:
                # A delivery running now stops at its next step (its claim is gone).
                values.update(enabled=enabled, lease_owner=None, lease_until=None)
                if enabled:
                    cursor = await conn.scalar(select(func.coalesce(func.max(events.c.seq), 0)))
                    values.update(
                        disabled_reason=None,
                        cursor=int(cursor),
                        attempts=0,
                        failing_since=None,
                        last_error=None,
                        next_attempt_at=now(),
                    )
                else:
                    values["disabled_reason"] = "disabled over the API"
            if values:
                values["updated_at"] = now()
                await conn.execute(
                    update(webhooks).where(webhooks.c.id == hook.id).values(**values)
                )
            return await _one(conn, public_id)

        return await self.db.write(work)

    async def update_webhook_headers(
        self, public_id: str, *, set_headers: Mapping[str, str], remove: Sequence[str]
    ) -> Webhook:
        """Set (names compare without case: a new value replaces the old) and remove headers,
        in one step."""
        gone = {name.lower() for name in (*set_headers, *remove)}

        async def work(conn: Conn) -> Webhook:
            hook = await _one(conn, public_id, lock=True)
            headers = {k: v for k, v in hook.headers if k.lower() not in gone}
            headers.update(set_headers)
            await conn.execute(
                update(webhooks)
                .where(webhooks.c.id == hook.id)
                .values(headers=json.dumps(headers, separators=(",", ":")), updated_at=now())
            )
            return await _one(conn, public_id)

        return await self.db.write(work)

    async def delete_webhook(self, public_id: str) -> None:
        async def work(conn: Conn) -> None:
            result = await conn.execute(delete(webhooks).where(webhooks.c.public_id == public_id))
            if not result.rowcount:
                raise errors.WebhookNotFound(f"no webhook {public_id}")

        await self.db.write(work)

    # ---------------------------------------------------------------- delivery

    async def webhook_backlogs(self) -> list[tuple[str, int, int]]:
        """Per enabled endpoint: its public id, how many events of the outbox are past its
        cursor (all of them, wanted or not: an upper bound of its backlog), and the failed
        attempts at its next event."""
        newest = select(func.coalesce(func.max(events.c.seq), 0)).scalar_subquery()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(webhooks.c.public_id, newest - webhooks.c.cursor, webhooks.c.attempts)
                .where(webhooks.c.enabled.is_(True))
                .order_by(webhooks.c.id)
            )
            return [(r[0], max(0, int(r[1])), int(r[2])) for r in rows]

    async def any_enabled_webhook(self) -> bool:
        """Whether any endpoint is enabled at all (most servers have none)."""
        async with self.db.read() as conn:
            found = await conn.scalar(
                select(webhooks.c.id).where(webhooks.c.enabled.is_(True)).limit(1)
            )
            return found is not None

    async def claim_webhooks(self, owner: str, lease: int, limit: int) -> list[Webhook]:
        """Claim up to `limit` enabled endpoints that are due and have events after their
        cursor, for `lease` seconds. On PostgreSQL endpoints another node is claiming are
        skipped (FOR UPDATE SKIP LOCKED); a node that dies leaves its claims to be taken again
        when the lease runs out."""
        current = now()
        newest = select(func.coalesce(func.max(events.c.seq), 0)).scalar_subquery()
        due = (
            select(webhooks.c.id)
            .where(
                webhooks.c.enabled.is_(True),
                webhooks.c.next_attempt_at <= current,
                webhooks.c.cursor < newest,
                or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until <= current),
            )
            .order_by(webhooks.c.next_attempt_at, webhooks.c.id)
            .limit(limit)
        )
        # Looked for first without writing: every commit that records events wakes every
        # worker, and most find nothing to claim (on SQLite a write would queue behind mail).
        async with self.db.read() as conn:
            if (await conn.execute(due)).first() is None:
                return []

        async def work(conn: Conn) -> list[Webhook]:
            ids = list(await conn.scalars(due.with_for_update(skip_locked=True)))
            if not ids:
                return []
            await conn.execute(
                update(webhooks)
                .where(webhooks.c.id.in_(ids))
                .values(lease_owner=owner, lease_until=current + lease)
            )
            rows = await conn.execute(
                select_hooks(webhooks).where(webhooks.c.id.in_(ids)).order_by(webhooks.c.id)
            )
            return [_record(r) for r in rows]

        return await self.db.write(work)

    async def renew_webhook(self, webhook_id: int, owner: str, lease: int) -> bool:
        """Extend `owner`'s claim to `lease` seconds from now; False if it is not theirs, or
        the endpoint was disabled or deleted meanwhile."""
        return await self._held(
            webhook_id, owner, webhooks.c.enabled.is_(True), lease_until=now() + lease
        )

    async def advance_webhook(self, webhook_id: int, owner: str, seq: int) -> bool:
        """The endpoint is done with every event up to `seq` (answered 2xx, or not for it): the
        cursor moves there, and its failures are forgotten. False if `owner` no longer holds
        it, or it was disabled or deleted meanwhile (nothing changes then)."""
        return await self._held(
            webhook_id,
            owner,
            webhooks.c.enabled.is_(True),
            cursor=seq,
            attempts=0,
            failing_since=None,
            last_error=None,
        )

    async def webhook_failed(
        self, webhook_id: int, owner: str, *, error: str, retry_at: int, disable_after: int
    ) -> Webhook | None:
        """An attempt failed: try again at `retry_at`, and give the claim back. An endpoint that
        has failed for `disable_after` seconds in a row is disabled instead. The endpoint as it
        is now, or None if `owner` no longer held it."""
        current = now()

        async def work(conn: Conn) -> Webhook | None:
            row = (
                await conn.execute(
                    select(webhooks.c.failing_since)
                    .where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            since = current if row.failing_since is None else int(row.failing_since)
            values: dict[str, Any] = {
                "attempts": webhooks.c.attempts + 1,
                "failing_since": since,
                "last_error": error[:1000],
                "next_attempt_at": retry_at,
                "lease_owner": None,
                "lease_until": None,
            }
            if current - since >= disable_after:
                values.update(
                    enabled=False,
                    updated_at=current,
                    disabled_reason=f"disabled after failing for {current - since} s: {error}"[
                        :1000
                    ],
                )
            await conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(values))
            found = (
                await conn.execute(select_hooks(webhooks).where(webhooks.c.id == webhook_id))
            ).first()
            return _record(found) if found is not None else None

        return await self.db.write(work)

    async def release_webhook(self, webhook_id: int, owner: str) -> None:
        await self._held(webhook_id, owner, None, lease_owner=None, lease_until=None)

    async def release_webhook_leases(self, owner: str) -> int:
        """Give back every endpoint `owner` had claimed (a node starting again, or stopping)."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(
                update(webhooks)
                .where(webhooks.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
            return int(result.rowcount or 0)

        return await self.db.write(work)

    async def _held(self, webhook_id: int, owner: str, condition: Any, **values: Any) -> bool:
        """Change the endpoint if `owner` holds it (and `condition` holds); whether it did."""
        where = and_(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
        if condition is not None:
            where = and_(where, condition)

        async def work(conn: Conn) -> bool:
            result = await conn.execute(update(webhooks).where(where).values(**values))
            return bool(result.rowcount)

        return await self.db.write(work)
