"""Submission to a full inbox: `552 5.2.2` for that recipient at RCPT (as Postfix with
Dovecot's LMTP answers), the others still get the message; the inbox that fills up takes the
message that fills it whole; the sender's own Sent copy is never refused."""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, dot_stuff, mailbox_count, smtp_login
from tests.transcript import Transcript

FULL = "552 5.2.2"


def set_quota(server: Server, account: Account, limit: int | None) -> None:
    server.call(server.store.set_inbox_quota(account.address, limit))


def fill(server: Server, sender: Account, account: Account) -> None:
    """Deliver one message to `account`, then make its quota smaller than that: it is full."""
    with smtp_login(server, sender) as smtp:
        smtp.sendmail(
            sender.address, [account.address], make_message(sender.address, account.address)
        )
    set_quota(server, account, 100)


def test_a_full_recipient_is_refused_the_others_get_the_message(
    server: Server, account: Account
) -> None:
    full, fine = server.account(), server.account()
    fill(server, account, full)
    message = make_message(account.address, [full.address, fine.address], subject="to both")
    with smtp_login(server, account) as smtp:
        refused = smtp.sendmail(account.address, [full.address, fine.address], message)
    assert list(refused) == [full.address]
    code, text = refused[full.address]
    assert (code, text.split(b" ")[0]) == (552, b"5.2.2")
    assert mailbox_count(server, fine) == 1
    assert mailbox_count(server, full) == 1  # only what filled it


def test_with_only_full_recipients_nothing_is_sent(server: Server, account: Account) -> None:
    full = server.account()
    fill(server, account, full)
    sent_before = mailbox_count(server, account, "Sent")
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        reply = s.expect(f"RCPT TO:<{full.address}>", FULL)
        assert reply.has_enhanced_code()
        s.expect("DATA", "503 5.5.1")
    assert mailbox_count(server, account, "Sent") == sent_before


def test_the_message_that_fills_an_inbox_is_taken_whole(server: Server, account: Account) -> None:
    recipient = server.account()
    set_quota(server, recipient, 1000)
    big = make_message(account.address, recipient.address, body="x" * 3000 + "\r\n")
    with smtp_login(server, account) as smtp:
        assert smtp.sendmail(account.address, [recipient.address], big) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail(account.address, [recipient.address], big)
    assert refused.value.recipients[recipient.address][0] == 552
    assert mailbox_count(server, recipient) == 1


def test_a_full_sender_still_sends_and_keeps_its_sent_copy(
    server: Server, account: Account, other: Account
) -> None:
    fill(server, other, account)
    with smtp_login(server, account) as smtp:
        assert (
            smtp.sendmail(
                account.address, [other.address], make_message(account.address, other.address)
            )
            == {}
        )
    assert mailbox_count(server, account, "Sent") == 1
    assert mailbox_count(server, other) == 1


def test_expunging_makes_room_again(server: Server, account: Account) -> None:
    full = server.account()
    fill(server, account, full)
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{full.address}>", FULL)
    with Transcript.login(server, full) as imap:
        imap.ok("SELECT INBOX")
        imap.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        imap.ok("EXPUNGE")
    with smtp_login(server, account) as smtp:
        assert (
            smtp.sendmail(
                account.address, [full.address], make_message(account.address, full.address)
            )
            == {}
        )
    assert mailbox_count(server, full) == 1


def test_an_inbox_filled_between_rcpt_and_data_is_a_temporary_failure(
    server: Server, account: Account
) -> None:
    recipient, fine = server.account(), server.account()
    data = make_message(account.address, [recipient.address, fine.address])
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{recipient.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{fine.address}>", "250 2.1.5")
        fill(server, account, recipient)
        s.expect("DATA", "354")
        s.send(dot_stuff(data) + b".\r\n")
        reply = s.read_reply()
        # Retried, the full recipient is refused at RCPT and the other gets the message.
        assert reply.line.startswith("452 4.2.2"), reply.text
    assert mailbox_count(server, fine) == 0
    assert mailbox_count(server, recipient) == 1  # what filled it, nothing more
