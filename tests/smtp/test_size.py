"""Message size: SIZE is advertised (RFC 1870), a declared or actual size over the limit gets
`552 5.3.4`, and nothing of a refused message is stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, dot_stuff, read_mailbox

TEN_MB = 10485760
TOO_BIG = "552 5.3.4"


def test_size_is_advertised(server: Server) -> None:
    with SMTPSession.connect(server) as s:
        assert f"SIZE {TEN_MB}" in s.ehlo()


def test_declared_size_over_the_limit(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.expect(f"MAIL FROM:<{account.address}> SIZE={TEN_MB + 1}", TOO_BIG)
        assert reply.has_enhanced_code()
        # The refused MAIL opened no transaction; a fitting one is accepted.
        s.expect(f"MAIL FROM:<{account.address}> SIZE={TEN_MB}", "250 2.1.0")


@pytest.mark.parametrize("value", ["", "big", "-1", "1e6"])
def test_malformed_size_parameter(server: Server, account: Account, value: str) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.cmd(f"MAIL FROM:<{account.address}> SIZE={value}")
        assert reply.code == 501, reply.text
        assert reply.has_enhanced_code(), reply.text


def test_actual_size_over_the_default_limit(
    server: Server, account: Account, other: Account
) -> None:
    """A client that does not declare SIZE and sends 10 MB + 1 KB is refused at the final dot,
    and the session stays usable."""
    line = b"x" * 998 + b"\r\n"
    body = line * (TEN_MB // len(line) + 2)
    data = make_message(account.address, other.address, body=body.decode())
    assert len(data) > TEN_MB
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{other.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(data + b".\r\n")
        reply = s.read_reply()
        assert reply.line.startswith(TOO_BIG), reply.text
        assert reply.has_enhanced_code()
        assert s.send_mail(
            account.address,
            [other.address],
            make_message(account.address, other.address, subject="small"),
        ).line.startswith("250 2.0.0")
    [stored] = read_mailbox(server, other)
    assert stored.header("Subject") == ["small"]
    assert len(read_mailbox(server, account, "Sent", with_bodies=False)) == 1


def test_limit_is_configurable_and_exact_sizes_pass(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"max_message_size": 2000})
    sender, recipient = srv.account(), srv.account()
    with SMTPSession.connect(srv) as s:
        assert "SIZE 2000" in s.ehlo()
        s.login(sender)
        s.expect(f"MAIL FROM:<{sender.address}> SIZE=2001", TOO_BIG)
        head = make_message(sender.address, recipient.address, subject="fits", body="")
        fits = head + b"y" * (1500 - len(head) - 2) + b"\r\n"
        assert s.send_mail(sender.address, [recipient.address], fits).line.startswith("250 2.0.0")
        over = head + b"z" * 2100 + b"\r\n"
        s.expect(f"MAIL FROM:<{sender.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{recipient.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(over) + b".\r\n")
        assert s.read_reply().line.startswith(TOO_BIG)
    [stored] = read_mailbox(srv, recipient)
    assert stored.header("Subject") == ["fits"]
    assert stored.raw.endswith(b"y" * (1500 - len(head) - 2) + b"\r\n")


def test_long_lines_are_accepted(server: Server, account: Account, other: Account) -> None:
    """Generated text often arrives as one long unwrapped line; it is stored as sent."""
    paragraph = "word " * 4000
    data = make_message(account.address, other.address, body=paragraph + "\r\n")
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address], data)
        assert reply.line.startswith("250 2.0.0"), reply.text
    [stored] = read_mailbox(server, other)
    assert stored.raw.endswith(paragraph.encode() + b"\r\n")
