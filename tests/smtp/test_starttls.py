"""The STARTTLS submission port: STARTTLS offered, AUTH before it is `538 5.7.11`, and after it
the session starts over inside TLS (RFC 3207)."""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, plain, read_mailbox, tls


def test_greeting_and_ehlo_before_tls(server: Server) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        assert s.greeting.line == "220 mail.example.test ESMTP mailgate"
        extensions = s.ehlo()
        assert "STARTTLS" in extensions
        # No mechanism is offered where none may be used.
        assert not any(e.startswith("AUTH") for e in extensions)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_before_starttls_is_538(server: Server, account: Account, mechanism: str) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        argument = plain(account.address, account.key) if mechanism == "PLAIN" else ""
        reply = s.cmd(f"AUTH {mechanism} {argument}".strip())
        assert reply.line.startswith("538 5.7.11"), reply.text
        # Nothing was authenticated: MAIL still needs AUTH.
        s.expect(f"MAIL FROM:<{account.address}>", "530 5.7.0")


def test_smtplib_login_before_starttls_gets_538(server: Server, account: Account) -> None:
    with smtplib.SMTP("127.0.0.1", server.submission, timeout=30) as smtp:
        smtp.ehlo()
        # smtplib sees no AUTH extension and would refuse locally; ask the server anyway.
        code, message = smtp.docmd("AUTH", f"PLAIN {plain(account.address, account.key)}")
        assert code == 538
        assert message.startswith(b"5.7.11")


def test_mail_before_starttls_is_530(server: Server, account: Account) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.expect(f"MAIL FROM:<{account.address}>", "530 5.7.0")


def test_after_starttls_auth_is_offered_and_works(server: Server, account: Account) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.starttls()
        extensions = s.ehlo()
        assert "AUTH LOGIN PLAIN" in extensions
        assert "STARTTLS" not in extensions
        s.login(account)


def test_starttls_resets_the_session(server: Server, account: Account) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.starttls()
        # RFC 3207 §4.2: everything known before TLS is forgotten, EHLO included.
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "503 5.5.1")
        s.ehlo()
        s.login(account)


def test_second_starttls_is_refused(server: Server) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        s.expect("STARTTLS", "503 5.5.1 TLS already active")
        s.expect("NOOP", "250 2.0.0")


def test_starttls_on_the_implicit_tls_port_is_refused(server: Server) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        s.expect("STARTTLS", "503 5.5.1 TLS already active")
        s.expect("NOOP", "250 2.0.0")


def test_starttls_with_argument_is_a_syntax_error(server: Server) -> None:
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.expect("STARTTLS now", "501 5.5.4")


def test_commands_pipelined_behind_starttls_are_discarded(server: Server, account: Account) -> None:
    """Plain-text commands sent in the same packet as STARTTLS must not run inside the TLS
    session (the STARTTLS command-injection flaw, CVE-2011-0411 and its kin)."""
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.send(b"STARTTLS\r\nNOOP injected\r\n")
        assert s.read_reply().line.startswith("220 2.0.0")
        s.sock = tls().wrap_socket(s.sock)
        s._buffer = b""
        reply = s.cmd("EHLO client.example.test")
        # The first reply inside TLS answers our EHLO, not the injected NOOP.
        assert reply.lines[0] == "250-mail.example.test", reply.text


def test_guide_starttls_example(server: Server, account: Account, other: Account) -> None:
    message = make_message(account.address, other.address, subject="via 587")
    with smtplib.SMTP("127.0.0.1", server.submission, timeout=30) as smtp:
        smtp.starttls(context=tls())
        smtp.login(account.address, account.key)
        assert smtp.sendmail(account.address, [other.address], message) == {}
    [stored] = read_mailbox(server, other)
    assert stored.header("Subject") == ["via 587"]
    # RFC 3848: authenticated submission over TLS is ESMTPSA.
    assert "with ESMTPSA" in stored.header("Received")[0]


def test_failed_tls_handshake_leaves_the_server_serving(server: Server, account: Account) -> None:
    with SMTPSession.connect(server, starttls_port=True) as broken:
        broken.ehlo()
        broken.expect("STARTTLS", "220 2.0.0")
        broken.send(b"\x16\x03\x01\x00\x05garbage, not a ClientHello\r\n")
        assert broken.closed()
    with SMTPSession.connect(server, starttls_port=True) as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        s.login(account)
