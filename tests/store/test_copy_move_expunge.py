"""COPY, MOVE and EXPUNGE: what UIDPLUS reports, what the entries keep, what tombstones remain."""

from __future__ import annotations

import datetime

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import DELETED, Inbox, Mailbox
from tests.store.conftest import count, message, rows, run

WHEN = datetime.datetime(2021, 6, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


@pytest.fixture
def work(store: Store, inbox: Inbox) -> Mailbox:
    return run(store.create_mailbox(inbox.id, "Work"))


def test_copy_keeps_flags_internaldate_and_shares_the_blob(
    store: Store, mailbox: Mailbox, work: Mailbox
) -> None:
    raw = message(1)
    run(store.append(mailbox.id, raw, flags=["\\Flagged", "$Keep"], internaldate=WHEN))
    run(store.append(mailbox.id, message(2)))

    result = run(store.copy(mailbox.id, [(1, 1)], work.id))

    assert result.uidvalidity == work.uidvalidity
    assert result.source_uids == [1]
    assert result.dest_uids == [1]
    (copied,) = run(store.fetch(work.id, [(1, 1)], ["data"]))
    assert copied.flags == ("\\Flagged", "$Keep")
    assert copied.internaldate == WHEN
    assert copied.data == raw
    # The source is untouched.
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [1, 2]
    # One message row and one blob for both entries.
    assert count(store, "messages") == 2
    assert count(store, "blobs") == 2
    assert rows(store, "SELECT count(DISTINCT message_id) FROM entries WHERE uid = 1") == [(1,)]
    assert run(store.get_mailbox(work.inbox_id, "Work")).keywords == ("$Keep",)


def test_copy_many_reports_uid_pairs_in_order(
    store: Store, mailbox: Mailbox, work: Mailbox
) -> None:
    for i in range(6):
        run(store.append(mailbox.id, message(i)))
    run(store.append(work.id, message(99)))  # the destination already has UID 1
    result = run(store.copy(mailbox.id, [(5, 6), (1, 2)], work.id))
    assert result.source_uids == [1, 2, 5, 6]
    assert result.dest_uids == [2, 3, 4, 5]
    assert run(store.get_mailbox(work.inbox_id, "Work")).uidnext == 6
    # The copies all carry the destination's one new MODSEQ.
    copies = run(store.fetch(work.id, [(2, 5)]))
    assert len({r.modseq for r in copies}) == 1


def test_copy_into_the_same_mailbox(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1), flags=["\\Seen"]))
    result = run(store.copy(mailbox.id, [(1, 1)], mailbox.id))
    assert result.dest_uids == [2]
    assert [r.flags for r in run(store.fetch(mailbox.id, [(1, 2)]))] == [("\\Seen",)] * 2


def test_copy_of_nothing(store: Store, mailbox: Mailbox, work: Mailbox) -> None:
    before = run(store.status(work.id))
    result = run(store.copy(mailbox.id, [(1, 100)], work.id))
    assert (result.source_uids, result.dest_uids) == ([], [])
    assert result.uidvalidity == work.uidvalidity
    assert run(store.status(work.id)) == before


def test_copy_to_or_from_a_missing_mailbox(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1)))
    with pytest.raises(errors.MailboxNotFound):
        run(store.copy(mailbox.id, [(1, 1)], 987654))
    with pytest.raises(errors.MailboxNotFound):
        run(store.copy(987654, [(1, 1)], mailbox.id))
    with pytest.raises(errors.MailboxNotFound):
        run(store.move(mailbox.id, [(1, 1)], 987654))
    assert run(store.status(mailbox.id)).messages == 1


def test_move_leaves_tombstones(store: Store, mailbox: Mailbox, work: Mailbox) -> None:
    for i in range(3):
        run(store.append(mailbox.id, message(i), flags=["$x"] if i == 1 else []))
    before = run(store.status(mailbox.id)).highestmodseq

    result = run(store.move(mailbox.id, [(2, 3)], work.id))

    assert result.source_uids == [2, 3]
    assert result.dest_uids == [1, 2]
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [1]
    moved = run(store.fetch(work.id, [(1, 2)]))
    assert [r.flags for r in moved] == [("$x",), ()]
    tombstones = rows(
        store, "SELECT uid, modseq FROM expunged WHERE mailbox_id = :m ORDER BY uid", m=mailbox.id
    )
    after = run(store.status(mailbox.id)).highestmodseq
    assert tombstones == [(2, after), (3, after)]
    assert after == before + 1
    changes = run(store.changes_since(mailbox.id, before))
    assert changes.expunged == [2, 3]
    assert changes.changed == []
    # The blobs moved with the entries: nothing was collected, nothing duplicated.
    assert count(store, "messages") == 3


def test_move_within_one_mailbox(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1)))
    before = run(store.status(mailbox.id)).highestmodseq
    result = run(store.move(mailbox.id, [(1, 1)], mailbox.id))
    assert result.dest_uids == [2]
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [2]
    changes = run(store.changes_since(mailbox.id, before))
    assert changes.expunged == [1]
    assert [e.uid for e in changes.changed] == [2]
    assert count(store, "messages") == 1


def test_move_of_nothing_changes_nothing(store: Store, mailbox: Mailbox, work: Mailbox) -> None:
    before = (run(store.status(mailbox.id)), run(store.status(work.id)))
    result = run(store.move(mailbox.id, [(1, 5)], work.id))
    assert result.dest_uids == []
    assert (run(store.status(mailbox.id)), run(store.status(work.id))) == before


def test_expunge_removes_only_deleted(store: Store, mailbox: Mailbox) -> None:
    for i in range(5):
        run(store.append(mailbox.id, message(i)))
    run(store.store_flags(mailbox.id, [(2, 2), (4, 5)], "+", [DELETED]))
    assert run(store.expunge(mailbox.id)) == [2, 4, 5]
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [1, 3]
    assert run(store.expunge(mailbox.id)) == []


def test_uid_expunge_removes_only_the_given_deleted(store: Store, mailbox: Mailbox) -> None:
    """RFC 4315 UID EXPUNGE: \\Deleted messages outside the set stay."""
    for i in range(4):
        run(store.append(mailbox.id, message(i), flags=[DELETED]))
    before = run(store.status(mailbox.id)).highestmodseq
    assert run(store.expunge(mailbox.id, [(2, 3)])) == [2, 3]
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [1, 4]
    assert run(store.expunge(mailbox.id, [])) == []
    assert run(store.status(mailbox.id)).highestmodseq == before + 1


def test_expunge_nothing_keeps_highestmodseq(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1)))
    before = run(store.status(mailbox.id)).highestmodseq
    assert run(store.expunge(mailbox.id)) == []
    assert run(store.status(mailbox.id)).highestmodseq == before


def test_expunge_of_a_missing_mailbox(store: Store) -> None:
    with pytest.raises(errors.MailboxNotFound):
        run(store.expunge(987654))


def test_uids_are_never_reused_after_expunge(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1), flags=[DELETED]))
    run(store.append(mailbox.id, message(2), flags=[DELETED]))
    run(store.expunge(mailbox.id))
    assert run(store.append(mailbox.id, message(3))).uid == 3


def test_copy_when_the_destination_runs_out_of_uids(
    store: Store, mailbox: Mailbox, work: Mailbox
) -> None:
    from sqlalchemy import update

    from mailgate.store.models import mailboxes
    from mailgate.store.rows import MAX_UID

    run(store.append(mailbox.id, message(1)))
    run(store.append(mailbox.id, message(2)))

    async def nearly_full() -> None:
        async def change(conn):  # type: ignore[no-untyped-def]
            await conn.execute(
                update(mailboxes).where(mailboxes.c.id == work.id).values(uidnext=MAX_UID)
            )

        await store.db.write(change)

    run(nearly_full())
    with pytest.raises(errors.LimitExceeded):
        run(store.copy(mailbox.id, [(1, 2)], work.id))
    assert run(store.copy(mailbox.id, [(1, 1)], work.id)).dest_uids == [MAX_UID]
