"""Typed, inbox-scoped events: every committed change is published once, after the commit, as
what it was (messages added, flags changed, expunged, mailbox created, renamed, deleted, a
subscription changed), to the mailbox's and the inbox's subscribers, and on PostgreSQL to
every other node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mailgate.store import notify
from mailgate.store.api import Store
from mailgate.store.events import (
    Change,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Resync,
    SubscriptionChanged,
)
from mailgate.store.records import DELETED, Inbox, Mailbox
from tests.store.conftest import message, run


def inbox_events(store: Store, inbox: Inbox, action: Callable[[], object]) -> list[Change]:
    seen: list[Change] = []
    subscription = store.bus.subscribe_inbox(inbox.id, seen.append)
    try:
        action()
    finally:
        subscription.close()
    return seen


def test_mailbox_creation_renaming_and_deletion_are_told(store: Store, inbox: Inbox) -> None:
    created = inbox_events(store, inbox, lambda: run(store.create_mailbox(inbox.id, "a/b")))
    a = run(store.get_mailbox(inbox.id, "a"))
    b = run(store.get_mailbox(inbox.id, "a/b"))
    assert created == [
        MailboxCreated(inbox.id, a.id, a.highestmodseq, "a"),
        MailboxCreated(inbox.id, b.id, b.highestmodseq, "a/b"),
    ]

    renamed = inbox_events(store, inbox, lambda: run(store.rename_mailbox(inbox.id, "a", "x/y")))
    x = run(store.get_mailbox(inbox.id, "x"))
    assert renamed == [
        MailboxCreated(inbox.id, x.id, x.highestmodseq, "x"),
        MailboxRenamed(inbox.id, a.id, a.highestmodseq, "x/y", "a"),
        MailboxRenamed(inbox.id, b.id, b.highestmodseq, "x/y/b", "a/b"),
    ]

    deleted = inbox_events(store, inbox, lambda: run(store.delete_mailbox(inbox.id, "x/y/b")))
    assert deleted == [MailboxDeleted(inbox.id, b.id, 0, "x/y/b")]


def test_subscriptions_are_told_when_they_change(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "Lists"))

    def subscribe_twice_then_unsubscribe() -> None:
        run(store.set_subscribed(inbox.id, "Lists", True))
        run(store.set_subscribed(inbox.id, "Lists", True))  # no change: no event
        run(store.set_subscribed(inbox.id, "Lists", False))

    assert inbox_events(store, inbox, subscribe_twice_then_unsubscribe) == [
        SubscriptionChanged(inbox.id, 0, 0, "Lists", True),
        SubscriptionChanged(inbox.id, 0, 0, "Lists", False),
    ]


def test_message_changes_are_told_by_kind(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    trash = run(store.get_mailbox(inbox.id, "Trash"))
    seen: list[Change] = []
    subscription = store.bus.subscribe_inbox(inbox.id, seen.append)
    try:
        run(store.append(mailbox.id, message(1)))
        run(store.append(mailbox.id, message(2)))
        run(store.store_flags(mailbox.id, [(1, 1)], "+", [DELETED]))
        run(store.store_flags(mailbox.id, [(1, 1)], "+", [DELETED]))  # no change: no event
        run(store.expunge(mailbox.id))
        run(store.move(mailbox.id, [(2, 2)], trash.id))
    finally:
        subscription.close()
    assert [type(e) for e in seen] == [
        MessagesAdded,
        MessagesAdded,
        FlagsChanged,
        MessagesExpunged,
        MessagesExpunged,
        MessagesAdded,
    ]
    assert [e.mailbox_id for e in seen] == [mailbox.id] * 5 + [trash.id]
    assert all(e.inbox_id == inbox.id for e in seen)
    modseqs = [e.modseq for e in seen[:5]]
    assert modseqs == sorted(set(modseqs))  # each change at a new, higher MODSEQ
    assert seen[4].modseq == run(store.get_mailbox(inbox.id, "INBOX")).highestmodseq
    assert seen[5].modseq == run(store.get_mailbox(inbox.id, "Trash")).highestmodseq


def test_a_mailbox_subscriber_hears_only_its_mailbox(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    trash = run(store.get_mailbox(inbox.id, "Trash"))
    seen: list[Change] = []
    subscription = store.bus.subscribe(trash.id, seen.append)
    try:
        run(store.append(mailbox.id, message(1)))
        run(store.append(trash.id, message(2)))
        run(store.create_mailbox(inbox.id, "Elsewhere"))
    finally:
        subscription.close()
    assert [(type(e), e.mailbox_id) for e in seen] == [(MessagesAdded, trash.id)]


def test_deleting_an_inbox_tells_of_every_mailbox(store: Store, inbox: Inbox) -> None:
    boxes = {b.id: b.name for b in run(store.list_mailboxes(inbox.id))}
    seen = inbox_events(store, inbox, lambda: run(store.delete_inbox(inbox.address)))
    assert all(isinstance(e, MailboxDeleted) and e.modseq == 0 for e in seen)
    assert {e.mailbox_id: e.name for e in seen if isinstance(e, MailboxDeleted)} == boxes


def test_notify_payloads_stay_under_the_limit_and_round_trip() -> None:
    events: list[Change] = [
        MailboxRenamed(7, n, n * 3, "ü/" + "x" * 900 + str(n), "old" + str(n)) for n in range(40)
    ]
    events.append(MessagesAdded(7, 1, 2))
    payloads = notify.encode("node-a", events)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    decoded = [notify.decode(p) for p in payloads]
    assert {node for node, _ in decoded} == {"node-a"}
    assert [e for _, batch in decoded for e in batch] == events


@pytest.mark.parametrize("junk", ["", "not json", "[]", '["n", ["Nope", 1, 2, 3]]', "[1, [2]]"])
def test_malformed_notifications_are_ignored(junk: str) -> None:
    assert notify.decode(junk)[1] == []


def test_other_nodes_hear_each_change_once(
    backend: str, store: Store, inbox: Inbox, open_store: Callable[..., Store]
) -> None:
    """A change committed on node A reaches node B's subscribers through NOTIFY, typed; node A
    publishes it once (after its commit), not again when its own NOTIFY comes back."""
    if backend != "postgres":
        pytest.skip("SQLite serves one node: there are no other nodes to tell")
    node_b = open_store()
    run(store.listen())
    run(node_b.listen())
    on_a: list[Change] = []
    on_b: list[Change] = []
    subs = [store.bus.subscribe_inbox(inbox.id, on_a.append)]
    subs.append(node_b.bus.subscribe_inbox(inbox.id, on_b.append))

    async def until_b_has(count: int) -> None:
        for _ in range(500):
            if len(on_b) >= count:
                return
            await asyncio.sleep(0.01)

    try:
        box = run(store.create_mailbox(inbox.id, "Projects"))
        run(store.rename_mailbox(inbox.id, "Projects", "Archive"))
        run(store.append(box.id, message(1)))
        run(until_b_has(3))
        # A marker change from B: once A hears it, any echo of A's own changes would be in.
        run(node_b.create_mailbox(inbox.id, "Marker"))

        async def until_a_has_marker() -> None:
            for _ in range(500):
                if any(isinstance(e, MailboxCreated) and e.name == "Marker" for e in on_a):
                    return
                await asyncio.sleep(0.01)

        run(until_a_has_marker())
    finally:
        for sub in subs:
            sub.close()
    mine = [e for e in on_a if not (isinstance(e, MailboxCreated) and e.name == "Marker")]
    assert on_b[:3] == mine
    assert [type(e) for e in mine] == [MailboxCreated, MailboxRenamed, MessagesAdded]
    assert not any(isinstance(e, Resync) for e in on_a + on_b)
