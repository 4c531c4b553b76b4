"""Polling webhooks: subscriptions to the event outbox that an agent reads with Svix's consumer
API (http/poller.py) instead of receiving them at a URL, and the place of each of their
consumers in it.

A subscription has an owner as a webhook has (an inbox, a pod, or the organization), at most
`limit` per owner, and a token kept only as its SHA-256 (it is random, as an API key's secret
is, so a fast hash is right). Creating again with an owner's `client_id` gives that subscription
a new token: the old one stops working, its consumers keep their places.

A consumer reads the events after its place: its commit, or while a lease runs, the end of what
it was last given, so that a poll without a commit is given again once its lease is over (at
least once). Offsets are event seqs, which are in commit order (store/outbox.py), so reading
"after n" never misses an event committed later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.engine import Row

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import events, polling_consumers, polling_webhooks
from mailgate.store.names import optional_text
from mailgate.store.records import PollingPosition, PollingWebhook
from mailgate.store.rows import now
from mailgate.store.webhooks import json_of, names_of, owner_key, select_hooks


def _record(row: Row[Any]) -> PollingWebhook:
    destination = None
    if row.destination is not None:
        try:
            found = json.loads(row.destination)
        except ValueError:
            found = None
        destination = found if isinstance(found, dict) else None
    return PollingWebhook(
        id=int(row.id),
        public_id=row.public_id,
        pod_id=row.pod_id,
        pod=row.pod_name,
        inbox_id=row.inbox_id,
        inbox=row.inbox_address,
        client_id=row.client_id,
        event_types=names_of(row.event_types),
        pod_ids=names_of(row.pod_ids),
        inbox_ids=names_of(row.inbox_ids),
        token_hash=row.token_hash,
        start_seq=int(row.start_seq),
        destination=destination,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


async def _one(conn: Conn, public_id: str) -> PollingWebhook:
    row = (
        await conn.execute(
            select_hooks(polling_webhooks).where(polling_webhooks.c.public_id == public_id)
        )
    ).first()
    if row is None:
        raise errors.PollingWebhookNotFound(f"no polling webhook {public_id}")
    return _record(row)


async def _newest(conn: Conn) -> int:
    return int(await conn.scalar(select(func.coalesce(func.max(events.c.seq), 0))) or 0)


def _lock_key(owner: str) -> int:
    """A PostgreSQL advisory lock key for one owner (a signed 64-bit number)."""
    digest = hashlib.sha256(b"mailgate polling webhooks\n" + owner.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Polling(StoreBase):
    async def create_polling_webhook(
        self,
        *,
        public_id: str,
        pod_id: int | None,
        inbox_id: int | None,
        client_id: str,
        event_types: Sequence[str] | None,
        pod_ids: Sequence[str] | None,
        inbox_ids: Sequence[str] | None,
        token_hash: str,
        limit: int,
    ) -> tuple[PollingWebhook, bool]:
        """A new subscription owned by the inbox, else the pod, else the organization, read
        from the events committed from now on; (it, True). With a `client_id` the owner already
        has, that subscription with `token_hash` as its token from now on; (it, False).
        LimitExceeded: the owner has `limit` already."""
        checked_id = optional_text(client_id, "client id")
        if checked_id is None:
            raise errors.InvalidName("a client id is required")
        owner = owner_key(pod_id, inbox_id)

        async def work(conn: Conn) -> tuple[PollingWebhook, bool]:
            if not self.db.is_sqlite:
                # Two creates for one owner at once must not both find room for one more
                # (SQLite has one writer at a time already).
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(owner)}
                )
            same = (
                await conn.execute(
                    select(polling_webhooks.c.id, polling_webhooks.c.public_id).where(
                        polling_webhooks.c.owner == owner,
                        polling_webhooks.c.client_id == checked_id,
                    )
                )
            ).first()
            current = now()
            if same is not None:
                await conn.execute(
                    update(polling_webhooks)
                    .where(polling_webhooks.c.id == same.id)
                    .values(token_hash=token_hash, updated_at=current)
                )
                return await _one(conn, same.public_id), False
            count = await conn.scalar(select(func.count()).where(polling_webhooks.c.owner == owner))
            if int(count or 0) >= limit:
                raise errors.LimitExceeded(f"at most {limit} polling webhooks here")
            await conn.execute(
                polling_webhooks.insert().values(
                    public_id=public_id,
                    pod_id=pod_id,
                    inbox_id=inbox_id,
                    owner=owner,
                    client_id=checked_id,
                    event_types=json_of(event_types),
                    pod_ids=json_of(pod_ids),
                    inbox_ids=json_of(inbox_ids),
                    token_hash=token_hash,
                    # seq order is commit order: every event committed after this is after it.
                    start_seq=await _newest(conn),
                    created_at=current,
                    updated_at=current,
                )
            )
            return await _one(conn, public_id), True

        return await self.db.write(work)

    async def list_polling_webhooks(
        self, *, pod_id: int | None = None, inbox_id: int | None = None
    ) -> list[PollingWebhook]:
        """The subscriptions the inbox owns (with `inbox_id`), else the pod (with `pod_id`),
        else the organization itself."""
        query = select_hooks(polling_webhooks).where(
            polling_webhooks.c.owner == owner_key(pod_id, inbox_id)
        )
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(polling_webhooks.c.id))
            return [_record(r) for r in rows]

    async def get_polling_webhook(self, public_id: str) -> PollingWebhook:
        async with self.db.read() as conn:
            return await _one(conn, public_id)

    async def delete_polling_webhook(self, public_id: str) -> None:
        """Delete it, its token and its consumers' places."""

        async def work(conn: Conn) -> None:
            result = await conn.execute(
                delete(polling_webhooks).where(polling_webhooks.c.public_id == public_id)
            )
            if not result.rowcount:
                raise errors.PollingWebhookNotFound(f"no polling webhook {public_id}")

        await self.db.write(work)

    async def subscribe_polling_webhook(
        self, public_id: str, destination: dict[str, Any]
    ) -> PollingWebhook:
        """Record the destination Svix's consumer subscribed (made or replaced)."""

        async def work(conn: Conn) -> PollingWebhook:
            result = await conn.execute(
                update(polling_webhooks)
                .where(polling_webhooks.c.public_id == public_id)
                .values(
                    destination=json.dumps(destination, separators=(",", ":")),
                    updated_at=now(),
                )
            )
            if not result.rowcount:
                raise errors.PollingWebhookNotFound(f"no polling webhook {public_id}")
            return await _one(conn, public_id)

        return await self.db.write(work)

    async def polling_position(
        self, hook: PollingWebhook, consumer_id: str, *, latest: bool, now_ms: int
    ) -> PollingPosition:
        """Where the consumer reads next. A consumer polling for the first time starts at the
        subscription's first event (or, `latest`, after the newest one), and from then on has
        a place of its own."""
        where = and_(
            polling_consumers.c.webhook_id == hook.id,
            polling_consumers.c.consumer_id == consumer_id,
        )
        async with self.db.read() as conn:
            row = (await conn.execute(select(polling_consumers).where(where))).first()
        if row is None:

            async def work(conn: Conn) -> Row[Any]:
                found = (await conn.execute(select(polling_consumers).where(where))).first()
                if found is not None:  # another poll made it meanwhile
                    return found
                current = now()
                start = await _newest(conn) if latest else hook.start_seq
                await conn.execute(
                    polling_consumers.insert().values(
                        webhook_id=hook.id,
                        consumer_id=consumer_id,
                        committed=max(start, hook.start_seq),
                        created_at=current,
                        updated_at=current,
                    )
                )
                return (await conn.execute(select(polling_consumers).where(where))).one()

            row = await self.db.write(work)
        committed = max(int(row.committed), hook.start_seq)
        after = committed
        if row.lease_until is not None and int(row.lease_until) > now_ms:
            after = max(after, int(row.leased_to or 0))
        return PollingPosition(after=after, committed=committed)

    async def lease_polling(
        self, hook: PollingWebhook, consumer_id: str, *, through: int, until_ms: int
    ) -> None:
        """The consumer was given the events up to `through`: the next poll before `until_ms`
        reads after them."""

        async def work(conn: Conn) -> None:
            await conn.execute(
                update(polling_consumers)
                .where(
                    polling_consumers.c.webhook_id == hook.id,
                    polling_consumers.c.consumer_id == consumer_id,
                )
                .values(leased_to=through, lease_until=until_ms, updated_at=now())
            )

        await self.db.write(work)

    async def commit_polling(self, hook: PollingWebhook, consumer_id: str, offset: int) -> bool:
        """The consumer is done with every event up to `offset`: it reads after it from now
        on (an earlier offset reads again from there once a running lease is over). False,
        changing nothing, if no event that far has been committed yet."""

        async def work(conn: Conn) -> bool:
            if offset > await _newest(conn):
                return False
            current = now()
            result = await conn.execute(
                update(polling_consumers)
                .where(
                    polling_consumers.c.webhook_id == hook.id,
                    polling_consumers.c.consumer_id == consumer_id,
                )
                .values(committed=offset, updated_at=current)
            )
            if not result.rowcount:
                await conn.execute(
                    polling_consumers.insert().values(
                        webhook_id=hook.id,
                        consumer_id=consumer_id,
                        committed=offset,
                        created_at=current,
                        updated_at=current,
                    )
                )
            return True

        return await self.db.write(work)
