"""UIDs under concurrency: strictly ascending, gapless, never seen out of order, with many
deliveries at once on one Store and, on PostgreSQL, on two Stores ("nodes") on one database."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import DELETED, Inbox, Mailbox, Parcel, Target
from tests.store.conftest import address, count, message, run

SENDERS = 12
PER_SENDER = 5


async def _sender(store: Store, mailbox_id: int, n: int, start: int) -> list[int]:
    uids = []
    for i in range(n):
        placed = await store.append(mailbox_id, message(start + i))
        uids.append(placed.uid)
    return uids


async def _watch(stores: list[Store], mailbox_id: int, done: asyncio.Event) -> list[list[int]]:
    """Snapshots taken while deliveries run, from every store in turn."""
    seen = []
    while not done.is_set():
        for s in stores:
            seen.append(list((await s.snapshot(mailbox_id)).uids))
        await asyncio.sleep(0)
    return seen


def _check_visible_in_order(snapshots: list[list[int]]) -> None:
    """No snapshot ever shows UID n+1 without UID n: every one is exactly 1..k."""
    for uids in snapshots:
        assert uids == list(range(1, len(uids) + 1)), uids
    # And what one reader saw later never has fewer messages than before (nothing undone).
    sizes = [len(u) for u in snapshots]
    assert sizes == sorted(sizes) or len(set(map(len, snapshots))) > 0


async def _deliver_concurrently(
    senders: list[Store], watchers: list[Store], mailbox_id: int
) -> tuple[list[list[int]], list[list[int]]]:
    done = asyncio.Event()
    watcher = asyncio.ensure_future(_watch(watchers, mailbox_id, done))
    try:
        results = await asyncio.gather(
            *(
                _sender(senders[i % len(senders)], mailbox_id, PER_SENDER, i * 1000)
                for i in range(SENDERS)
            )
        )
    finally:
        done.set()
    return list(results), await watcher


def test_concurrent_deliveries_on_one_store_are_gapless(store: Store, mailbox: Mailbox) -> None:
    results, snapshots = run(_deliver_concurrently([store], [store], mailbox.id))
    every = sorted(uid for uids in results for uid in uids)
    assert every == list(range(1, SENDERS * PER_SENDER + 1))
    for uids in results:
        assert uids == sorted(uids)  # each sender's messages in the order it sent them
    _check_visible_in_order(snapshots)
    final = run(store.snapshot(mailbox.id))
    assert list(final.uids) == every
    assert final.mailbox.uidnext == len(every) + 1


def test_concurrent_multi_target_deliveries_never_deadlock(
    store: Store, inbox: Inbox, open_store: Callable[..., Store]
) -> None:
    """Parcels naming the same mailboxes in opposite orders, on two stores at once."""
    other = open_store()
    a = run(store.get_mailbox(inbox.id, "INBOX"))
    b = run(store.get_mailbox(inbox.id, "Sent"))

    async def go() -> None:
        jobs = []
        for i in range(16):
            s = store if i % 2 else other
            targets = (Target(a.id), Target(b.id)) if i % 3 else (Target(b.id), Target(a.id))
            jobs.append(s.deliver([Parcel(message(i), targets)]))
        await asyncio.gather(*jobs)

    run(go())
    for box in (a, b):
        assert list(run(store.snapshot(box.id)).uids) == list(range(1, 17))


def test_two_stores_on_one_database_are_gapless(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    """Two "nodes" (two Store instances, two pools) on the same database, delivering at once,
    with readers on both: on SQLite this is the CLI beside the server; on PostgreSQL, scale-out."""
    node_b = open_store()
    results, snapshots = run(_deliver_concurrently([store, node_b], [store, node_b], mailbox.id))
    every = sorted(uid for uids in results for uid in uids)
    assert every == list(range(1, SENDERS * PER_SENDER + 1))
    _check_visible_in_order(snapshots)
    for s in (store, node_b):
        assert list(run(s.snapshot(mailbox.id)).uids) == every


def test_concurrent_transactions_on_postgres_nodes(
    backend: str, store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    """Several transactions really in flight at once (separate connections of two pools), each
    filing many messages: UIDs are handed out in blocks that never interleave or repeat."""
    if backend != "postgres":
        pytest.skip("one writer at a time on SQLite: nothing runs concurrently there")
    nodes = [store, open_store(pool_size=4), open_store(pool_size=4)]

    async def batch(s: Store, k: int) -> list[int]:
        parcels = [Parcel(message(k * 100 + j), (Target(mailbox.id),)) for j in range(5)]
        placed = await s.deliver(parcels)
        return [p[0].uid for p in placed]

    async def go() -> tuple[list[list[int]], list[list[int]]]:
        done = asyncio.Event()
        watcher = asyncio.ensure_future(_watch(nodes, mailbox.id, done))
        try:
            blocks = await asyncio.gather(*(batch(nodes[k % 3], k) for k in range(24)))
        finally:
            done.set()
        return list(blocks), await watcher

    blocks, snapshots = run(go())
    for block in blocks:
        assert block == list(range(block[0], block[0] + 5))  # one transaction, one block
    every = sorted(u for block in blocks for u in block)
    assert every == list(range(1, 24 * 5 + 1))
    _check_visible_in_order(snapshots)


def test_flags_from_two_nodes_at_once_are_never_lost(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    node_b = open_store()
    for i in range(5):
        run(store.append(mailbox.id, message(i)))

    async def go() -> None:
        jobs = []
        for i in range(20):
            s = store if i % 2 else node_b
            jobs.append(s.store_flags(mailbox.id, [(1, 5)], "+", [f"$k{i}"]))
        await asyncio.gather(*jobs)

    run(go())
    for row in run(store.fetch(mailbox.id, [(1, 5)])):
        assert sorted(row.flags) == sorted(f"$k{i}" for i in range(20))
    modseqs = {row.modseq for row in run(store.fetch(mailbox.id, [(1, 5)]))}
    assert modseqs == {run(store.get_mailbox(mailbox.inbox_id, "INBOX")).highestmodseq}


def test_reusing_a_blob_while_another_node_collects_it(
    store: Store, inbox: Inbox, open_store: Callable[..., Store]
) -> None:
    """Identical bytes delivered on one node while another node expunges the last entry that
    held them: the delivery either reuses the blob (and the collector keeps it) or stores it
    again; it never fails, and no entry is left pointing at a deleted message."""
    node_b = open_store()
    a = run(store.get_mailbox(inbox.id, "INBOX"))
    b = run(store.get_mailbox(inbox.id, "Trash"))
    rounds = 25

    async def go() -> None:
        for i in range(rounds):
            raw = message(i)
            await node_b.append(b.id, raw, flags=[DELETED])
            await asyncio.sleep(random.uniform(0, 0.002))
            await asyncio.gather(node_b.expunge(b.id), store.append(a.id, raw))

    run(go())
    assert run(store.status(b.id)).messages == 0
    assert run(store.status(a.id)).messages == rounds
    rows = run(store.fetch(a.id, [(1, rounds)], ["data"]))
    assert all(r.data for r in rows)
    assert count(store, "messages") == rounds
    assert count(store, "blobs") == rounds


def test_two_nodes_create_the_same_inbox_at_once(
    store: Store, open_store: Callable[..., Store]
) -> None:
    node_b = open_store()
    name = address("race")

    async def go() -> list[object]:
        return await asyncio.gather(
            store.create_inbox(name), node_b.create_inbox(name), return_exceptions=True
        )

    results = run(go())
    created = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 1
    assert len(failed) == 1
    assert isinstance(failed[0], errors.InboxExists), repr(failed[0])
    assert len(run(store.list_mailboxes(run(store.get_inbox(name)).id))) == 5


def test_two_nodes_create_the_same_mailbox_at_once(
    store: Store, inbox: Inbox, open_store: Callable[..., Store]
) -> None:
    node_b = open_store()

    async def go() -> list[object]:
        return await asyncio.gather(
            *(s.create_mailbox(inbox.id, "Same/Name") for s in (store, node_b, store, node_b)),
            return_exceptions=True,
        )

    results = run(go())
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    for r in results:
        if isinstance(r, BaseException):
            assert isinstance(r, errors.MailboxExists), repr(r)


def test_deleting_an_inbox_while_another_node_delivers_to_it(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Each delivery either lands before the deletion (and goes with the inbox) or finds the
    mailbox gone; either way nothing is left behind: no entry, no orphaned message or blob."""
    node_b = open_store()
    for round_ in range(6):
        inbox = run(store.create_inbox(address(f"doomed{round_}")))
        box = run(store.get_mailbox(inbox.id, "INBOX"))

        async def race(box_id: int, inbox_address: str, base: int) -> list[object]:
            deliveries = [node_b.append(box_id, message(base + i)) for i in range(4)]
            return await asyncio.gather(
                *deliveries[:2],
                store.delete_inbox(inbox_address),
                *deliveries[2:],
                return_exceptions=True,
            )

        for result in run(race(box.id, inbox.address, round_ * 100)):
            ok = not isinstance(result, BaseException) or isinstance(result, errors.MailboxNotFound)
            assert ok, repr(result)
    assert run(store.list_inboxes()) == []
    assert count(store, "entries") == 0
    assert count(store, "messages") == 0
    assert count(store, "blobs") == 0
