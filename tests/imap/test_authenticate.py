"""AUTHENTICATE PLAIN (RFC 4616) with SASL-IR (RFC 4959) and with a continuation."""

from __future__ import annotations

import base64

from tests.harness import Account, Server
from tests.transcript import Transcript


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_sasl_ir(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        assert b"SASL-IR" in s.greeting
        assert b"AUTH=PLAIN" in s.greeting
        r = s.ok(f"AUTHENTICATE PLAIN {plain(account.address, account.key)}")
        assert r.code is not None
        assert r.code.startswith("CAPABILITY ")
        s.ok("SELECT INBOX")


def test_continuation(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.send("a1 AUTHENTICATE PLAIN\r\n")
        assert s.read_line().startswith(b"+")
        s.send(plain(account.address, account.key) + "\r\n")
        assert s.read_line().startswith(b"a1 OK ")
        s.ok("SELECT INBOX")


def test_mechanism_name_is_case_insensitive(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.ok(f"AUTHENTICATE plain {plain(account.address, account.key)}")


def test_imaplib_authenticate(server: Server, account: Account) -> None:
    client = server.imap_client()
    try:
        typ, _ = client.authenticate(
            "PLAIN", lambda _: f"\0{account.address}\0{account.key}".encode()
        )
        assert typ == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_cancel_is_bad(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.send("a1 AUTHENTICATE PLAIN\r\n")
        assert s.read_line().startswith(b"+")
        s.send("*\r\n")
        assert s.read_line().startswith(b"a1 BAD ")
        # The session goes on, unauthenticated.
        s.bad("SELECT INBOX")
        s.ok(f"AUTHENTICATE PLAIN {plain(account.address, account.key)}")


def test_bad_base64_in_continuation_is_bad(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.send("a1 AUTHENTICATE PLAIN\r\n")
        assert s.read_line().startswith(b"+")
        s.send("!!!not base64!!!\r\n")
        line = s.read_line()
        assert line.startswith(b"a1 BAD "), line
        s.ok(f"AUTHENTICATE PLAIN {plain(account.address, account.key)}")


def test_bad_base64_initial_response_is_bad(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.bad("AUTHENTICATE PLAIN !!!notbase64")
        s.bad("AUTHENTICATE PLAIN AAA")  # not a multiple of four
        s.ok(f"AUTHENTICATE PLAIN {plain(account.address, account.key)}")


def test_malformed_plain_message_is_bad(server: Server) -> None:
    with Transcript.connect(server) as s:
        # Valid base64, but not authzid NUL authcid NUL passwd.
        s.bad("AUTHENTICATE PLAIN " + base64.b64encode(b"just-one-field").decode())
        s.bad("AUTHENTICATE PLAIN =")  # an empty response carries no credentials


def test_wrong_key_is_authenticationfailed(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.no(f"AUTHENTICATE PLAIN {plain(account.address, 'wrong')}", code="AUTHENTICATIONFAILED")
        s.send("a1 AUTHENTICATE PLAIN\r\n")
        assert s.read_line().startswith(b"+")
        s.send(plain(account.address, "wrong") + "\r\n")
        assert s.read_line().startswith(b"a1 NO [AUTHENTICATIONFAILED]")
        s.bad("SELECT INBOX")


def test_key_of_another_inbox_is_refused(server: Server, account: Account, other: Account) -> None:
    with Transcript.connect(server) as s:
        s.no(f"AUTHENTICATE PLAIN {plain(other.address, account.key)}", code="AUTHENTICATIONFAILED")


def test_authzid_equal_to_user_is_accepted(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.ok(f"AUTHENTICATE PLAIN {plain(account.address, account.key, account.address)}")


def test_authzid_of_someone_else_is_refused(
    server: Server, account: Account, other: Account
) -> None:
    with Transcript.connect(server) as s:
        r = s.no(f"AUTHENTICATE PLAIN {plain(account.address, account.key, other.address)}")
        assert r.code is not None
        s.bad("SELECT INBOX")


def test_unsupported_mechanism_is_refused(server: Server) -> None:
    with Transcript.connect(server) as s:
        r = s.command("AUTHENTICATE CRAM-MD5")
        assert r.status in ("NO", "BAD"), r.tagged
        assert not any(line.startswith(b"+") for line in r.untagged)


def test_authenticate_after_login_is_refused(imap: Transcript, account: Account) -> None:
    imap.bad(f"AUTHENTICATE PLAIN {plain(account.address, account.key)}")
