"""class Store: the only door to the database. Every method is one use case, one transaction;
the methods live with their aggregate (tenancy, mailboxes, entries, conversations, search,
sorting, queue, domains, senders, the event outbox, metrics, webhooks, polling webhooks, failed
logins, quotas), and Store adds opening, listening to other nodes and closing.

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
import socket
from collections.abc import Callable

from sqlalchemy import select

from mailgate.store import channel, errors, notify
from mailgate.store.conversations import Conversations
from mailgate.store.database import Database
from mailgate.store.domains import Domains
from mailgate.store.entries import Entries
from mailgate.store.events import EventBus
from mailgate.store.labelling import Labelling
from mailgate.store.logins import Logins
from mailgate.store.mailboxes import Mailboxes
from mailgate.store.metrics import Metrics
from mailgate.store.models import pods
from mailgate.store.outbox import Outbox
from mailgate.store.polling import Polling
from mailgate.store.queue import Queue
from mailgate.store.quota import Quotas
from mailgate.store.search import Searching
from mailgate.store.senders import Senders
from mailgate.store.sorting import Sorting
from mailgate.store.tenancy import Tenancy
from mailgate.store.webhooks import Webhooks

# How long start-up waits for the LISTEN connection before giving up.
LISTEN_TIMEOUT = 10.0


class Store(
    Tenancy,
    Mailboxes,
    Entries,
    Conversations,
    Searching,
    Sorting,
    Queue,
    Domains,
    Senders,
    Outbox,
    Labelling,
    Metrics,
    Webhooks,
    Polling,
    Logins,
    Quotas,
):
    def __init__(self, db: Database, bus: EventBus | None = None, inbox_quota: int = 0) -> None:
        super().__init__(db, bus, inbox_quota)
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
        inbox_quota: int = 0,
    ) -> Store:
        db = Database(url, pool_size=pool_size, pool_timeout=pool_timeout)
        try:
            if migrate:
                await db.migrate()
        except BaseException:
            await db.close()
            raise
        return cls(db, bus, inbox_quota)

    async def listen(
        self, relay: socket.socket | None = None, on_lost: Callable[[], None] | None = None
    ) -> None:
        """On PostgreSQL, relay changes committed by other nodes into this node's event bus
        (LISTEN/NOTIFY); returns once listening. `relay` is a worker process's socket to the
        parent that supervises it (store/channel.py): on SQLite, which has no NOTIFY, the
        workers' changes go through it; on both, `on_lost` is called when the parent is gone."""
        if relay is not None and self._channel is None:
            self._channel = channel.ChangeChannel(
                relay, self.bus, self.node, on_lost or (lambda: None), relaying=self.db.is_sqlite
            )
            await self._channel.start()
        if self.db.is_sqlite or self._listener is not None:
            return
        self._listener = notify.ChangeListener(self.db.url, self.bus, self.node)
        await self._listener.start()
        try:
            await asyncio.wait_for(self._listener.connected.wait(), LISTEN_TIMEOUT)
        except TimeoutError:
            await self._listener.stop()
            self._listener = None
            raise errors.Unavailable("cannot LISTEN for other nodes' changes") from None

    async def ping(self) -> None:
        """A trivial read (the health check): returns if the database answers, else raises
        Unavailable or StoreError. It reads a table, not just `SELECT 1`, which an SQLite
        connection answers without looking at its file."""
        async with self.db.read() as conn:
            await conn.execute(select(pods.c.id).limit(1))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await self.db.close()
