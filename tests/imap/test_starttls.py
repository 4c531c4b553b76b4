"""The STARTTLS port: LOGINDISABLED and no logins until STARTTLS (RFC 3501 §6.2.1, §6.2.3)."""

from __future__ import annotations

import base64
import imaplib

import pytest

from tests.harness import Account, Server, client_tls
from tests.transcript import Transcript


def _caps(line: bytes) -> set[bytes]:
    return set(line.replace(b"[", b" ").replace(b"]", b" ").split())


def test_greeting_and_capability_before_starttls(server: Server) -> None:
    with Transcript.connect(server, tls=False) as s:
        assert s.greeting.startswith(b"* OK ")
        assert {b"STARTTLS", b"LOGINDISABLED"} <= _caps(s.greeting)
        r = s.ok("CAPABILITY")
        caps = _caps(r.lines(b"CAPABILITY")[0])
        assert {b"IMAP4rev1", b"STARTTLS", b"LOGINDISABLED"} <= caps
        assert b"AUTH=PLAIN" not in caps


def test_login_before_starttls_is_privacyrequired(server: Server, account: Account) -> None:
    with Transcript.connect(server, tls=False) as s:
        s.no(f'LOGIN "{account.address}" "{account.key}"', code="PRIVACYREQUIRED")
        sasl = base64.b64encode(f"\0{account.address}\0{account.key}".encode()).decode()
        s.no(f"AUTHENTICATE PLAIN {sasl}", code="PRIVACYREQUIRED")
        s.bad("SELECT INBOX")  # still not logged in


def test_login_works_after_starttls(server: Server, account: Account) -> None:
    with Transcript.connect(server, tls=False) as s:
        s.starttls()
        r = s.ok("CAPABILITY")
        caps = _caps(r.lines(b"CAPABILITY")[0])
        assert b"LOGINDISABLED" not in caps
        assert b"STARTTLS" not in caps
        assert b"AUTH=PLAIN" in caps
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        s.ok("SELECT INBOX")


def test_authenticate_works_after_starttls(server: Server, account: Account) -> None:
    with Transcript.connect(server, tls=False) as s:
        s.starttls()
        sasl = base64.b64encode(f"\0{account.address}\0{account.key}".encode()).decode()
        s.ok(f"AUTHENTICATE PLAIN {sasl}")


def test_imaplib_starttls(server: Server, account: Account) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap, timeout=30)
    try:
        assert "LOGINDISABLED" in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login(account.address, account.key)
        assert client.starttls(ssl_context=client_tls())[0] == "OK"
        assert client.login(account.address, account.key)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_starttls_twice_is_refused(server: Server) -> None:
    with Transcript.connect(server, tls=False) as s:
        s.starttls()
        s.bad("STARTTLS")


def test_starttls_on_the_tls_port_is_refused(server: Server) -> None:
    with Transcript.connect(server) as s:
        s.bad("STARTTLS")
        s.ok("NOOP")


def test_commands_pipelined_before_the_handshake_are_dropped(
    server: Server, account: Account
) -> None:
    # The STARTTLS command injection attack: plaintext sent after STARTTLS, before the
    # handshake, must never be executed inside the TLS session.
    with Transcript.connect(server, tls=False) as s:
        s.send(f'a1 STARTTLS\r\na2 LOGIN "{account.address}" "{account.key}"\r\n')
        assert s.read_line().startswith(b"a1 OK")
        s.sock = client_tls().wrap_socket(s.sock)
        r = s.command("SELECT INBOX")
        assert r.status == "BAD", r  # not logged in: the injected LOGIN never ran
        assert not any(b"a2" in line for line in r.untagged)
