"""Blobs: stored once per distinct bytes, shared by every entry that holds them, and collected
(with their message row) exactly when the last entry referring to them goes."""

from __future__ import annotations

from mailgate.store.api import Store
from mailgate.store.records import DELETED, Inbox, Mailbox, Parcel, Target
from tests.store.conftest import address, count, message, rows, run


def stored(store: Store) -> tuple[int, int]:
    return count(store, "messages"), count(store, "blobs")


def test_expunge_keeps_a_blob_another_entry_holds(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    archive = run(store.create_mailbox(inbox.id, "Archive"))
    run(store.append(mailbox.id, message(1)))
    run(store.copy(mailbox.id, [(1, 1)], archive.id))
    assert stored(store) == (1, 1)

    run(store.store_flags(mailbox.id, [(1, 1)], "+", [DELETED]))
    run(store.expunge(mailbox.id))
    assert stored(store) == (1, 1)
    assert run(store.fetch(archive.id, [(1, 1)], ["data"]))[0].data

    run(store.store_flags(archive.id, [(1, 1)], "+", [DELETED]))
    run(store.expunge(archive.id))
    assert stored(store) == (0, 0)


def test_expunge_collects_only_what_it_orphaned(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1), flags=[DELETED]))
    run(store.append(mailbox.id, message(2)))
    run(store.append(mailbox.id, message(3), flags=[DELETED]))
    run(store.expunge(mailbox.id))
    assert stored(store) == (1, 1)
    (left,) = run(store.fetch(mailbox.id, [(1, 10)], ["data"]))
    assert left.uid == 2
    assert b"Message 2" in (left.data or b"")


def test_sent_copy_and_recipient_share_until_both_are_gone(store: Store) -> None:
    sender = run(store.create_inbox(address("s")))
    rcpt = run(store.create_inbox(address("r")))
    sent = run(store.get_mailbox(sender.id, "Sent"))
    inbox = run(store.get_mailbox(rcpt.id, "INBOX"))
    run(store.deliver([Parcel(message(1), (Target(sent.id), Target(inbox.id)))]))
    run(store.delete_inbox(sender.address))
    assert stored(store) == (1, 1)
    run(store.delete_inbox(rcpt.address))
    assert stored(store) == (0, 0)


def test_move_does_not_collect(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    archive = run(store.create_mailbox(inbox.id, "Archive"))
    raw = message(1)
    run(store.append(mailbox.id, raw))
    run(store.move(mailbox.id, [(1, 1)], archive.id))
    assert stored(store) == (1, 1)
    assert run(store.fetch(archive.id, [(1, 1)], ["data"]))[0].data == raw


def test_delete_mailbox_keeps_blobs_held_elsewhere(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    doomed = run(store.create_mailbox(inbox.id, "Doomed"))
    run(store.append(mailbox.id, message(1)))
    run(store.copy(mailbox.id, [(1, 1)], doomed.id))
    run(store.append(doomed.id, message(2)))
    run(store.delete_mailbox(inbox.id, "Doomed"))
    assert stored(store) == (1, 1)


def test_bytes_stored_again_after_collection(store: Store, mailbox: Mailbox) -> None:
    raw = message(1)
    run(store.append(mailbox.id, raw, flags=[DELETED]))
    (first_id,) = rows(store, "SELECT id FROM messages")[0]
    run(store.expunge(mailbox.id))
    assert stored(store) == (0, 0)
    run(store.append(mailbox.id, raw))
    assert stored(store) == (1, 1)
    (second_id,) = rows(store, "SELECT id FROM messages")[0]
    assert second_id != first_id
    assert run(store.fetch(mailbox.id, [(2, 2)], ["data"]))[0].data == raw


def test_identical_bytes_in_two_inboxes_share_one_blob(store: Store) -> None:
    a = run(store.create_inbox(address("a")))
    b = run(store.create_inbox(address("b")))
    raw = message(1)
    run(store.append(run(store.get_mailbox(a.id, "INBOX")).id, raw))
    run(store.append(run(store.get_mailbox(b.id, "Drafts")).id, raw))
    assert stored(store) == (1, 1)
    assert rows(store, "SELECT count(*) FROM entries") == [(2,)]


def test_no_entry_ever_points_at_a_missing_message(store: Store, mailbox: Mailbox) -> None:
    for i in range(10):
        run(store.append(mailbox.id, message(i % 3), flags=[DELETED] if i % 2 else []))
    run(store.expunge(mailbox.id))
    dangling = rows(
        store,
        "SELECT count(*) FROM entries e LEFT JOIN messages m ON m.id = e.message_id "
        "LEFT JOIN blobs b ON b.message_id = e.message_id WHERE m.id IS NULL OR b.data IS NULL",
    )
    assert dangling == [(0,)]
    orphans = rows(
        store,
        "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM entries e WHERE e.message_id = m.id)",
    )
    assert orphans == [(0,)]
