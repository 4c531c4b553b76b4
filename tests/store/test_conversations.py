"""An inbox's mail as the HTTP API sees it: one message per stored message and inbox, however
many of its mailboxes hold it; keyset pages; criteria on copies; threads."""

from __future__ import annotations

import datetime

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.conversations import Criterion, Page, blob_message_id
from mailgate.store.records import FLAGGED, SEEN, Inbox, Mailbox, Parcel, Target
from tests.store.conftest import address, run


def mail(n: int, subject: str | None = None, reply_to: int | None = None) -> bytes:
    lines = [
        "From: Ann Example <ann@example.test>",
        "To: bob@example.test, Cy <cy@example.test>",
        f"Subject: {subject or f'Message {n}'}",
        f"Message-ID: <m{n}@example.test>",
    ]
    if reply_to is not None:
        lines.append(f"In-Reply-To: <m{reply_to}@example.test>")
    return ("\r\n".join(lines) + f"\r\n\r\nHello number {n}.\r\n").encode()


def at(minute: int) -> datetime.datetime:
    return datetime.datetime(2026, 12, 1, 12, minute, tzinfo=datetime.UTC)


def file(store: Store, box: Mailbox, n: int, minute: int, **kw: object) -> None:
    run(store.append(box.id, mail(n, **kw), internaldate=at(minute)))  # type: ignore[arg-type]


def ids(found: list) -> list[str]:  # type: ignore[type-arg]
    return [m.message_id for m in found]


def test_newest_first_in_keyset_pages(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    for n in range(7):
        file(store, mailbox, n, minute=n)
    seen: list[str] = []
    page = Page(limit=3)
    while True:
        found = run(store.mail_page([inbox.id], page))
        seen += ids(found)
        if len(found) < page.limit:
            break
        last = found[-1]
        page = Page(limit=3, start=(last.timestamp, last.blob_id))
    assert seen == [f"<m{n}@example.test>" for n in reversed(range(7))]
    ascending = run(store.mail_page([inbox.id], Page(ascending=True, limit=2)))
    assert ids(ascending) == ["<m0@example.test>", "<m1@example.test>"]
    window = Page(after=int(at(2).timestamp()), before=int(at(5).timestamp()))
    assert ids(run(store.mail_page([inbox.id], window))) == [
        "<m4@example.test>",
        "<m3@example.test>",
        "<m2@example.test>",
    ]


def test_a_message_in_two_mailboxes_is_one_message(store: Store, inbox: Inbox) -> None:
    sent = run(store.get_mailbox(inbox.id, "Sent"))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    run(store.deliver([Parcel(mail(1), (Target(sent.id, (SEEN,)), Target(box.id)))]))
    (found,) = run(store.mail_page([inbox.id], Page()))
    assert sorted(c.mailbox for c in found.copies) == ["INBOX", "Sent"]
    assert found.subject == "Message 1"
    assert found.from_ == "Ann Example <ann@example.test>"
    assert found.to == ("bob@example.test", "Cy <cy@example.test>")
    assert found.preview == "Hello number 1."
    assert found.inbox == inbox.address
    assert found.thread


def test_criteria_and_mailboxes_choose_the_messages(
    store: Store, inbox: Inbox, mailbox: Mailbox
) -> None:
    spam = run(store.get_mailbox(inbox.id, "Spam"))
    for n in range(4):
        file(store, mailbox, n, minute=n)
    file(store, spam, 9, minute=9)
    run(store.store_flags(mailbox.id, [(1, 2)], "+", [SEEN]))
    run(store.store_flags(mailbox.id, [(2, 2)], "+", [FLAGGED, "Project"]))

    def page(*criteria: Criterion, **kw: object) -> list[str]:
        return ids(run(store.mail_page([inbox.id], Page(criteria=criteria, **kw))))  # type: ignore[arg-type]

    visible = frozenset({"Spam", "Trash", "Drafts"})
    assert page(exclude=visible) == [f"<m{n}@example.test>" for n in (3, 2, 1, 0)]
    assert page() == [f"<m{n}@example.test>" for n in (9, 3, 2, 1, 0)]
    assert page(Criterion("mailbox", "Spam")) == ["<m9@example.test>"]
    unseen = Criterion("unseen", "Sent Drafts")
    assert page(unseen, exclude=visible) == ["<m3@example.test>", "<m2@example.test>"]
    assert page(Criterion("unseen", "Sent Drafts", present=False)) == [
        "<m1@example.test>",
        "<m0@example.test>",
    ]
    assert page(Criterion("flag", FLAGGED)) == ["<m1@example.test>"]
    assert page(Criterion("flag", "project")) == ["<m1@example.test>"]  # labels ignore case
    assert page(Criterion("flag", "Proj")) == []  # whole keywords only
    assert page(Criterion("flag", "Project"), Criterion("flag", SEEN)) == ["<m1@example.test>"]


def test_messages_by_id(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    file(store, mailbox, 1, minute=1)
    run(store.append(mailbox.id, b"Subject: no id\r\n\r\nBody\r\n", internaldate=at(2)))
    (no_id,) = [m for m in run(store.mail_page([inbox.id], Page())) if m.subject == "no id"]
    assert no_id.message_id == blob_message_id(no_id.blob_id)
    found = run(store.mail_by_ids([inbox.id], [no_id.message_id, "<m1@example.test>", "<none@x>"]))
    assert ids(found) == [no_id.message_id, "<m1@example.test>"]
    other = run(store.create_inbox(address()))
    assert run(store.mail_by_ids([other.id], ["<m1@example.test>"])) == []


def test_threads_in_pages(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    file(store, mailbox, 1, minute=1)
    file(store, mailbox, 2, minute=2)
    file(store, mailbox, 3, minute=3, subject="Re: Message 1", reply_to=1)
    threads = run(store.thread_page([inbox.id], Page()))
    assert len(threads) == 2
    assert threads[0].timestamp == int(at(3).timestamp())  # the newest message's thread first
    first = run(store.thread_by_id([inbox.id], threads[0].public_id))
    assert first == threads[0]
    messages = run(store.mail_page([inbox.id], Page(threads=frozenset({first.id}))))
    assert ids(messages) == ["<m3@example.test>", "<m1@example.test>"]
    assert {m.thread for m in messages} == {first.public_id}
    with pytest.raises(errors.NotFound):
        run(store.thread_by_id([inbox.id + 1000], first.public_id))
