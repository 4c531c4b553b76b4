"""The storage quota's usage counters (store/quota.py): kept right by every change that adds or
removes entries, whichever way, and a store refused over the limit leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import Inbox, Mailbox, Parcel, QuotaRule, Target
from tests.store.conftest import address, message, rows, run


def counted(store: Store, inbox: Inbox) -> int:
    """The usage as a sum over every entry of the inbox: what the counters must equal."""
    (found,) = rows(
        store,
        "SELECT COALESCE(SUM(messages.size), 0) FROM entries"
        " JOIN messages ON messages.id = entries.message_id"
        " JOIN mailboxes ON mailboxes.id = entries.mailbox_id"
        " WHERE mailboxes.inbox_id = :inbox",
        inbox=inbox.id,
    )
    return int(found[0])


def test_every_change_keeps_the_usage_right(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    def check() -> None:
        assert run(store.quota(inbox.id)).used == counted(store, inbox)

    trash = run(store.get_mailbox(inbox.id, "Trash"))
    drafts = run(store.get_mailbox(inbox.id, "Drafts"))
    for n in range(5):
        run(store.append(mailbox.id, message(n, body="x" * (100 * n))))
    check()
    run(store.copy(mailbox.id, [(1, 3)], trash.id))
    check()
    run(store.move(mailbox.id, [(4, 4)], trash.id))
    run(store.move(trash.id, [(1, 1)], trash.id))  # into the same mailbox
    check()
    draft = run(store.append(drafts.id, message(9)))
    run(store.replace(drafts.id, [draft.uid], message(10, body="a longer draft " * 20)))
    check()
    run(store.store_flags(trash.id, [(1, 10)], "+", ["\\Deleted"]))
    run(store.expunge(trash.id, [(2, 3)]))
    check()
    run(store.expunge(trash.id))
    check()
    other = run(store.create_mailbox(inbox.id, "Archive"))
    run(store.copy(mailbox.id, [(1, 5)], other.id))
    check()
    run(store.delete_mailbox(inbox.id, "Archive"))
    check()
    # Another inbox's mail is not counted here, and a copy into it counts there.
    second = run(store.create_inbox(address()))
    elsewhere = run(store.get_mailbox(second.id, "INBOX"))
    run(store.copy(mailbox.id, [(1, 2)], elsewhere.id))
    check()
    assert run(store.quota(second.id)).used == counted(store, second) > 0


def delivered(store: Store, mailbox_id: int, raw: bytes) -> None:
    run(store.deliver([Parcel(raw, (Target(mailbox_id, quota=QuotaRule.NOT_FULL),))]))


def test_a_refused_delivery_stores_nothing(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    run(store.set_inbox_quota(inbox.address, 1))
    with pytest.raises(errors.OverQuota):
        run(store.append(mailbox.id, message(1)))  # a client's own store must fit
    delivered(store, mailbox.id, message(1))  # delivered mail fills it
    full = run(store.create_inbox(address()))
    run(store.set_inbox_quota(full.address, 1))
    delivered(store, run(store.get_mailbox(full.id, "INBOX")).id, message(2))
    fine = run(store.create_inbox(address()))
    targets = [
        Target(run(store.get_mailbox(i.id, "INBOX")).id, quota=QuotaRule.NOT_FULL)
        for i in (fine, full)
    ]
    before = rows(store, "SELECT COUNT(*) FROM messages")
    with pytest.raises(errors.OverQuota) as refused:
        run(store.deliver([Parcel(message(3), tuple(targets))]))
    assert refused.value.addresses == [full.address]
    assert rows(store, "SELECT COUNT(*) FROM messages") == before
    assert run(store.quota(fine.id)).used == 0
    # Exempt targets (a sender's Sent copy, a bounce) are counted but not refused.
    sent = run(store.get_mailbox(inbox.id, "Sent"))
    run(store.deliver([Parcel(message(4), (Target(sent.id, quota=QuotaRule.EXEMPT),))]))
    assert run(store.quota(inbox.id)).used == counted(store, inbox)


def test_a_negative_quota_is_refused(store: Store, inbox: Inbox) -> None:
    with pytest.raises(errors.InvalidName):
        run(store.set_inbox_quota(inbox.address, -1))
    with pytest.raises(errors.InboxNotFound):
        run(store.set_inbox_quota(address(), 10))


def test_concurrent_appends_keep_the_counter_exact(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    drafts = run(store.get_mailbox(inbox.id, "Drafts"))

    async def many() -> None:
        await asyncio.gather(
            *(store.append((mailbox if n % 2 else drafts).id, message(n)) for n in range(40))
        )

    run(many())
    assert run(store.quota(inbox.id)).used == counted(store, inbox)
