"""deliver() and append(): UIDs, flags, internaldate, the IMAP index stored at ingest, and one
transaction for a submission's Sent copy and every local recipient."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.events import Change, MessagesAdded
from mailgate.store.records import Inbox, Mailbox, Parcel, Target
from tests.store.conftest import address, count, message, run


def test_append_gives_uid_1_then_2(store: Store, mailbox: Mailbox) -> None:
    first = run(store.append(mailbox.id, message(1)))
    second = run(store.append(mailbox.id, message(2)))
    assert (first.mailbox_id, first.uid, first.uidvalidity) == (mailbox.id, 1, mailbox.uidvalidity)
    assert second.uid == 2
    box = run(store.get_mailbox(mailbox.inbox_id, "INBOX"))
    assert box.uidnext == 3
    assert box.highestmodseq > mailbox.highestmodseq


def test_append_stores_flags_and_internaldate(store: Store, mailbox: Mailbox) -> None:
    when = datetime.datetime(
        2020, 2, 29, 23, 59, 58, tzinfo=datetime.timezone(-datetime.timedelta(hours=5, minutes=30))
    )
    run(
        store.append(
            mailbox.id, message(1), flags=["\\Seen", "$Label1", "\\Flagged"], internaldate=when
        )
    )
    (row,) = run(store.fetch(mailbox.id, [(1, 1)]))
    assert row.flags == ("\\Seen", "\\Flagged", "$Label1")
    assert row.internaldate == when
    assert row.internaldate.utcoffset() == when.utcoffset()
    box = run(store.get_mailbox(mailbox.inbox_id, "INBOX"))
    assert box.keywords == ("$Label1",)


def test_append_without_internaldate_uses_now(store: Store, mailbox: Mailbox) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    run(store.append(mailbox.id, message(1)))
    after = datetime.datetime.now(datetime.UTC)
    (row,) = run(store.fetch(mailbox.id, [(1, 1)]))
    assert before - datetime.timedelta(seconds=1) <= row.internaldate <= after


def test_append_keeps_bytes_and_normalises_line_ends(store: Store, mailbox: Mailbox) -> None:
    raw = message(1)
    run(store.append(mailbox.id, raw))
    run(store.append(mailbox.id, b"Subject: bare LF\n\nline one\nline two\n"))
    first, second = run(store.fetch(mailbox.id, [(1, 2)], ["data"]))
    assert first.data == raw
    assert first.size == len(raw)
    assert second.data == b"Subject: bare LF\r\n\r\nline one\r\nline two\r\n"
    assert second.size == len(second.data)


def test_index_is_stored_at_ingest(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(7, subject="Quarterly report")))
    (row,) = run(
        store.fetch(
            mailbox.id,
            [(1, 1)],
            ["envelope", "bodystructure", "body", "header", "parts", "sent_date"],
        )
    )
    assert row.envelope is not None
    assert b'"Quarterly report"' in row.envelope
    assert row.bodystructure is not None
    assert row.bodystructure.startswith(b"(")
    assert row.body is not None
    assert row.header is not None
    assert b"Subject: Quarterly report" in row.header
    assert row.parts is not None
    assert row.sent_date == datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.UTC)
    assert row.data is None  # not asked for


def test_append_to_a_missing_mailbox_is_mailbox_not_found(store: Store) -> None:
    with pytest.raises(errors.MailboxNotFound):
        run(store.append(987654, message(1)))
    assert count(store, "messages") == 0


@pytest.mark.parametrize("flag", ["", "two words", "tab\tflag", "nul\x00", "\udcff", "x" * 201])
def test_append_with_an_invalid_flag_is_refused(store: Store, mailbox: Mailbox, flag: str) -> None:
    with pytest.raises(errors.InvalidName):
        run(store.append(mailbox.id, message(1), flags=[flag]))
    assert run(store.status(mailbox.id)).messages == 0


def test_broken_mime_is_stored_as_is(store: Store, mailbox: Mailbox) -> None:
    junk = (
        b'Content-Type: multipart/mixed; boundary="nope\r\n'
        b"Subject: =?utf-8?b?!!!?=\r\n\r\n\xff\xfe\x00 8-bit junk\r\n--nope\r\n"
    )
    run(store.append(mailbox.id, junk))
    (row,) = run(store.fetch(mailbox.id, [(1, 1)], ["data", "envelope", "bodystructure"]))
    assert row.data == junk
    assert row.envelope
    assert row.bodystructure


def test_large_message_is_indexed_off_the_loop(store: Store, mailbox: Mailbox) -> None:
    big = message(1, body="x" * 76 + "\r\n") + (b"y" * 76 + b"\r\n") * 20_000
    placed = run(store.append(mailbox.id, big))
    (row,) = run(store.fetch(mailbox.id, [(placed.uid, placed.uid)], ["data"]))
    assert row.data == big
    assert row.size == len(big)


# ------------------------------------------------------------------------ deliver


def test_deliver_files_sent_copy_and_recipients_sharing_one_blob(store: Store) -> None:
    sender = run(store.create_inbox(address("sender")))
    rcpt1 = run(store.create_inbox(address("r1")))
    rcpt2 = run(store.create_inbox(address("r2")))
    sent = run(store.get_mailbox(sender.id, "Sent"))
    in1 = run(store.get_mailbox(rcpt1.id, "INBOX"))
    in2 = run(store.get_mailbox(rcpt2.id, "INBOX"))
    raw = message(1)

    ((p_sent, p1, p2),) = run(
        store.deliver([Parcel(raw, (Target(sent.id, ("\\Seen",)), Target(in1.id), Target(in2.id)))])
    )

    assert (p_sent.mailbox_id, p_sent.uid) == (sent.id, 1)
    assert (p1.mailbox_id, p1.uid, p1.uidvalidity) == (in1.id, 1, in1.uidvalidity)
    assert (p2.mailbox_id, p2.uid) == (in2.id, 1)
    assert run(store.fetch(sent.id, [(1, 1)]))[0].flags == ("\\Seen",)
    assert run(store.fetch(in1.id, [(1, 1)]))[0].flags == ()
    assert count(store, "messages") == 1
    assert count(store, "blobs") == 1
    for box in (sent, in1, in2):
        assert run(store.fetch(box.id, [(1, 1)], ["data"]))[0].data == raw


def test_deliver_many_parcels_one_transaction(store: Store, inbox: Inbox, mailbox: Mailbox) -> None:
    sent = run(store.get_mailbox(inbox.id, "Sent"))
    result = run(
        store.deliver(
            [
                Parcel(message(1), (Target(mailbox.id),)),
                Parcel(message(2), (Target(mailbox.id), Target(sent.id))),
                Parcel(message(3), (Target(mailbox.id),)),
            ]
        )
    )
    assert [[p.uid for p in placed] for placed in result] == [[1], [2, 1], [3]]
    # All three got the one MODSEQ of the transaction.
    rows = run(store.fetch(mailbox.id, [(1, 3)]))
    assert len({r.modseq for r in rows}) == 1
    assert run(store.get_mailbox(inbox.id, "INBOX")).highestmodseq == rows[0].modseq


def test_deliver_merges_duplicate_targets(store: Store, mailbox: Mailbox) -> None:
    ((a, b),) = run(
        store.deliver(
            [Parcel(message(1), (Target(mailbox.id, ("\\Seen",)), Target(mailbox.id, ("$x",))))]
        )
    )
    assert a == b
    (row,) = run(store.fetch(mailbox.id, [(1, 10)]))
    assert row.flags == ("\\Seen", "$x")


def test_deliver_is_all_or_nothing(store: Store, mailbox: Mailbox) -> None:
    with pytest.raises(errors.MailboxNotFound):
        run(
            store.deliver(
                [
                    Parcel(message(1), (Target(mailbox.id),)),
                    Parcel(message(2), (Target(987654),)),
                ]
            )
        )
    assert run(store.status(mailbox.id)).messages == 0
    assert run(store.get_mailbox(mailbox.inbox_id, "INBOX")).uidnext == 1
    assert count(store, "messages") == 0


def test_deliver_of_a_parcel_without_targets_stores_nothing(store: Store) -> None:
    assert run(store.deliver([Parcel(message(1), ())])) == [[]]
    assert run(store.deliver([])) == []
    assert count(store, "messages") == 0
    assert count(store, "blobs") == 0


def test_same_bytes_delivered_twice_share_one_blob(store: Store, mailbox: Mailbox) -> None:
    raw = message(1)
    run(store.append(mailbox.id, raw))
    run(store.append(mailbox.id, raw))
    assert [r.uid for r in run(store.fetch(mailbox.id, [(1, 10)]))] == [1, 2]
    assert count(store, "messages") == 1


def test_deliver_publishes_the_new_highestmodseq(store: Store, mailbox: Mailbox) -> None:
    seen: list[Change] = []
    sub = store.bus.subscribe(mailbox.id, seen.append)
    try:
        run(store.append(mailbox.id, message(1)))
    finally:
        sub.close()
    box = run(store.get_mailbox(mailbox.inbox_id, "INBOX"))
    assert seen == [MessagesAdded(mailbox.inbox_id, mailbox.id, box.highestmodseq)]
    assert store.bus.listener_count() == 0


def test_a_listener_reads_the_committed_state(store: Store, mailbox: Mailbox) -> None:
    loop_results: list[int] = []

    def listener(event: Change) -> None:
        async def check() -> None:
            loop_results.append((await store.status(event.mailbox_id)).messages)

        asyncio.get_running_loop().create_task(check())

    sub = store.bus.subscribe(mailbox.id, listener)
    try:
        run(store.append(mailbox.id, message(1)))

        async def settle() -> None:
            for _ in range(100):
                if loop_results:
                    return
                await asyncio.sleep(0.01)

        run(settle())
    finally:
        sub.close()
    assert loop_results == [1]


def test_a_failing_listener_does_not_break_delivery(store: Store, mailbox: Mailbox) -> None:
    def broken(event: Change) -> None:
        raise RuntimeError("listener bug")

    sub = store.bus.subscribe(mailbox.id, broken)
    try:
        assert run(store.append(mailbox.id, message(1))).uid == 1
    finally:
        sub.close()


def test_uid_space_exhausted_is_limit_exceeded(store: Store, mailbox: Mailbox) -> None:
    from sqlalchemy import update

    from mailgate.store.models import mailboxes
    from mailgate.store.rows import MAX_UID

    async def exhaust() -> None:
        async def work(conn):  # type: ignore[no-untyped-def]
            await conn.execute(
                update(mailboxes).where(mailboxes.c.id == mailbox.id).values(uidnext=MAX_UID)
            )

        await store.db.write(work)

    run(exhaust())
    assert run(store.append(mailbox.id, message(1))).uid == MAX_UID
    with pytest.raises(errors.LimitExceeded):
        run(store.append(mailbox.id, message(2)))
    assert run(store.status(mailbox.id)).messages == 1


def test_message_id_in_reply_to_and_references_are_kept(store: Store, mailbox: Mailbox) -> None:
    raw = (
        b"From: a@example.test\r\nSubject: Re: plans\r\n"
        b"Message-ID:  <reply.1@example.test> (a comment)\r\n"
        b"In-Reply-To: <root@example.test>\r\n"
        b"References: <root@example.test>\r\n <mid@example.test>\r\n\r\nBody\r\n"
    )
    run(store.append(mailbox.id, raw))
    run(store.append(mailbox.id, b"Subject: no ids at all\r\n\r\nBody\r\n"))
    first, second = run(store.fetch(mailbox.id, [(1, 2)], ["msgid", "in_reply_to", "references"]))
    assert first.msgid == "<reply.1@example.test>"
    assert first.in_reply_to == "<root@example.test>"
    assert first.references == ("<root@example.test>", "<mid@example.test>")
    assert (second.msgid, second.in_reply_to, second.references) == (None, None, ())


def test_overlong_message_ids_are_left_out(store: Store, mailbox: Mailbox) -> None:
    huge = "<" + "x" * 5000 + "@example.test>"
    raw = (
        f"Message-ID: {huge}\r\nIn-Reply-To: {huge}\r\n"
        f"References: <ok@example.test> {huge}\r\n\r\nBody\r\n"
    ).encode()
    assert run(store.append(mailbox.id, raw)).uid == 1
    row = run(store.fetch(mailbox.id, [(1, 1)], ["msgid", "in_reply_to", "references"]))[0]
    assert (row.msgid, row.in_reply_to, row.references) == (None, None, ("<ok@example.test>",))
