"""LOGIN: inbox address + API key, key scopes (inbox, pod), revocation."""

from __future__ import annotations

import imaplib
import uuid

import pytest

from mailgate.auth import split_token
from tests.harness import DOMAIN, Account, Server
from tests.transcript import Transcript


def test_login_succeeds_and_reports_capabilities(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        r = s.ok(f'LOGIN "{account.address}" "{account.key}"')
        assert r.code is not None
        assert r.code.startswith("CAPABILITY ")
        caps = r.code.split()[1:]
        assert "IMAP4rev1" in caps
        assert "UIDPLUS" in caps  # post-login capabilities are announced
        assert "LOGINDISABLED" not in caps
        s.ok("SELECT INBOX")


def test_login_with_imaplib(server: Server, account: Account) -> None:
    client = server.imap_client()
    try:
        typ, _data = client.login(account.address, account.key)
        assert typ == "OK"
        assert client.state == "AUTH"
        assert client.select("INBOX") == ("OK", [b"0"])
    finally:
        client.logout()


def test_address_is_case_insensitive(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.ok(f'LOGIN "{account.address.upper()}" "{account.key}"')
        s.ok("SELECT INBOX")


def test_login_with_literals(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.ok("LOGIN \x00 \x00", account.address.encode(), account.key.encode())


def test_login_with_atoms(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.ok(f"LOGIN {account.address} {account.key}")


@pytest.mark.parametrize(
    "password",
    ["wrong", "mgk_000000000000_notthesecret", ""],
    ids=["garbage", "well-formed-unknown", "empty"],
)
def test_wrong_key_is_authenticationfailed(server: Server, account: Account, password: str) -> None:
    with Transcript.connect(server) as s:
        s.no(f'LOGIN "{account.address}" "{password}"', code="AUTHENTICATIONFAILED")
        # Still not logged in, and the connection is still usable.
        r = s.bad("SELECT INBOX")
        assert b"Log in first" in r.tagged
        s.ok(f'LOGIN "{account.address}" "{account.key}"')


def test_tampered_secret_is_refused(server: Server, account: Account) -> None:
    tampered = account.key[:-1] + ("A" if account.key[-1] != "A" else "B")
    with Transcript.connect(server) as s:
        s.no(f'LOGIN "{account.address}" "{tampered}"', code="AUTHENTICATIONFAILED")


def test_unknown_address_is_authenticationfailed(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.no(f'LOGIN "nobody-{uuid.uuid4().hex[:8]}@{DOMAIN}" "{account.key}"',
             code="AUTHENTICATIONFAILED")  # fmt: skip
        s.no(f'LOGIN "not an address" "{account.key}"', code="AUTHENTICATIONFAILED")


def test_key_of_another_inbox_is_refused(server: Server, account: Account, other: Account) -> None:
    with Transcript.connect(server) as s:
        s.no(f'LOGIN "{other.address}" "{account.key}"', code="AUTHENTICATIONFAILED")


def test_revoked_key_is_refused(server: Server, account: Account) -> None:
    parts = split_token(account.key)
    assert parts is not None
    with Transcript.connect(server) as s:
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
    server.call(server.store.revoke_key(parts[0]))
    with Transcript.connect(server) as s:
        s.no(f'LOGIN "{account.address}" "{account.key}"', code="AUTHENTICATIONFAILED")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        server.imap_client(account)


def test_pod_key_opens_every_inbox_of_its_pod_and_no_other(server: Server) -> None:
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    first, second = server.account(pod=pod), server.account(pod=pod)
    elsewhere = server.account(pod=f"pod-{uuid.uuid4().hex[:8]}")
    default = server.account()
    key = server.pod_key(pod)
    for inbox in (first, second):
        with Transcript.connect(server) as s:
            s.ok(f'LOGIN "{inbox.address}" "{key}"')
            s.ok("SELECT INBOX")
    for inbox in (elsewhere, default):
        with Transcript.connect(server) as s:
            s.no(f'LOGIN "{inbox.address}" "{key}"', code="AUTHENTICATIONFAILED")


def test_pod_key_session_sees_only_the_inbox_it_logged_in_to(server: Server) -> None:
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    first, second = server.account(pod=pod), server.account(pod=pod)
    key = server.pod_key(pod)
    with Transcript.login(server, first) as s:
        s.ok("CREATE OnlyInFirst")
    with Transcript.login(server, Account(second.address, key)) as s:
        s.no("SELECT OnlyInFirst", code="NONEXISTENT")


def test_login_twice_is_refused(imap: Transcript, account: Account) -> None:
    r = imap.bad(f'LOGIN "{account.address}" "{account.key}"')
    assert b"Already logged in" in r.tagged


def test_login_needs_two_arguments(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        s.bad(f'LOGIN "{account.address}"')
        s.bad("LOGIN")
        s.ok(f'LOGIN "{account.address}" "{account.key}"')


def test_commands_before_login_are_refused(server: Server) -> None:
    with Transcript.connect(server) as s:
        for command in ("SELECT INBOX", 'LIST "" "*"', "STATUS INBOX (MESSAGES)", "NAMESPACE"):
            r = s.bad(command)
            assert b"Log in first" in r.tagged
