"""Test helpers for SMTP and end-to-end tests: a transcript-style SMTP client on a raw socket,
and readers that look at what ended up in a mailbox over real IMAP.

    s = SMTPSession.connect(server)                # implicit TLS, greeting read
    s.ehlo()                                       # the extension keywords, upper-cased
    s.expect("AUTH PLAIN Zm9v", "535 5.7.8")      # asserts the reply's first line prefix
    s.login(account)
    s.send_mail(account.address, [other.address], data)   # returns the final reply

Replies are read off the socket as the server sent them, so a test sees exact codes and text.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import imaplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tests.harness import Account, Server, client_tls

CLIENT_NAME = "client.example.test"


@functools.cache
def tls() -> ssl.SSLContext:
    """One client context for all tests: building one loads the system CAs (tens of ms)."""
    return client_tls()


# Every 4xx/5xx reply carries an RFC 3463 enhanced status code whose class matches the reply's.
_ENHANCED = re.compile(r"^([245])\d\d[ -]([245])\.\d{1,3}\.\d{1,3}( |$)")


class SMTPPorts(Protocol):
    """Where a server's SMTP listens: a harness.Server, or a `mailgate serve` subprocess."""

    @property
    def smtps(self) -> int: ...

    @property
    def submission(self) -> int: ...


@dataclass(frozen=True)
class Reply:
    code: int
    lines: list[str]  # every line as sent, without CRLF

    @property
    def line(self) -> str:
        """The last line (the one with the space after the code)."""
        return self.lines[-1]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def has_enhanced_code(self) -> bool:
        m = _ENHANCED.match(self.lines[0])
        return m is not None and m.group(1) == m.group(2)


class SMTPSession:
    def __init__(self, sock: socket.socket, timeout: float = 30) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self._buffer = b""
        self.greeting = self.read_reply()

    # ---------------------------------------------------------------- connecting

    @classmethod
    def connect(
        cls,
        server: SMTPPorts,
        *,
        starttls_port: bool = False,
        source: str | None = None,
        timeout: float = 30,
    ) -> SMTPSession:
        """Connect to the implicit-TLS port, or in plain text to the STARTTLS port."""
        port = server.submission if starttls_port else server.smtps
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        sock: socket.socket = raw if starttls_port else tls().wrap_socket(raw)
        return cls(sock, timeout)

    @classmethod
    def login_as(cls, server: SMTPPorts, account: Account) -> SMTPSession:
        s = cls.connect(server)
        s.ehlo()
        s.login(account)
        return s

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SMTPSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- wire

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _read_line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"server closed the connection; unread {self._buffer!r}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self) -> Reply:
        lines = [self._read_line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self._read_line())
        return Reply(int(lines[-1][:3]), lines)

    def cmd(self, line: str | bytes) -> Reply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.read_reply()

    def expect(self, line: str | bytes, prefix: str) -> Reply:
        """Send a command and assert its reply's final line starts with `prefix`."""
        reply = self.cmd(line)
        assert reply.line.startswith(prefix), f"{line!r}: expected {prefix!r}, got {reply.text!r}"
        return reply

    # ---------------------------------------------------------------- steps

    def ehlo(self, name: str = CLIENT_NAME) -> list[str]:
        reply = self.expect(f"EHLO {name}", "250 ")
        return [line[4:].upper() for line in reply.lines[1:]]

    def starttls(self) -> None:
        self.expect("STARTTLS", "220 2.0.0")
        assert not self._buffer, "the server sent more after its 220 to STARTTLS"
        self.sock = tls().wrap_socket(self.sock)

    def login(self, account: Account) -> Reply:
        return self.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "235 2.7.0")

    def send_mail(self, sender: str, recipients: Iterable[str], data: bytes) -> Reply:
        """MAIL, RCPT for each recipient (each must get 250), DATA; the reply to the final dot."""
        self.expect(f"MAIL FROM:<{sender}>", "250 2.1.0")
        for rcpt in recipients:
            self.expect(f"RCPT TO:<{rcpt}>", "250 2.1.5")
        self.expect("DATA", "354")
        self.send(dot_stuff(data) + b".\r\n")
        return self.read_reply()

    def closed(self, timeout: float = 10) -> bool:
        """Wait (bounded) for the server to close; True once EOF is read. Discards data."""
        return wait_closed(self.sock, timeout)

    def read_until_closed(self, timeout: float = 10) -> bytes:
        """Everything the server sends until it closes the connection (bounded wait)."""
        deadline = time.monotonic() + timeout
        data = self._buffer
        self._buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the server did not close; got {data!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionError, ssl.SSLError):
                return data
            if not chunk:
                return data
            data += chunk


def wait_closed(sock: socket.socket, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            return True


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    """An AUTH PLAIN initial response (RFC 4616)."""
    return b64(f"{authzid}\0{user}\0{password}")


def dot_stuff(data: bytes) -> bytes:
    """Message bytes as sent after DATA: CRLF line ends, leading dots doubled, ending in CRLF."""
    data = re.sub(rb"\r?\n", b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", data)


# -------------------------------------------------------------------- reading mailboxes


@dataclass(frozen=True)
class Stored:
    """One message entry as IMAP shows it."""

    uid: int
    flags: frozenset[str]
    raw: bytes

    def header(self, name: str) -> list[str]:
        """Every value of a header field, unfolded (raw, not RFC 2047-decoded)."""
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        pattern = rf"(?mi)^{re.escape(name)}[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)"
        return [v.replace("\r\n", "").strip() for v in re.findall(pattern, head)]


_FETCH_META = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)")


def smtp_login(server: Server, account: Account | None = None) -> smtplib.SMTP_SSL:
    """smtplib over implicit TLS, logged in when given an account (Server.smtp_client, faster)."""
    client = smtplib.SMTP_SSL("127.0.0.1", server.smtps, context=tls(), timeout=30)
    if account is not None:
        client.login(account.address, account.key)
    return client


def imap_login(server: Server, account: Account) -> imaplib.IMAP4_SSL:
    return server.imap_client(account)


def read_mailbox(
    server: Server, account: Account, mailbox: str = "INBOX", *, with_bodies: bool = True
) -> list[Stored]:
    """Every message in a mailbox, by UID, fetched with BODY.PEEK[] over a fresh IMAP login."""
    client = imap_login(server, account)
    try:
        status, _ = client.select(mailbox, readonly=True)
        assert status == "OK", f"SELECT {mailbox} failed"
        items = "(UID FLAGS BODY.PEEK[])" if with_bodies else "(UID FLAGS)"
        status, data = client.uid("FETCH", "1:*", items)
        assert status == "OK", data
        return parse_fetch(data)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def parse_fetch(data: list[object]) -> list[Stored]:
    out: list[Stored] = []
    for item in data:
        if item is None or item == b")":
            continue
        meta, raw = (item[0], item[1]) if isinstance(item, tuple) else (item, b"")
        assert isinstance(meta, bytes)
        assert isinstance(raw, bytes)
        uid = flags = None
        for m in _FETCH_META.finditer(meta):
            if m.group(1) is not None:
                uid = int(m.group(1))
            else:
                flags = frozenset(m.group(2).decode().split())
        assert uid is not None, meta
        assert flags is not None, meta
        out.append(Stored(uid, flags, raw))
    return sorted(out, key=lambda s: s.uid)


def mailbox_count(server: Server, account: Account, mailbox: str = "INBOX") -> int:
    client = imap_login(server, account)
    try:
        status, data = client.status(mailbox, "(MESSAGES)")
        assert status == "OK", data
        raw = data[0]
        assert isinstance(raw, bytes)
        m = re.search(rb"MESSAGES (\d+)", raw)
        assert m is not None, raw
        return int(m.group(1))
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
