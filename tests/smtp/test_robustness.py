"""Bad input of any kind gets a clear reply with an enhanced status code (or a clean close),
never a traceback; a client that breaks off mid-DATA loses nothing that was acknowledged, and
every other session goes on."""

from __future__ import annotations

import random
import re
import socket
import struct
from collections.abc import Callable

import pytest

from mailgate.smtp import replies
from tests.conftest import make_message
from tests.harness import Account, Server
from tests.smtp.helpers import SMTPSession, b64, dot_stuff, imap_login, read_mailbox


def _sound(reply_text: str) -> None:
    """What any reply must be: ASCII SMTP, an enhanced code on every failure, no Python."""
    for line in reply_text.split("\n"):
        assert re.match(r"^[2-5]\d\d[ -]", line), line
        if line[0] in "45":
            assert re.match(r"^([45])\d\d[ -]\1\.\d{1,3}\.\d{1,3} ", line), line
    for leak in ("Traceback", "Error: (", "Exception", 'File "'):
        assert leak not in reply_text


def test_every_reply_constant_is_ascii_with_an_enhanced_code() -> None:
    constants = [v for k, v in vars(replies).items() if k.isupper() and isinstance(v, str)]
    constants += list(replies.STOCK_REWRITES.values())
    for reply in constants:
        if reply == replies.GREETING_IDENT:
            continue
        reply.encode("ascii")
        _sound(reply)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"FOO", "500 5.5.2"),
        (b"", "500 5.5.2"),
        (b"\xff\xfe\x00JUNK", "500 5.5.2"),
        (b"NOOP \xe9\xe8", "500 5.5.2"),  # not UTF-8
        ("NOOP Grüße".encode(), "250 2.0.0"),  # UTF-8: SMTPUTF8 is offered
        (b"EHLO", "501 5.5.4"),
        (b"HELO", "501 5.5.4"),
        (b"NOOP " + b"x" * 600, "500 5.5.6"),
        (b"A" * 2_000_000, "500 5.5.6"),
        (b"EXPN staff", "502 5.5.1"),
        (b"QUIT now", "501 5.5.4"),
    ],
)
def test_malformed_commands(server: Server, line: bytes, expected: str) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        reply = s.cmd(line)
        assert reply.line.startswith(expected), reply.text
        _sound(reply.text)
        s.expect("NOOP", "250 2.0.0")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("MAIL", "501 5.5.4"),
        ("MAIL TO:<{me}>", "501 5.5.4"),
        ("MAIL FROM:{me}> junk", "501 5.5.4"),
        ("MAIL FROM:<<{me}>>", "553 5.1.3"),
        ("MAIL FROM:<{me}> FOO=BAR", "555 5.5.4"),
        ("MAIL FROM:<{me}> BODY=BINARYMIME", "501 5.5.4"),
        ("MAIL FROM:<{me}> SMTPUTF8=YES", "501 5.5.4"),
        ("RCPT TO:<{me}>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("DATA now", "503 5.5.1"),
        ("AUTH PLAIN a b c", "503 5.5.1"),
    ],
)
def test_malformed_transaction_commands(
    server: Server, account: Account, command: str, expected: str
) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.cmd(command.format(me=account.address))
        assert reply.line.startswith(expected), reply.text
        assert reply.code >= 500
        _sound(reply.text)
        # The session still sends mail.
        assert s.send_mail(
            account.address, [account.address], make_message(account.address, account.address)
        ).line.startswith("250 2.0.0")


def test_replies_after_ehlo_all_carry_enhanced_codes(server: Server, account: Account) -> None:
    """RFC 2034: with ENHANCEDSTATUSCODES, every reply but the greeting and EHLO's has one."""
    with SMTPSession.login_as(server, account) as s:
        for command in ("HELP", "HELP MAIL", "HELP NOSUCH", "VRFY someone", "NOOP", "RSET"):
            reply = s.cmd(command)
            assert re.match(r"^[245]\d\d \d\.\d{1,3}\.\d{1,3} ", reply.line), reply.text
            _sound(reply.text)


def test_eight_bit_address(server: Server, account: Account) -> None:
    with SMTPSession.login_as(server, account) as s:
        reply = s.cmd("MAIL FROM:<jörg@example.test>".encode())
        assert reply.code >= 500
        _sound(reply.text)


def test_too_many_unknown_commands_end_the_session_cleanly(server: Server) -> None:
    with SMTPSession.connect(server) as s:
        answers = [s.cmd(f"BOGUS{n}") for n in range(5)]
        for reply in answers:
            _sound(reply.text)
        assert answers[-1].line.startswith("502 5.5.1")
        assert s.closed()


@pytest.mark.parametrize(
    "exchange",
    [
        ["AUTH PLAIN !!!notbase64"],
        ["AUTH PLAIN", "%%%"],
        ["AUTH LOGIN ###"],
        ["AUTH LOGIN", "not base64 at all"],
        ["AUTH LOGIN {user}", "=bad="],
    ],
)
def test_bad_base64_in_auth_is_501(server: Server, account: Account, exchange: list[str]) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        for step in exchange[:-1]:
            assert s.cmd(step.format(user=b64(account.address))).code == 334
        reply = s.cmd(exchange[-1])
        assert reply.line.startswith("501 5.5.2"), reply.text
        _sound(reply.text)
        s.login(account)


@pytest.mark.parametrize("decoded", [b"no separators", b"one\x00separator", b"a\x00b\x00c\x00d"])
def test_plain_without_three_fields_is_501(
    server: Server, account: Account, decoded: bytes
) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        reply = s.cmd(f"AUTH PLAIN {b64(decoded)}")
        assert reply.line.startswith("501 5.5.2"), reply.text
        s.login(account)


def test_non_utf8_credentials_are_just_wrong(server: Server, account: Account) -> None:
    with SMTPSession.connect(server) as s:
        s.ehlo()
        credentials = b64(b"\x00\xff\xfe@example.test\x00\x80\x81")
        reply = s.cmd(f"AUTH PLAIN {credentials}")
        assert reply.line.startswith("535 5.7.8"), reply.text
        s.login(account)


def test_random_lines_never_break_the_server(server: Server, account: Account) -> None:
    rng = random.Random(20261101)
    s = SMTPSession.connect(server)
    try:
        s.ehlo()
        for _ in range(150):
            length = rng.choice([1, 5, 20, 100, 700])
            junk = (
                bytes(rng.choice(range(1, 256)) for _ in range(length))
                .replace(b"\r", b"")
                .replace(b"\n", b"")
            )
            try:
                reply = s.cmd(junk)
            except ConnectionError:
                s.close()
                s = SMTPSession.connect(server)
                s.ehlo()
                continue
            _sound(reply.text)
        s.close()
        s = SMTPSession.login_as(server, account)
        assert s.send_mail(
            account.address, [account.address], make_message(account.address, account.address)
        ).line.startswith("250 2.0.0")
    finally:
        s.close()


# -------------------------------------------------------------------- broken-off transfers


def _start_data(s: SMTPSession, sender: str, rcpt: str) -> None:
    s.expect(f"MAIL FROM:<{sender}>", "250 2.1.0")
    s.expect(f"RCPT TO:<{rcpt}>", "250 2.1.5")
    s.expect("DATA", "354")


@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_mid_data_loses_nothing_else(
    server: Server, account: Account, other: Account, how: str
) -> None:
    third = server.account()
    bystander = SMTPSession.login_as(server, third)
    broken = SMTPSession.login_as(server, account)
    try:
        first = make_message(account.address, other.address, subject="before")
        assert broken.send_mail(account.address, [other.address], first).line.startswith(
            "250 2.0.0"
        )
        _start_data(broken, account.address, other.address)
        _start_data(bystander, third.address, other.address)
        half = dot_stuff(
            make_message(account.address, other.address, subject="half", body="x\r\n" * 5000)
        )
        broken.send(half[: len(half) // 2])
        if how == "reset":
            # SO_LINGER 0: the close sends a TCP RST instead of a FIN.
            broken.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        broken.close()
        # The session that was mid-DATA at the same time finishes normally.
        bystander.send(
            dot_stuff(make_message(third.address, other.address, subject="meanwhile")) + b".\r\n"
        )
        assert bystander.read_reply().line.startswith("250 2.0.0")
    finally:
        bystander.close()
        broken.close()
    with SMTPSession.login_as(server, third) as again:
        after = make_message(third.address, other.address, subject="after")
        assert again.send_mail(third.address, [other.address], after).line.startswith("250 2.0.0")
    subjects = [m.header("Subject") for m in read_mailbox(server, other)]
    assert subjects == [["before"], ["meanwhile"], ["after"]]
    assert [m.header("Subject") for m in read_mailbox(server, account, "Sent")] == [["before"]]


def test_garbage_instead_of_tls_on_the_implicit_port(server: Server, account: Account) -> None:
    with socket.create_connection(("127.0.0.1", server.smtps), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\xff\xff" + bytes(range(256)) * 4)
        raw.settimeout(10)
        try:
            while raw.recv(4096):
                pass
        except (ConnectionError, TimeoutError):
            pass
    with SMTPSession.login_as(server, account) as s:
        s.expect("NOOP", "250 2.0.0")


# -------------------------------------------------------------------- hostile messages

BROKEN_MESSAGES = {
    "unterminated multipart": (
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b1\r\n"
        'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n--b2\r\nno end\r\n'
    ),
    "bad encodings": (
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n!!!! not base64 ====\r\n"
    ),
    "header junk": (
        "Content-Type: ;;;=\r\nthis line has no colon\r\n: empty name\r\n"
        "Subject: =?utf-8?b?####?= =?bogus?q?x?=\r\n\r\nbody\r\n"
    ),
    "deep nesting": (
        "".join(
            f'Content-Type: multipart/mixed; boundary="n{i}"\r\n\r\n--n{i}\r\n' for i in range(200)
        )
        + "\r\nleaf\r\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_MESSAGES))
def test_broken_mime_is_accepted_stored_and_fetchable(
    server: Server, account: Account, other: Account, kind: str
) -> None:
    data = (
        f"From: {account.address}\r\nTo: {other.address}\r\n".encode()
        + BROKEN_MESSAGES[kind].encode()
    )
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address], data)
        assert reply.line.startswith("250 2.0.0"), reply.text
    [stored] = read_mailbox(server, other)
    assert stored.raw.endswith(data)
    client = imap_login(server, other)
    try:
        client.select("INBOX", readonly=True)
        status, _ = client.fetch("1", "(ENVELOPE BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[1.MIME])")
        assert status == "OK"
    finally:
        client.logout()


def test_binary_junk_body_is_stored_byte_for_byte(
    server: Server, account: Account, other: Account
) -> None:
    rng = random.Random(7)
    junk = bytes(b for b in (rng.randrange(256) for _ in range(20000)) if b not in (10, 13))
    lines = b"\r\n".join(junk[i : i + 700] for i in range(0, len(junk), 700)) + b"\r\n"
    data = (
        f"From: {account.address}\r\nTo: {other.address}\r\nSubject: junk\r\n\r\n".encode() + lines
    )
    with SMTPSession.login_as(server, account) as s:
        reply = s.send_mail(account.address, [other.address], data)
        assert reply.line.startswith("250 2.0.0"), reply.text
    [stored] = read_mailbox(server, other)
    assert stored.raw.endswith(lines)


def test_a_body_line_that_never_ends_is_refused_and_closed(
    make_server: Callable[..., Server],
) -> None:
    """aiosmtpd keeps an unterminated line whole until it ends: a base64 body without line
    breaks that never ends would grow the server without bound. Once more has come on one line
    than could ever be accepted (the message limit plus the longest line), it is refused with
    552 5.3.4 and the session closed."""
    server = make_server(smtp={"max_message_size": 100_000})
    account = server.account()
    chunk = b"QUJD" * 16384
    with SMTPSession.login_as(server, account) as s:
        s.expect(f"MAIL FROM:<{account.address}>", "250 2.1.0")
        s.expect(f"RCPT TO:<{account.address}>", "250 2.1.5")
        s.expect("DATA", "354")
        sent = 0
        try:
            while sent < 256 * 1024 * 1024:  # a bound for the test: the server's is ~1.1 MB
                s.send(chunk)
                sent += len(chunk)
        except OSError:
            pass
        assert s.read_until_closed().startswith(b"552 5.3.4")
        assert sent < 32 * 1024 * 1024
    with SMTPSession.login_as(server, account) as s:  # the next session is served
        assert s.send_mail(
            account.address, [account.address], make_message(account.address, account.address)
        ).line.startswith("250 2.0.0")
