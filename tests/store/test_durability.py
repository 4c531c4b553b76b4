"""Durability: once deliver()/append() has returned, the message is committed to disk. A new
Store (a restarted server) sees it, even when the process that wrote it was killed right after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mailgate.store.api import Store
from mailgate.store.events import Change
from mailgate.store.records import Mailbox
from tests.store.conftest import address, message, run

ROOT = Path(__file__).resolve().parents[2]


def test_a_new_store_sees_what_deliver_returned(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    placed = run(store.append(mailbox.id, message(1)))
    restarted = open_store()
    raw = run(store.fetch(mailbox.id, [(placed.uid, placed.uid)], ["data"]))[0].data
    rows = run(restarted.fetch(mailbox.id, [(placed.uid, placed.uid)], ["data"]))
    assert [(r.uid, r.data) for r in rows] == [(placed.uid, raw)]


def test_sqlite_commits_with_wal_and_synchronous_full(backend: str, store: Store) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's own settings")

    async def pragmas(conn: Any) -> tuple[str, int, int]:
        journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
        fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
        return journal, sync, fks

    async def read_side() -> tuple[str, int, int]:
        async with store.db.read() as conn:
            return await pragmas(conn)

    # synchronous: 2 is FULL (the WAL is synced at every commit). The write side is the
    # connection write transactions really run on (the SQLite writer thread).
    assert run(store.db.write(pragmas)) == ("wal", 2, 1)
    assert run(read_side()) == ("wal", 2, 1)


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from mailgate.store.api import Store

    async def main(url, mailbox_id):
        store = await Store.open(url)
        for i in range(1000):
            raw = (f"Subject: crash {i}\\r\\n\\r\\nbody {i}\\r\\n").encode()
            placed = await store.append(mailbox_id, raw)
            # Acknowledged: the parent may kill us from here on.
            print(placed.uid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def test_acknowledged_messages_survive_a_killed_process(
    store_url: str, open_store: Callable[..., Store]
) -> None:
    setup = open_store()
    inbox = run(setup.create_inbox(address()))
    box = run(setup.get_mailbox(inbox.id, "INBOX"))
    run(setup.close())

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, store_url, str(box.id)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    acknowledged = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 25:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert len(acknowledged) == 25

    after = open_store()
    stored = list(run(after.snapshot(box.id)).uids)
    assert set(acknowledged) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))
    # The store is usable after the crash: the next UID follows on.
    assert run(after.append(box.id, message(1))).uid == len(stored) + 1


def test_cancelled_deliveries_leave_the_store_consistent(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    """A client that disconnects mid-DATA cancels its delivery at any point: the message is
    either fully stored (and announced to listeners) or not stored at all, and the store keeps
    working. (On SQLite, a write cut short used to leave the write lock held: every later write
    hung.)"""
    events: list[Change] = []
    sub = store.bus.subscribe(mailbox.id, events.append)

    async def go() -> None:
        for i in range(30):
            task = asyncio.ensure_future(store.append(mailbox.id, message(i)))
            await asyncio.sleep(random.uniform(0, 0.01))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        run(go())
        placed = run(store.append(mailbox.id, message(999)), timeout=20)
        run(store.close())  # waits for the writes whose callers gave up
    finally:
        sub.close()
    after = open_store()
    snap = run(after.snapshot(mailbox.id))
    assert list(snap.uids) == list(range(1, len(snap.uids) + 1))
    assert placed.uid in snap.uids
    assert len(run(after.fetch(mailbox.id, [(1, 2**32 - 1)], ["data"]))) == len(snap.uids)
    # Every committed delivery was announced, cancelled caller or not.
    assert len(events) == len(snap.uids)
    assert events[-1].modseq == snap.mailbox.highestmodseq
