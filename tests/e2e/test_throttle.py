"""Login throttling. By default failures only slow down failed answers: many failures for one
inbox from an address never refuse another inbox's correct key from that address, nor that
inbox's own (delayed at most). An operator who sets `[auth] ban_after` gets an address refused
for a while (`454 4.7.0` on SMTP, `NO [UNAVAILABLE]` on IMAP), across both protocols, without
touching other addresses. Each test uses its own source address in 127.0.0.0/8."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, plain, tls
from tests.transcript import Transcript

LOCKED = "454 4.7.0"


def _throttled_server(make_server: Callable[..., Server], lockout: int = 60) -> Server:
    return make_server(
        auth={"ban_after": 3, "failure_window": 600, "lockout": lockout, "failure_delay": 0.0}
    )


def _smtp_auth(server: Server, source: str, address: str, key: str) -> str:
    with SMTPSession.connect(server, source=source) as s:
        s.ehlo()
        return s.cmd(f"AUTH PLAIN {plain(address, key)}").line


def _imap_login(server: Server, source: str, account: Account) -> tuple[str, str | None]:
    raw = socket.create_connection(
        ("127.0.0.1", server.imaps), timeout=30, source_address=(source, 0)
    )
    with Transcript(tls().wrap_socket(raw)) as t:
        r = t.command(f'LOGIN "{account.address}" "{account.key}"')
        return r.status, r.code


def test_lockout_after_repeated_failures(make_server: Callable[..., Server]) -> None:
    srv = _throttled_server(make_server)
    account = srv.account()
    for _ in range(3):
        assert _smtp_auth(srv, "127.0.0.2", account.address, "mgk_bad_key").startswith("535 5.7.8")
    # Now even the right key is refused from that address, on both protocols.
    assert _smtp_auth(srv, "127.0.0.2", account.address, account.key).startswith(LOCKED)
    assert _imap_login(srv, "127.0.0.2", account) == ("NO", "UNAVAILABLE")
    # Another address is not affected.
    assert _smtp_auth(srv, "127.0.0.3", account.address, account.key).startswith("235 2.7.0")
    assert _imap_login(srv, "127.0.0.3", account)[0] == "OK"


def test_failures_count_across_protocols(make_server: Callable[..., Server]) -> None:
    srv = _throttled_server(make_server)
    account = srv.account()
    wrong = Account(account.address, "mgk_bad_key")
    for _ in range(3):
        assert _imap_login(srv, "127.0.0.4", wrong) == ("NO", "AUTHENTICATIONFAILED")
    assert _smtp_auth(srv, "127.0.0.4", account.address, account.key).startswith(LOCKED)


def test_success_resets_the_count(make_server: Callable[..., Server]) -> None:
    srv = _throttled_server(make_server)
    account = srv.account()
    for _ in range(3):
        for _ in range(2):
            line = _smtp_auth(srv, "127.0.0.5", account.address, "mgk_bad_key")
            assert line.startswith("535 5.7.8")
        assert _smtp_auth(srv, "127.0.0.5", account.address, account.key).startswith("235 2.7.0")


def test_locked_out_session_can_still_quit_cleanly(make_server: Callable[..., Server]) -> None:
    srv = _throttled_server(make_server)
    account = srv.account()
    with SMTPSession.connect(srv, source="127.0.0.6") as s:
        s.ehlo()
        for _ in range(3):
            s.expect(f"AUTH PLAIN {plain(account.address, 'mgk_bad_key')}", "535 5.7.8")
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", LOCKED)
        s.expect(f"MAIL FROM:<{account.address}>", "530 5.7.0")
        s.expect("QUIT", "221 2.0.0")


def test_lockout_ends(make_server: Callable[..., Server]) -> None:
    srv = _throttled_server(make_server, lockout=1)
    account = srv.account()
    for _ in range(3):
        _smtp_auth(srv, "127.0.0.7", account.address, "mgk_bad_key")
    # Bounded wait for the lockout to lapse; attempts while locked do not extend it.
    deadline = time.monotonic() + 15
    while True:
        line = _smtp_auth(srv, "127.0.0.7", account.address, account.key)
        if line.startswith("235 2.7.0"):
            break
        assert line.startswith(LOCKED), line
        assert time.monotonic() < deadline, "the lockout did not end"
        time.sleep(0.1)


def test_one_inbox_failing_never_locks_out_its_neighbours(
    make_server: Callable[..., Server],
) -> None:
    """Agents behind one egress address: one with a revoked key fails 50 times; the others log
    in at once, and the failing inbox's own correct key is answered OK (after a delay)."""
    srv = make_server(auth={"max_failures": 10, "failure_delay": 0.001, "max_failure_delay": 0.01})
    a, b = srv.account(), srv.account()
    wrong = Account(a.address, "mgk_revoked_key")
    for _ in range(25):
        assert _imap_login(srv, "127.0.0.8", wrong) == ("NO", "AUTHENTICATIONFAILED")
        assert _smtp_auth(srv, "127.0.0.8", a.address, "mgk_revoked_key").startswith("535 5.7.8")
    assert _imap_login(srv, "127.0.0.8", b)[0] == "OK"
    assert _smtp_auth(srv, "127.0.0.8", b.address, b.key).startswith("235 2.7.0")
    assert _imap_login(srv, "127.0.0.8", a)[0] == "OK"
    assert _smtp_auth(srv, "127.0.0.8", a.address, a.key).startswith("235 2.7.0")
