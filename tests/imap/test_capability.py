"""CAPABILITY, NOOP and LOGOUT: the commands valid in every state."""

from __future__ import annotations

from tests.harness import Account, Server
from tests.transcript import Transcript, sock_closed

BEFORE_LOGIN = {"IMAP4rev1", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID", "IDLE"}
AFTER_LOGIN = {
    "IMAP4rev1",
    "LITERAL+",
    "IDLE",
    "ID",
    "NAMESPACE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "ESEARCH",
    "MULTIAPPEND",
    "ENABLE",
    "CONDSTORE",
    "QRESYNC",
    "CHILDREN",
    "SORT",
    "SORT=DISPLAY",
    "ESORT",
    "CONTEXT=SEARCH",
    "CONTEXT=SORT",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "THREAD=REFS",
}


def _capabilities(s: Transcript) -> list[str]:
    r = s.ok("CAPABILITY")
    lines = r.lines(b"CAPABILITY")
    assert len(lines) == 1, r
    return lines[0].decode().split()[2:]


def test_capability_before_login_on_the_tls_port(server: Server) -> None:
    with Transcript.connect(server) as s:
        caps = _capabilities(s)
        assert set(caps) >= BEFORE_LOGIN
        assert "LOGINDISABLED" not in caps
        assert "STARTTLS" not in caps  # already TLS
        # The greeting's CAPABILITY code says the same.
        assert s.greeting.startswith(b"* OK [CAPABILITY " + " ".join(caps).encode() + b"]")


def test_capability_after_login(imap: Transcript) -> None:
    caps = _capabilities(imap)
    assert set(caps) >= AFTER_LOGIN
    assert "AUTH=PLAIN" not in caps  # nothing left to authenticate
    assert "APPENDLIMIT=10485760" in caps
    assert len(caps) == len(set(caps))


def test_capability_after_login_matches_the_login_response(
    server: Server, account: Account
) -> None:
    with Transcript.connect(server) as s:
        r = s.ok(f'LOGIN "{account.address}" "{account.key}"')
        assert r.code is not None
        assert r.code.split()[1:] == _capabilities(s)


def test_capability_takes_no_arguments(imap: Transcript) -> None:
    imap.bad("CAPABILITY IMAP4rev1")


def test_noop_in_every_state(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        assert s.ok("NOOP").untagged == []
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        assert s.ok("NOOP").untagged == []
        s.ok("SELECT INBOX")
        assert s.ok("NOOP").untagged == []


def test_logout_says_bye_then_ok_and_closes(imap: Transcript) -> None:
    r = imap.ok("LOGOUT")
    assert [line[:6] for line in r.untagged] == [b"* BYE "]
    assert sock_closed(imap), "the server kept the connection open after LOGOUT"


def test_logout_before_login_and_when_selected(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        r = s.ok("LOGOUT")
        assert r.lines(b"BYE")
        assert sock_closed(s)
    with Transcript.login(server, account) as s:
        s.ok("SELECT INBOX")
        r = s.ok("LOGOUT")
        assert r.lines(b"BYE")
        assert sock_closed(s)


def test_logout_on_the_starttls_port_closes(server: Server) -> None:
    with Transcript.connect(server, tls=False) as s:
        s.ok("LOGOUT")
        assert sock_closed(s)


def test_imaplib_logout(server: Server, account: Account) -> None:
    client = server.imap_client(account)
    typ, _ = client.logout()
    assert typ == "BYE"
