"""Read transactions under load: many more readers at once than the pool has connections, and
readers cancelled halfway (a client hanging up mid-command), in both ways the store reads (a
function run whole, and a transaction of several awaited statements)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import text

from mailgate.store.api import Store
from mailgate.store.records import Mailbox
from tests.store.conftest import message, run

POOL = 2


def test_more_readers_than_connections_all_answered(
    open_store: Callable[..., Store], mailbox: Mailbox
) -> None:
    store = open_store(pool_size=POOL)
    run(store.append(mailbox.id, message(1)))
    subscribed = run(store.subscriptions(mailbox.inbox_id))
    assert "INBOX" in subscribed

    async def readers() -> tuple[list[list[int]], list[set[str]], list[list[int]]]:
        changes, subscriptions, fetched = await asyncio.gather(
            asyncio.gather(*(store.changes_since(mailbox.id, 0) for _ in range(20))),
            asyncio.gather(*(store.subscriptions(mailbox.inbox_id) for _ in range(20))),
            asyncio.gather(*(store.fetch(mailbox.id, [(1, 1)]) for _ in range(20))),
        )
        return (
            [[e.uid for e in c.changed] for c in changes],
            list(subscriptions),
            [[r.uid for r in rows] for rows in fetched],
        )

    changed, subscriptions, fetched = run(readers())
    assert changed == [[1]] * 20
    assert subscriptions == [subscribed] * 20
    assert fetched == [[1]] * 20


def test_cancelled_readers_give_their_connections_back(
    open_store: Callable[..., Store], mailbox: Mailbox
) -> None:
    store = open_store(pool_size=POOL)
    run(store.append(mailbox.id, message(1)))
    subscribed = run(store.subscriptions(mailbox.inbox_id))

    async def cancel_many() -> None:
        for delay in (0, 1, 2, 3):  # cancelled before, during and after their statements
            tasks = [
                asyncio.ensure_future(read)
                for _ in range(5)
                for read in (
                    store.changes_since(mailbox.id, 0),
                    store.subscriptions(mailbox.inbox_id),
                )
            ]
            for _ in range(delay):
                await asyncio.sleep(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    run(cancel_many())
    # Every connection is back: more reads than the pool holds, one after another, are answered.
    for _ in range(3 * POOL):
        assert [e.uid for e in run(store.changes_since(mailbox.id, 0), timeout=10).changed] == [1]
        assert run(store.subscriptions(mailbox.inbox_id), timeout=10) == subscribed


def test_connections_killed_in_the_pool_cost_no_error(
    backend: str, open_store: Callable[..., Store], mailbox: Mailbox
) -> None:
    """PostgreSQL restarted, or a proxy cut: every pooled connection is dead, and nothing checks
    them before use. The first read and the first write find that out before anything was
    committed and run again on fresh connections: the caller sees neither."""
    if backend != "postgres":
        pytest.skip("SQLite's connections are files of the process")
    store = open_store(pool_size=POOL)
    run(store.append(mailbox.id, message(1)))

    async def warm() -> None:  # both pooled connections in use once
        await asyncio.gather(*(store.fetch(mailbox.id, [(1, 1)]) for _ in range(POOL)))

    run(warm())

    async def kill() -> int:
        async with store.db.reader.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(killed)

    assert run(kill()) >= 1
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 1)]))] == [1]
    run(kill())
    placed = run(store.append(mailbox.id, message(2)))
    assert placed.uid == 2
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 2)]))] == [1, 2]
