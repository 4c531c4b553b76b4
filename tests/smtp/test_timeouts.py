"""Timeouts: a silent client gets `421 4.4.2` after command_timeout, and no session outlives
session_timeout, however busy it is (the guide's 30-minute session limit, made short here).

Each test waits, bounded, for the server's 421 and close: a condition, not a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import make_message
from tests.harness import Server
from tests.smtp.helpers import SMTPSession, dot_stuff, read_mailbox

IDLE = b"421 4.4.2 Timeout waiting for a command"
EXPIRED = b"421 4.4.2 Session time limit exceeded"


def test_silent_client_gets_421_and_is_closed(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 1})
    with SMTPSession.connect(srv) as s:
        rest = s.read_until_closed(timeout=15)
        assert rest.startswith(IDLE), rest


def test_client_stalling_mid_data_gets_421_and_nothing_is_stored(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 1})
    sender, recipient = srv.account(), srv.account()
    with SMTPSession.login_as(srv, sender) as s:
        s.expect(f"MAIL FROM:<{sender.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{recipient.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(dot_stuff(make_message(sender.address, recipient.address)))  # no final dot
        rest = s.read_until_closed(timeout=15)
        assert rest.startswith(IDLE), rest
    assert read_mailbox(srv, recipient) == []
    assert read_mailbox(srv, sender, "Sent") == []


def test_client_stalling_in_auth_exchange_gets_421(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 1})
    with SMTPSession.connect(srv) as s:
        s.ehlo()
        assert s.cmd("AUTH LOGIN").code == 334
        rest = s.read_until_closed(timeout=15)
        assert rest.startswith(IDLE), rest


def test_busy_session_ends_at_session_timeout(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 2, "command_timeout": 60})
    account = srv.account()
    with SMTPSession.login_as(srv, account) as s:
        # Keep the session busy (a NOOP whenever the server has been quiet for 0.2 s) until
        # the server ends it; bounded by the socket timeouts and the loop limit.
        received = b""
        for _ in range(200):
            s.sock.settimeout(0.2)
            try:
                chunk = s.sock.recv(65536)
            except TimeoutError:
                s.send(b"NOOP\r\n")
                continue
            except ConnectionError:
                break
            if not chunk:
                break
            received += chunk
        assert EXPIRED in received, received
        # Every NOOP before the end was answered normally.
        lines = received.split(b"\r\n")
        assert all(line in (b"250 2.0.0 OK", b"") for line in lines if not line.startswith(b"421"))


def test_session_limit_counts_from_connect_across_starttls(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(smtp={"session_timeout": 2, "command_timeout": 60})
    account = srv.account()
    with SMTPSession.connect(srv, starttls_port=True) as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        s.login(account)
        rest = s.read_until_closed(timeout=15)
        assert rest.startswith(EXPIRED), rest


def test_timeouts_leave_other_sessions_working(make_server: Callable[..., Server]) -> None:
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 1})
    sender, recipient = srv.account(), srv.account()
    with SMTPSession.connect(srv) as idle, SMTPSession.login_as(srv, sender) as busy:
        reply = busy.send_mail(
            sender.address, [recipient.address], make_message(sender.address, recipient.address)
        )
        assert reply.line.startswith("250 2.0.0")
        assert idle.read_until_closed(timeout=15).startswith(IDLE)
    with SMTPSession.login_as(srv, sender) as again:
        again.expect("NOOP", "250 2.0.0")
    assert len(read_mailbox(srv, recipient)) == 1


def test_slow_upload_that_keeps_sending_is_not_idle(make_server: Callable[..., Server]) -> None:
    """RFC 5321 §4.5.3.2: the timeout runs between blocks of data, not over the whole DATA."""
    srv = make_server(smtp={"session_timeout": 60, "command_timeout": 2})
    sender, recipient = srv.account(), srv.account()
    data = dot_stuff(make_message(sender.address, recipient.address, body="line\r\n" * 50))
    pieces = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with SMTPSession.login_as(srv, sender) as s:
        s.expect(f"MAIL FROM:<{sender.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{recipient.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        for piece in pieces:
            s.send(piece)
            # Pacing is the point here: the whole upload takes longer than command_timeout.
            time.sleep(0.6)
        s.send(b".\r\n")
        assert s.read_reply().line.startswith("250 2.0.0")
    assert len(read_mailbox(srv, recipient)) == 1
