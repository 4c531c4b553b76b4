"""The catalogue of hostile input (issue 15), against a real `mailgate serve` over TLS: a 2 GB
literal announcement, NUL bytes, 8-bit junk in commands, lines of 1 MB, 10,000 nested MIME
parts, a base64 body that never ends, a client that sends one byte a second (slowloris) and one
that never reads its responses. Each gets its protocol answer or a clean close; meanwhile a
second client (imaplib, smtplib) logs in, SELECTs, FETCHes and sends as usual; and the server
process's memory stays bounded. The server's silence and stall limits are set short here."""

from __future__ import annotations

import base64
import imaplib
import json
import os
import re
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.process import Serve, config_file, run_here
from tests.fuzz.targets import check_body
from tests.harness import Account, client_tls
from tests.imap.helpers import message
from tests.mime.helpers import parse_wire
from tests.smtp.helpers import SMTPSession, plain
from tests.transcript import Transcript

# Short limits, so that the stalling clients are dealt with in seconds.
LIMITS = {
    "imap": {"preauth_timeout": 2, "autologout": 3},
    "smtp": {"command_timeout": 2, "session_timeout": 6, "max_message_size": 1_000_000},
}
# What the server may grow by over the whole catalogue: the hostile clients send hundreds of
# megabytes between them, and none of it may stay.
MEMORY_BOUND = 64 * 1024 * 1024
MB = 1024 * 1024


class Ports:
    def __init__(self, serve: Serve) -> None:
        self.imaps = serve.ports["imaps"]
        self.smtps = serve.ports["submissions"]
        self.submission = serve.ports["submission"]


class Hostile:
    """The server under attack, the accounts, and the well-behaved second client."""

    def __init__(self, serve: Serve, mallory: Account, alice: Account) -> None:
        self.serve = serve
        self.ports = Ports(serve)
        self.mallory = mallory
        self.alice = alice

    @property
    def pid(self) -> int:
        return self.serve.proc.pid

    def rss(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    def imap(self) -> Transcript:
        raw = socket.create_connection(("127.0.0.1", self.ports.imaps), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Transcript(client_tls().wrap_socket(raw))

    def login(self, account: Account) -> Transcript:
        s = self.imap()
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        return s

    def served(self) -> None:
        """The second client, with the stdlib's clients: it logs in, SELECTs and FETCHes its
        message, and sends one to itself."""
        with imaplib.IMAP4_SSL(
            "127.0.0.1", self.ports.imaps, ssl_context=client_tls(), timeout=30
        ) as imap:
            imap.login(self.alice.address, self.alice.key)
            typ, data = imap.select("INBOX")
            assert typ == "OK", data
            assert int(data[0] or 0) >= 1, data
            typ, fetched = imap.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK", fetched
            assert b"Subject: witness" in fetched[0][1]  # type: ignore[index]
        with smtplib.SMTP_SSL(
            "127.0.0.1", self.ports.smtps, context=client_tls(), timeout=30
        ) as smtp:
            smtp.login(self.alice.address, self.alice.key)
            smtp.sendmail(
                self.alice.address,
                [self.alice.address],
                message("served", From=self.alice.address, To=self.alice.address),
            )


def _with_limits(path: Path) -> None:
    text = path.read_text()
    for section, values in LIMITS.items():
        lines = "".join(f"{key} = {value}\n" for key, value in values.items())
        text = text.replace(f"[{section}]\n", f"[{section}]\n{lines}", 1)
    path.write_text(text)


def _inbox(config: Path, address: str) -> Account:
    done = run_here(
        "inbox", "create", address, "--json", "--config", str(config), cwd=config.parent
    )
    assert done.returncode == 0, done.stderr
    return Account(address, json.loads(done.stdout)["api_key"])


@pytest.fixture(scope="module")
def hostile(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    directory = tmp_path_factory.mktemp(f"hostile-{backend}")
    with config_file(directory, backend) as config:
        _with_limits(config)
        mallory = _inbox(config, "mallory@example.test")
        alice = _inbox(config, "alice@example.test")
        serve = Serve(config, cwd=directory)
        try:
            target = Hostile(serve, mallory, alice)
            with target.login(alice) as s:
                s.ok("APPEND INBOX (\\Flagged) \x00", message("witness"))
            target.served()  # everything is warm before memory is first measured
            yield target
            log = serve.log
        finally:
            serve.stop()
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def memory(hostile: Hostile) -> Iterator[None]:
    """The server's RSS before the first case and after the last."""
    before = hostile.rss()
    yield
    after = hostile.rss()
    assert after - before < MEMORY_BOUND, f"server RSS {before // MB} -> {after // MB} MiB"


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # between polls of a bounded wait


def established(sock: socket.socket) -> bool:
    """Whether the kernel still has our end of the connection ESTABLISHED (/proc/net/tcp)."""
    port = f"{sock.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + port):
            return fields[3] == "01"
    return False


def closed(sock: ssl.SSLSocket, timeout: float = 15) -> bool:
    """True once the server has closed the connection (EOF or reset); reads what is left."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        return False
    return True


def flood(sock: socket.socket, data: bytes, bound: int = 1024 * MB) -> int:
    """Send `data` again and again until the server stops taking it (it closed, or stopped
    reading and the send timed out); the bytes sent. Fails at `bound`, a bound for the test."""
    sent = 0
    try:
        while sent < bound:
            sock.sendall(data)
            sent += len(data)
    except OSError:
        return sent
    raise AssertionError(f"the server took {sent} bytes and asked for more")


def reply_line(s: Transcript, tag: bytes) -> bytes:
    return s.read_until(lambda line: line.startswith((tag + b" ", b"* BAD", b"* BYE")))[-1]


# ---------------------------------------------------------------------------------------------
# The catalogue


def test_a_2_gb_literal_announcement(hostile: Hostile, memory: None) -> None:
    with hostile.login(hostile.mallory) as s:
        s.send(b"a1 APPEND INBOX {2147483648}\r\n")
        assert reply_line(s, b"a1").startswith(b"a1 NO [TOOBIG]")
        s.send(b"a2 SEARCH BODY {2147483648}\r\n")
        assert reply_line(s, b"a2").startswith(b"a2 BAD [TOOBIG]")
        hostile.served()
        s.ok("NOOP")
        # LITERAL+ does not wait for the server: the data would be on its way, so refused and
        # closed rather than read.
        s.send(b"a3 APPEND INBOX {2147483648+}\r\n" + b"x" * 65536)
        lines = s.read_until(lambda line: line.startswith(b"* BYE"))
        assert lines[0].startswith(b"a3 NO [TOOBIG]"), lines
        assert closed(s.sock)  # type: ignore[arg-type]
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        reply = smtp.cmd(f"MAIL FROM:<{hostile.mallory.address}> SIZE=2147483648")
        assert reply.line.startswith("552 5.3.4"), reply.text
    hostile.served()


def test_nul_bytes(hostile: Hostile, memory: None) -> None:
    with hostile.login(hostile.mallory) as s:
        s.send(b"a1 NOOP\x00\r\n")
        assert reply_line(s, b"a1").startswith(b"a1 BAD")
        s.send(b"a2 SELECT {5}\r\n")
        assert s.read_line().startswith(b"+")
        s.send(b"IN\x00OX\r\n")
        assert reply_line(s, b"a2").startswith(b"a2 BAD")
        s.send(b"\x00\x00\x00\r\n")
        assert reply_line(s, b"a3").startswith(b"* BAD")
        s.ok("NOOP")
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        reply = smtp.cmd(b"NOOP\x00")
        assert reply.line.startswith("500 5.5.2"), reply.text
        reply = smtp.cmd(b"MAIL FROM:<mal\x00lory@example.test>")
        assert re.match(r"5\d\d 5\.\d\.\d", reply.line), reply.text
        assert smtp.cmd("RSET").line.startswith("250 2.0.0")
    hostile.served()


def test_8_bit_junk_in_commands(hostile: Hostile, memory: None) -> None:
    junk = bytes(range(0x80, 0x100))
    with hostile.login(hostile.mallory) as s:
        s.send(b"a1 " + junk + b"\r\n")
        assert reply_line(s, b"a1").startswith(b"a1 BAD")
        s.send(junk + b" NOOP\r\n")
        assert reply_line(s, b"a2").startswith(b"* BAD")
        s.send(b"a3 SELECT \xff\xfe\r\n")
        assert reply_line(s, b"a3").startswith(b"a3 BAD")
        s.ok("NOOP")
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        reply = smtp.cmd(junk)
        assert reply.line.startswith("500 5.5.2"), reply.text
        reply = smtp.cmd(b"MAIL FROM:<" + junk + b"@example.test>")
        assert re.match(r"5\d\d 5\.\d\.\d", reply.line), reply.text
        assert smtp.cmd("RSET").line.startswith("250 2.0.0")
    hostile.served()


def test_lines_of_1_mb(hostile: Hostile, memory: None) -> None:
    with hostile.login(hostile.mallory) as s:
        s.send(b"a1 NOOP " + b"x" * MB + b"\r\n")
        line = s.read_until(lambda got: got.startswith((b"* BYE", b"a1 ")))[-1]
        assert line.startswith(b"* BYE"), line
        assert closed(s.sock)  # type: ignore[arg-type]
    with hostile.imap() as s:  # before login
        s.send(b"a1 " + b"A" * MB + b"\r\n")
        assert s.read_until(lambda got: got.startswith((b"* BYE", b"a1 ")))[-1].startswith(b"* BYE")
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        reply = smtp.cmd(b"NOOP " + b"x" * (MB + 1))
        assert reply.line.startswith("500 5.5.6"), reply.text
    hostile.served()


def test_10000_nested_mime_parts(hostile: Hostile, memory: None) -> None:
    depth = 10_000
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    nested = b"From: mallory@example.test\r\nSubject: nested\r\n" + head + b"innermost\r\n"
    with hostile.login(hostile.mallory) as s:
        s.ok("CREATE Nested")
        s.ok("APPEND Nested \x00", nested)
        s.ok("SELECT Nested")
        r = s.ok("FETCH 1 (BODYSTRUCTURE ENVELOPE RFC822.SIZE)")
        item = r.untagged[0]
        structure = item[item.index(b"BODYSTRUCTURE ") + 14 : item.index(b" ENVELOPE ")]
        check_body(parse_wire(structure), extended=True)
        assert structure.count(b"(") < 200  # nesting beyond the bound is an opaque leaf
        assert b"RFC822.SIZE %d" % len(nested) in item
        r = s.ok("FETCH 1 BODY.PEEK[]")
        assert r.untagged[0].endswith(nested + b")")
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        body = b"From: mallory@example.test\r\nTo: mallory@example.test\r\n" + head[: 60 * 300]
        reply = smtp.send_mail(hostile.mallory.address, [hostile.mallory.address], body + b"x\r\n")
        assert reply.line.startswith("250 2.0.0"), reply.text
    hostile.served()


def test_a_base64_body_that_never_ends(hostile: Hostile, memory: None) -> None:
    # The message limit is 1 MB here: the server refuses it and hangs up once more arrived on
    # one line than could ever be accepted, however long the client would go on.
    chunk = base64.b64encode(os.urandom(48 * 1024))
    with SMTPSession.login_as(hostile.ports, hostile.mallory) as smtp:
        smtp.expect(f"MAIL FROM:<{hostile.mallory.address}>", "250 2.1.0")
        smtp.expect(f"RCPT TO:<{hostile.mallory.address}>", "250 2.1.5")
        smtp.expect("DATA", "354")
        smtp.send(b"Content-Transfer-Encoding: base64\r\n\r\n")
        sent = flood(smtp.sock, chunk)
        assert smtp.read_until_closed().startswith(b"552 5.3.4")
        assert sent < 64 * MB
    hostile.served()


def test_slowloris_one_byte_a_second(hostile: Hostile, memory: None) -> None:
    """Before login, in a line and in a literal; after login; and in SMTP: one byte a second,
    until the server hangs up with its reason."""

    def trickle(sock: ssl.SSLSocket, data: bytes) -> bytes:
        got = b""
        for byte in data:
            sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 1.0)[0] or sock.pending():
                chunk = sock.recv(4096)
                if not chunk:
                    return got
                got += chunk
            if got.endswith(b"\r\n") and re.search(rb"(^|\n)(\* BYE|421 )", got):
                return got
        raise AssertionError(f"still served after {len(data)} seconds: {got!r}")

    slow = hostile.imap()
    hostile.served()
    assert b"* BYE" in trickle(slow.sock, b"a1 LOGIN " + b"x" * 30)  # type: ignore[arg-type]
    literal = hostile.imap()
    literal.send(b"a1 LOGIN {64}\r\n")
    assert literal.read_line().startswith(b"+")
    assert b"* BYE" in trickle(literal.sock, b"y" * 64)  # type: ignore[arg-type]
    with hostile.login(hostile.mallory) as s:
        hostile.served()
        assert b"* BYE" in trickle(s.sock, b"a2 NOOP" + b" " * 30)  # type: ignore[arg-type]
    with SMTPSession.connect(hostile.ports) as smtp:
        hostile.served()
        said = trickle(smtp.sock, b"EHLO " + b"s" * 60)  # type: ignore[arg-type]
        assert b"421 4.4.2" in said, said
    hostile.served()


def test_a_client_that_never_reads(hostile: Hostile, memory: None) -> None:
    big = message("big", "z" * 2_000_000 + "\r\n")
    with hostile.login(hostile.mallory) as s:
        s.ok("CREATE Big")
        s.ok("APPEND Big \x00", big)
    raw = socket.create_connection(("127.0.0.1", hostile.ports.imaps), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader = client_tls().wrap_socket(raw)
    login = f'a LOGIN "{hostile.mallory.address}" "{hostile.mallory.key}"\r\n'.encode()
    reader.sendall(login + b"b SELECT Big\r\n" + b"c FETCH 1 BODY[]\r\n" * 20)
    hostile.served()
    # Stalled on output: cut off once it has read nothing for as long as it may stay silent
    # (the socket leaves ESTABLISHED: the server sent its FIN or a reset, unread data or not).
    wait_for(lambda: not established(reader))
    assert closed(reader)
    reader.close()
    # SMTP: replies pile up unread until the command timeout closes the session.
    raw = socket.create_connection(("127.0.0.1", hostile.ports.smtps), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deaf = client_tls().wrap_socket(raw)
    deaf.settimeout(10)
    auth = f"EHLO deaf\r\nAUTH PLAIN {plain(hostile.mallory.address, hostile.mallory.key)}\r\n"
    deaf.sendall(auth.encode())
    flood(deaf, b"HELP\r\n" * 10_000)
    hostile.served()
    assert closed(deaf)
    deaf.close()
    hostile.served()
