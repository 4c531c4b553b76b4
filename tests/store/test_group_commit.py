"""Group commit: writes that queue for the SQLite writer commit together, each in a savepoint of
its own. Many at once all land, with distinct ascending UIDs, in fewer commits than writes; one
that fails fails alone; each caller is answered only after the commit that holds its write; and
events are published in commit order. On PostgreSQL each write is its own commit, and all of
this holds as well."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.database import GROUP_COMMIT_BYTES, GROUP_COMMIT_MAX, Conn
from mailgate.store.events import Change, MessagesAdded
from mailgate.store.outbox import Pending, record
from mailgate.store.records import Inbox, Mailbox, Parcel, QuotaRule, Target
from tests.store.conftest import address, count, message, rows, run

WRITES = 50


class Undone(Exception):
    """A write's own failure, after it has written."""


def _counters(store: Store) -> tuple[int, int]:
    return store.db.commits, store.db.committed_writes


def test_fifty_appends_at_once_get_ascending_uids_in_fewer_commits(
    backend: str, store: Store, mailbox: Mailbox
) -> None:
    seen: list[Change] = []
    subscription = store.bus.subscribe(mailbox.id, seen.append)
    commits, writes = _counters(store)

    async def appends() -> list[int]:
        placed = await asyncio.gather(
            *(store.append(mailbox.id, message(i)) for i in range(WRITES))
        )
        return [p.uid for p in placed]

    try:
        uids = run(appends())
    finally:
        subscription.close()
    assert sorted(uids) == list(range(1, WRITES + 1))
    assert list(run(store.snapshot(mailbox.id)).uids) == list(range(1, WRITES + 1))
    # One event per append, published in commit order: the mailbox's MODSEQ only rises.
    modseqs = [e.modseq for e in seen if isinstance(e, MessagesAdded)]
    assert len(modseqs) == WRITES
    assert modseqs == sorted(set(modseqs))
    done_commits = store.db.commits - commits
    assert store.db.committed_writes - writes == WRITES
    if backend == "sqlite":
        assert -(-WRITES // GROUP_COMMIT_MAX) <= done_commits < WRITES
    else:
        assert done_commits == WRITES


def test_big_messages_commit_a_few_at_a_time(backend: str, store: Store, mailbox: Mailbox) -> None:
    """A batch holds at most GROUP_COMMIT_BYTES of messages (the first whatever its size)."""
    big = GROUP_COMMIT_BYTES // 3 + 1  # two fit in a batch, three do not
    body = ("x" * 76 + "\r\n") * (big // 78)
    commits, writes = _counters(store)

    async def appends() -> list[int]:
        placed = await asyncio.gather(
            *(store.append(mailbox.id, message(i, body=body)) for i in range(8))
        )
        return [p.uid for p in placed]

    assert sorted(run(appends())) == list(range(1, 9))
    assert store.db.committed_writes - writes == 8
    assert store.db.commits - commits >= 4


def test_a_caller_is_answered_only_once_its_write_is_visible_elsewhere(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    other = open_store()  # its own connections: sees only what is committed

    async def append_then_look(i: int) -> bool:
        placed = await store.append(mailbox.id, message(i))
        found = await other.fetch(mailbox.id, [(placed.uid, placed.uid)], ["data"])
        return [r.uid for r in found] == [placed.uid]

    async def all_of_them() -> list[bool]:
        return await asyncio.gather(*(append_then_look(i) for i in range(WRITES)))

    assert run(all_of_them()) == [True] * WRITES


def test_an_over_quota_write_fails_alone_and_the_others_land(
    backend: str, store: Store, mailbox: Mailbox
) -> None:
    full = run(store.create_inbox(address()))
    run(store.set_inbox_quota(full.address, 1))
    full_box = run(store.get_mailbox(full.id, "INBOX"))
    # Delivered mail may fill an inbox past its quota; once full, it is refused.
    run(store.deliver([Parcel(message(-1), (Target(full_box.id, quota=QuotaRule.NOT_FULL),))]))
    messages_before = count(store, "messages")
    commits, writes = _counters(store)

    async def deliver(i: int) -> str:
        target = full_box.id if i % 3 == 0 else mailbox.id
        parcel = Parcel(message(i), (Target(target, quota=QuotaRule.NOT_FULL),))
        try:
            await store.deliver([parcel])
        except errors.OverQuota:
            return "refused"
        return "filed"

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(deliver(i) for i in range(WRITES)))

    outcomes = run(all_of_them())
    refused = sum(1 for i in range(WRITES) if i % 3 == 0)
    assert outcomes == ["refused" if i % 3 == 0 else "filed" for i in range(WRITES)]
    assert list(run(store.snapshot(mailbox.id)).uids) == list(range(1, WRITES - refused + 1))
    assert list(run(store.snapshot(full_box.id)).uids) == [1]
    # What a refused delivery had written before its quota check (its message) is gone too.
    assert count(store, "messages") == messages_before + WRITES - refused
    assert store.db.committed_writes - writes == WRITES - refused
    if backend == "sqlite":
        assert store.db.commits - commits < WRITES - refused


def test_writes_that_break_fail_alone_and_undo_what_they_wrote(store: Store, inbox: Inbox) -> None:
    """A constraint violated (a database error) and a bug (any other exception) raised
    mid-transaction each reach their own caller only, with nothing of theirs kept."""

    def pod(name: str) -> Callable[[Conn], Any]:
        async def work(conn: Conn) -> None:
            await conn.execute(
                text("INSERT INTO pods (name, created_at) VALUES (:name, 0)"), {"name": name}
            )
            if name.startswith("bug"):
                raise ValueError(name)

        return work

    names = [
        f"bug-{i}" if i % 5 == 1 else "default" if i % 5 == 3 else f"fine-{i}"
        for i in range(WRITES)
    ]

    async def write(name: str) -> str:
        try:
            await store.db.write(pod(name))
        except ValueError:
            return "bug"
        except errors.StoreError:
            return "refused"
        return "ok"

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(write(name) for name in names))

    outcomes = run(all_of_them())
    assert outcomes == [
        "bug" if n.startswith("bug") else "refused" if n == "default" else "ok" for n in names
    ]
    stored = {r[0] for r in rows(store, "SELECT name FROM pods")}
    assert stored == {"default"} | {n for n in names if n.startswith("fine")}


@pytest.mark.parametrize("concurrent", [1, 8])
def test_after_callbacks_run_in_commit_order(
    backend: str, store: Store, inbox: Inbox, concurrent: int
) -> None:
    """Each write adds a pod: in one batch each sees the ones before it, and the `after` of
    each (where the store publishes events) runs in the order they committed."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL commits concurrent transactions in any order")
    answered: list[int] = []

    async def add(i: int) -> None:
        async def work(conn: Conn) -> int:
            return int(
                await conn.scalar(
                    text("INSERT INTO pods (name, created_at) VALUES (:name, 0) RETURNING id"),
                    {"name": f"order-{concurrent}-{i}"},
                )
            )

        await store.db.write(work, after=answered.append)

    async def all_of_them() -> None:
        for round_ in range(WRITES // concurrent):
            await asyncio.gather(*(add(round_ * concurrent + i) for i in range(concurrent)))

    run(all_of_them())
    assert len(answered) == WRITES - WRITES % concurrent
    assert answered == sorted(set(answered))


def test_a_rolled_back_inbox_leaves_no_name_to_the_next_with_its_id(
    backend: str, store: Store, inbox: Inbox
) -> None:
    """SQLite hands the id of a row that rolled back out again: what a failed write learnt of
    its inbox (the names events carry) must not stick to the next inbox with that id."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL never hands an id out twice")
    pod_id = rows(store, "SELECT pod_id FROM inboxes WHERE id = :id", id=inbox.id)[0][0]

    async def undone(conn: Conn) -> None:
        ghost = await conn.scalar(
            text(
                "INSERT INTO inboxes (pod_id, address, created_at) "
                "VALUES (:pod, :address, 0) RETURNING id"
            ),
            {"pod": pod_id, "address": address("ghost")},
        )
        await record(conn, store.db, [Pending("message.received", inbox_id=int(ghost))])
        raise Undone(ghost)

    async def noop(conn: Conn) -> None:
        await conn.execute(text("SELECT 1"))

    async def writes() -> None:
        await asyncio.gather(store.db.write(noop), store.db.write(undone), store.db.write(noop))

    with pytest.raises(Undone) as failed:
        run(writes())
    real = run(store.create_inbox(address("real")))
    assert real.id == failed.value.args[0]  # the id came round again
    seq = run(store.last_event_seq())
    run(store.record_events([Pending("message.received", inbox_id=real.id)]))
    assert [e.inbox for e in run(store.events_after(seq))] == [real.address]
