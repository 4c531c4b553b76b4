"""`[limits] commands_per_second`: a session past its rate is slowed, not refused. Every
command still gets its usual answer, the waits are counted for the operator, and another
session is served at its own pace meanwhile."""

from __future__ import annotations

import imaplib
import smtplib
import socket
from collections.abc import Callable

from tests.harness import Server, client_tls
from tests.http.metrics import scrape

RATE = 2  # commands a second, and at once: a burst of 2, then one every half second
PIPELINED = 6


def read_until_tagged(reader: object, tag: bytes) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        assert line, f"connection closed before {tag!r} was answered: {lines}"
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def test_imap_commands_over_the_rate_wait_and_all_succeed(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(limits={"commands_per_second": RATE})
    first, second = server.account(), server.account()
    raw = socket.create_connection((server.host, server.imaps), timeout=30)
    with client_tls().wrap_socket(raw) as tls:
        reader = tls.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        tls.sendall(f'a LOGIN "{first.address}" "{first.key}"\r\n'.encode())
        assert read_until_tagged(reader, b"a")[-1].startswith(b"a OK")
        # One write: the client does not wait for any answer, as a script in a loop would not.
        tls.sendall(b"".join(b"n%d NOOP\r\n" % i for i in range(PIPELINED)))

        # Another session is served meanwhile, from its own full bucket.
        other = imaplib.IMAP4_SSL(server.host, server.imaps, ssl_context=client_tls())
        other.login(second.address, second.key)
        assert other.select("INBOX")[0] == "OK"
        other.logout()

        answers = [read_until_tagged(reader, b"n%d" % i)[-1] for i in range(PIPELINED)]
        assert answers == [b"n%d OK NOOP completed\r\n" % i for i in range(PIPELINED)]
    slowed = scrape(server).value("mailgate_commands_slowed_total", protocol="imap")
    # LOGIN and n0 use the burst; n1 onwards wait (fewer only if commands took ~0.5 s each).
    assert slowed >= PIPELINED - 3, slowed


def test_smtp_commands_over_the_rate_wait_and_all_succeed(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(limits={"commands_per_second": RATE})
    with smtplib.SMTP_SSL(server.host, server.smtps, context=client_tls(), timeout=30) as smtp:
        assert smtp.ehlo()[0] == 250  # the greeting and EHLO use the burst
        assert [smtp.noop()[0] for _ in range(PIPELINED)] == [250] * PIPELINED
    assert scrape(server).value("mailgate_commands_slowed_total", protocol="smtp") >= PIPELINED - 2


def test_no_limit_slows_nothing(make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"commands_per_second": 0})
    account = server.account()
    client = imaplib.IMAP4_SSL(server.host, server.imaps, ssl_context=client_tls())
    client.login(account.address, account.key)
    for _ in range(20):
        assert client.noop()[0] == "OK"
    client.logout()
    with smtplib.SMTP_SSL(server.host, server.smtps, context=client_tls(), timeout=30) as smtp:
        assert [smtp.noop()[0] for _ in range(20)] == [250] * 20
    assert scrape(server).total("mailgate_commands_slowed_total") == 0
