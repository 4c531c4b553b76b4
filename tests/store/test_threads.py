"""Threads: each message is filed in a conversation of its inbox, by Message-ID, In-Reply-To
and References, and by subject for replies without usable references; stored mail is threaded
by the upgrade that brings threads."""

from __future__ import annotations

from collections.abc import Callable

from mailgate.store.api import Store
from mailgate.store.records import Inbox, Mailbox, Parcel, Target
from tests.store.conftest import address, downgrade, run


def mail(
    msgid: str | None,
    subject: str = "Plans",
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    lines = ["From: a@example.test", f"Subject: {subject}"]
    if msgid:
        lines.append(f"Message-ID: {msgid}")
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    return ("\r\n".join(lines) + "\r\n\r\nBody\r\n").encode()


def thread_of(store: Store, box: Mailbox, uid: int) -> str:
    (row,) = run(store.fetch(box.id, [(uid, uid)], ["thread"]))
    assert row.thread is not None
    return row.thread


def test_replies_join_their_parents_thread(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, mail("<root@x>")))
    run(store.append(mailbox.id, mail("<r1@x>", "Re: Plans", in_reply_to="<root@x>")))
    # References only, nearest last: the thread of the nearest known ancestor.
    run(store.append(mailbox.id, mail("<r2@x>", "Re: Plans", references="<root@x> <r1@x>")))
    run(store.append(mailbox.id, mail("<other@x>", "Something else")))
    threads = [thread_of(store, mailbox, uid) for uid in (1, 2, 3, 4)]
    assert threads[0] == threads[1] == threads[2]
    assert threads[3] != threads[0]


def test_one_message_in_two_mailboxes_of_an_inbox_is_one_thread(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    sent = run(store.get_mailbox(inbox.id, "Sent"))
    (placed,) = run(
        store.deliver([Parcel(mail("<self@x>"), (Target(sent.id), Target(mailbox.id)))])
    )
    assert thread_of(store, sent, placed[0].uid) == thread_of(store, mailbox, placed[1].uid)
    # A copy keeps its thread too.
    trash = run(store.get_mailbox(inbox.id, "Trash"))
    copied = run(store.copy(mailbox.id, [(1, 1)], trash.id))
    assert thread_of(store, trash, copied.dest_uids[0]) == thread_of(store, mailbox, 1)


def test_each_inbox_has_its_own_threads(store: Store, mailbox: Mailbox) -> None:
    other = run(store.create_inbox(address()))
    other_box = run(store.get_mailbox(other.id, "INBOX"))
    (placed,) = run(
        store.deliver([Parcel(mail("<m@x>"), (Target(mailbox.id), Target(other_box.id)))])
    )
    assert thread_of(store, mailbox, placed[0].uid) != thread_of(store, other_box, placed[1].uid)


def test_a_reply_that_arrives_first_is_joined_by_its_parent(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, mail("<late-child@x>", "Re: Late", in_reply_to="<late@x>")))
    run(store.append(mailbox.id, mail("<late@x>", "Late")))
    assert thread_of(store, mailbox, 1) == thread_of(store, mailbox, 2)


def test_a_reply_without_references_joins_by_subject(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, mail("<q@x>", "Quarterly report")))
    run(store.append(mailbox.id, mail("<q2@x>", "RE: Fwd: quarterly  report")))
    # Not a reply: the same subject alone starts its own conversation.
    run(store.append(mailbox.id, mail("<q3@x>", "Quarterly report")))
    assert thread_of(store, mailbox, 1) == thread_of(store, mailbox, 2)
    assert thread_of(store, mailbox, 3) != thread_of(store, mailbox, 1)


def test_messages_without_ids_get_threads_of_their_own(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, mail(None, "No id")))
    run(store.append(mailbox.id, mail(None, "No id either")))
    assert thread_of(store, mailbox, 1) != thread_of(store, mailbox, 2)


def test_the_upgrade_threads_stored_mail(
    store: Store, mailbox: Mailbox, open_store: Callable[..., Store]
) -> None:
    run(store.append(mailbox.id, mail("<a@x>")))
    run(store.append(mailbox.id, mail("<b@x>", "Re: Plans", in_reply_to="<a@x>")))
    run(store.append(mailbox.id, mail("<c@x>", "Unrelated")))
    downgrade(store, "0005")
    run(store.close())
    upgraded = open_store()
    threads = [thread_of(upgraded, mailbox, uid) for uid in (1, 2, 3)]
    assert threads[0] == threads[1] != threads[2]
