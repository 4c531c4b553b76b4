"""RCPT: at most 50 recipients (`452 4.5.3` for the 51st); hosted inboxes are delivered to,
recipients on other servers queued, unknown addresses at our own domains refused (`550 5.1.1`);
addresses compared case-insensitively."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server, unique_address
from tests.smtp.helpers import SMTPSession, dot_stuff, mailbox_count, read_mailbox, smtp_login

UNKNOWN = "550 5.1.1 No such recipient here"


def test_fifty_recipients_and_the_51st_gets_452(server: Server, account: Account) -> None:
    recipients = [server.account() for _ in range(51)]
    addresses = [r.address for r in recipients]
    message = make_message(account.address, addresses, subject="to fifty")
    with smtp_login(server, account) as smtp:
        refused = smtp.sendmail(account.address, addresses, message)
    # smtplib sends the message when some recipients were accepted and reports the rest.
    assert refused == {addresses[50]: (452, b"4.5.3 Too many recipients")}
    for recipient in recipients[:50]:
        assert mailbox_count(server, recipient) == 1, recipient.address
    assert mailbox_count(server, recipients[50]) == 0
    [sent] = read_mailbox(server, account, "Sent")
    assert sent.header("Subject") == ["to fifty"]


def test_recipient_limit_is_per_message(server: Server, account: Account) -> None:
    recipients = [server.account().address for _ in range(50)]
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        for rcpt in recipients:
            s.expect(f"RCPT TO:<{rcpt}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{account.address}>", "452 4.5.3")
        s.expect("RSET", "250 2.0.0")
        # A new transaction has a fresh allowance.
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{account.address}>", "250 2.1.5")


def test_every_rcpt_counts_repeats_too_and_each_address_gets_one_copy(
    server: Server, account: Account
) -> None:
    recipients = [server.account() for _ in range(25)]
    addresses = [r.address for r in recipients]
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        for address in addresses + [a.upper() for a in addresses]:
            s.expect(f"RCPT TO:<{address}>", "250 2.1.5")
        # The 51st RCPT is one too many, though it names a recipient already given.
        s.expect(f"RCPT TO:<{addresses[0]}>", "452 4.5.3")
        s.expect("DATA", "354")
        s.send(dot_stuff(make_message(account.address, addresses, subject="repeats")) + b".\r\n")
        reply = s.read_reply()
        assert reply.line.startswith("250 2.0.0"), reply.text
    for recipient in recipients:
        assert mailbox_count(server, recipient) == 1, recipient.address
    assert mailbox_count(server, account, "Sent") == 1


def test_configured_limit(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"max_recipients": 2})
    sender, a, b, c = (srv.account() for _ in range(4))
    with SMTPSession.login_as(srv, sender) as s:
        s.expect(f"MAIL FROM:<{sender.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{a.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{b.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{c.address}>", "452 4.5.3")


@pytest.mark.parametrize(
    ("recipient", "refusal"),
    [
        ("nobody-here@example.test", UNKNOWN),  # a hosted domain, but no such inbox
        ("user@[127.0.0.1]", "501 5.1.3"),  # address literals are never hosted
    ],
)
def test_recipient_that_cannot_exist_is_refused(
    server: Server, account: Account, recipient: str, refusal: str
) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{recipient}>", refusal)
        # With no accepted recipient there is nothing to send.
        s.expect("DATA", "503 5.5.1")
    assert read_mailbox(server, account, "Sent") == []


def _queued_for(server: Server, account: Account) -> list[str]:
    items = server.call(server.store.list_outbound())
    return sorted(i.recipient for i in items if i.mail_from == account.address)


def test_recipient_on_another_server_is_queued(server: Server, account: Account) -> None:
    with smtp_login(server, account) as smtp:
        refused = smtp.sendmail(
            account.address,
            ["recipient@example.com"],
            make_message(account.address, "recipient@example.com"),
        )
    assert refused == {}
    # 250 means committed: the Sent copy and the queued recipient, together.
    assert len(read_mailbox(server, account, "Sent")) == 1
    assert _queued_for(server, account) == ["recipient@example.com"]


def test_hosted_and_foreign_recipients_mixed(
    server: Server, account: Account, other: Account
) -> None:
    foreign = "friend@example.com"
    message = make_message(account.address, [other.address, foreign])
    with smtp_login(server, account) as smtp:
        refused = smtp.sendmail(account.address, [other.address, foreign], message)
    assert refused == {}
    assert mailbox_count(server, other) == 1
    assert mailbox_count(server, account, "Sent") == 1
    assert _queued_for(server, account) == [foreign]


@pytest.mark.parametrize(
    "recipient", ["<no-at-sign>", "<a@b@c>", "<@>", "<bad..dots@example.test>"]
)
def test_malformed_recipient(server: Server, account: Account, recipient: str) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        reply = s.cmd(f"RCPT TO:{recipient}")
        assert reply.code in (501, 550, 553), reply.text
        assert reply.has_enhanced_code(), reply.text
        s.expect("NOOP", "250 2.0.0")


def test_recipient_case_does_not_matter(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(
            account.address, [other.address.upper()], make_message(account.address, other.address)
        )
        assert reply.line.startswith("250 2.0.0")
    assert mailbox_count(server, other) == 1


def test_same_recipient_twice_gets_one_copy(
    server: Server, account: Account, other: Account
) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")
        s.expect(f"RCPT TO:<{other.address.upper()}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(make_message(account.address, other.address)) + b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    assert [m.uid for m in read_mailbox(server, other)] == [1]


def test_rcpt_before_mail(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"RCPT TO:<{other.address}>", "503 5.5.1")


def test_unknown_rcpt_parameter(server: Server, account: Account, other: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{other.address}> NOTIFY=NEVER", "555 5.5.4")
        s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")


def test_deleted_inbox_is_no_longer_a_recipient(server: Server, account: Account) -> None:
    gone = server.account(unique_address("gone"))
    server.call(server.store.delete_inbox(gone.address))
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        assert s.cmd(f"RCPT TO:<{gone.address}>").line == UNKNOWN
