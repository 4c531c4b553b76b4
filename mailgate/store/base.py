"""What every aggregate of the store shares: the database, the event bus, and commit-then-notify.

A write that changes mailboxes returns its result and its events; the events are published once
the transaction has committed: to this node's listeners after the commit, and on PostgreSQL to
every other node's by a NOTIFY that the commit itself delivers (store/notify.py); on SQLite,
served by several worker processes, to the other workers through their parent
(store/channel.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import text

from mailgate.store import channel, notify
from mailgate.store.database import Conn, Database
from mailgate.store.events import Change, EventBus
from mailgate.store.records import Changes

T = TypeVar("T")


class StoreBase:
    def __init__(self, db: Database, bus: EventBus | None = None, inbox_quota: int = 0) -> None:
        self.db = db
        self.bus = bus or EventBus()
        # Bytes an inbox without a quota of its own may hold ([limits] inbox_quota); 0: no limit.
        self.inbox_quota = inbox_quota
        # Names this node in its NOTIFY payloads, so that it skips its own.
        self.node = secrets.token_hex(8)
        # SQLite with worker processes: the relay to the others (Store.listen).
        self._channel: channel.ChangeChannel | None = None
        # \Recent claims (Mailboxes.claim_recent): per mailbox, the UID up to which this node
        # knows every message was claimed, so that its other sessions hearing of the same new
        # mail ask nothing of the database; one claim at a time per node. A cache only.
        self._recent_claimed: dict[int, int] = {}
        self._recent_lock = asyncio.Lock()
        # changes_since reads in flight, by (mailbox, MODSEQ, bus.published when begun): the
        # sessions idling on a mailbox all ask the same at once when it changes, and share one.
        self._catch_ups: dict[
            tuple[int, int, int], tuple[asyncio.Task[Changes], list[asyncio.Future[Changes]]]
        ] = {}

    async def _change(
        self, work: Callable[[Conn], Awaitable[tuple[T, Sequence[Change]]]], size: int = 0
    ) -> T:
        """Run a write transaction that changes mailboxes and announce its events once it has
        committed (`size`: see Database.write)."""

        async def announced(conn: Conn) -> tuple[T, Sequence[Change]]:
            result, events = await work(conn)
            if events and not self.db.is_sqlite:
                for payload in notify.encode(self.node, events):
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": notify.CHANNEL, "payload": payload},
                    )
            return result, events

        def publish(done: tuple[T, Sequence[Change]]) -> None:
            for event in done[1]:
                self.bus.publish(event)
            if self._channel is not None and done[1]:
                self._channel.send(done[1])

        result, _ = await self.db.write(announced, after=publish, size=size)
        return result
