"""The envelope sender and the From header must be the logged-in inbox, else
`550 5.7.1 Sender not authorized`; nothing refused is stored anywhere."""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server, unique_address
from tests.smtp.helpers import SMTPSession, dot_stuff, read_mailbox, smtp_login

NOT_AUTHORIZED = "550 5.7.1 Sender not authorized"


def _data_reply(s: SMTPSession, sender: str, rcpt: str, data: bytes) -> str:
    s.expect(f"MAIL FROM:<{sender}>", "250 2.1.0")
    s.expect(f"RCPT TO:<{rcpt}>", "250 2.1.5")
    s.expect("DATA", "354")
    s.send(dot_stuff(data) + b".\r\n")
    return s.read_reply().line


def _assert_nothing_stored(server: Server, sender: Account, recipient: Account) -> None:
    assert read_mailbox(server, sender, "Sent") == []
    assert read_mailbox(server, recipient) == []


@pytest.mark.parametrize(
    "envelope", ["someone@else.test", "{other}", "{me_local}@other.test", "postmaster"]
)
def test_foreign_envelope_sender_is_refused(
    server: Server, account: Account, other: Account, envelope: str
) -> None:
    sender = envelope.format(other=other.address, me_local=account.address.split("@")[0])
    with SMTPSession.login_as(server, account) as s:
        reply = s.cmd(f"MAIL FROM:<{sender}>")
        assert reply.line == NOT_AUTHORIZED
        # The refusal left no sender behind: RCPT still needs MAIL.
        s.expect(f"RCPT TO:<{other.address}>", "503 5.5.1")
        # And the right sender is still accepted in the same session.
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")


def test_smtplib_foreign_sender_is_refused(
    server: Server, account: Account, other: Account
) -> None:
    with smtp_login(server, account) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail(other.address, [other.address], make_message(other.address, other.address))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 Sender not authorized"
    _assert_nothing_stored(server, account, other)


def test_null_sender_is_refused(server: Server, account: Account) -> None:
    # A bounce address is for servers, not for a logged-in inbox.
    with SMTPSession.login_as(server, account) as s:
        s.expect("MAIL FROM:<>", NOT_AUTHORIZED)


def test_envelope_sender_in_other_case_is_the_same_inbox(
    server: Server, account: Account, other: Account
) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(
            account.address.upper(), [other.address], make_message(account.address, other.address)
        )
        assert reply.line.startswith("250 2.0.0"), reply.text


@pytest.mark.parametrize(
    "from_header",
    [
        "someone@else.test",
        "{other}",
        '"{me}" <{other}>',  # the display name looks right, the address does not
        "{me}, {other}",  # one of two authors is someone else
        "",
        "undisclosed",
    ],
)
def test_foreign_from_header_is_refused(
    server: Server, account: Account, other: Account, from_header: str
) -> None:
    value = from_header.format(me=account.address, other=other.address)
    data = (
        make_message(value, other.address)
        if value
        else make_message("x", other.address).replace(b"From: x\r\n", b"")
    )
    with SMTPSession.login_as(server, account) as s:
        assert _data_reply(s, account.address, other.address, data) == NOT_AUTHORIZED
        # The session goes on: a correct message is accepted right after.
        good = make_message(account.address, other.address, subject="good")
        assert _data_reply(s, account.address, other.address, good).startswith("250 2.0.0")
    [stored] = read_mailbox(server, other)
    assert stored.header("Subject") == ["good"]
    assert len(read_mailbox(server, account, "Sent")) == 1


def test_second_from_field_with_another_address_is_refused(
    server: Server, account: Account, other: Account
) -> None:
    data = make_message(account.address, other.address, extra={"X-Dummy": "1"})
    data = data.replace(b"X-Dummy: 1\r\n", f"From: {other.address}\r\n".encode())
    with SMTPSession.login_as(server, account) as s:
        assert _data_reply(s, account.address, other.address, data) == NOT_AUTHORIZED
    _assert_nothing_stored(server, account, other)


def test_smtplib_foreign_from_header_is_refused(
    server: Server, account: Account, other: Account
) -> None:
    with smtp_login(server, account) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail(account.address, [other.address], make_message(other.address, other.address))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 Sender not authorized"
    _assert_nothing_stored(server, account, other)


@pytest.mark.parametrize(
    "from_header",
    [
        "{me}",
        "{upper}",
        "Alice Example <{me}>",
        '"Example, Alice" <{me}>',
        "=?utf-8?q?Al=C3=AFce?= <{me}>",
        "{me} (Alice)",
        "<{me}>",
    ],
)
def test_own_address_in_any_from_form_is_accepted(
    server: Server, account: Account, other: Account, from_header: str
) -> None:
    value = from_header.format(me=account.address, upper=account.address.upper())
    with SMTPSession.login_as(server, account) as s:
        line = _data_reply(s, account.address, other.address, make_message(value, other.address))
        assert line.startswith("250 2.0.0"), line
    [stored] = read_mailbox(server, other)
    assert stored.header("From") == [value]


def test_pod_key_does_not_let_one_inbox_send_as_another(server: Server) -> None:
    pod = f"pod-{unique_address('p').split('@')[0]}"
    first = server.account(pod=pod)
    second = server.account(pod=pod)
    pod_key = server.pod_key(pod)
    logged_in = Account(first.address, pod_key)
    with SMTPSession.login_as(server, logged_in) as s:
        assert s.cmd(f"MAIL FROM:<{second.address}>").line == NOT_AUTHORIZED
        line = _data_reply(
            s, first.address, second.address, make_message(second.address, second.address)
        )
        assert line == NOT_AUTHORIZED
    assert read_mailbox(server, second) == []


def test_inbox_deleted_while_logged_in_cannot_send(server: Server, other: Account) -> None:
    gone = server.account()
    with SMTPSession.login_as(server, gone) as s:
        server.call(server.store.delete_inbox(gone.address))
        data = make_message(gone.address, other.address)
        # Permanent, not "try again later": retrying cannot bring the inbox back.
        assert _data_reply(s, gone.address, other.address, data) == NOT_AUTHORIZED
        # The transaction is over; the session is still answering.
        s.expect(f"MAIL FROM:<{gone.address}>", "250 2.1.0")
    assert read_mailbox(server, other) == []
