"""A transcript-style IMAP test client: one line per exchange, asserting what the user sees.

    s = Transcript.login(server, account)         # TLS, logged in
    s.ok("SELECT INBOX")                           # asserts the tagged OK, returns untagged lines
    s.no("SELECT sent", code="NONEXISTENT")        # asserts NO with that response code
    s.bad("FETCH")                                 # asserts BAD

Responses are read off a raw TLS socket, so a test sees exactly the server's bytes (literals
are inlined: `{5}\\r\\nhello` stays in the line as it came).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from typing import Any

from tests.harness import Account, Server, client_tls

_LITERAL = re.compile(rb"\{(\d+)\}$")


class Response:
    def __init__(self, untagged: list[bytes], tagged: bytes) -> None:
        self.untagged = untagged
        self.tagged = tagged

    @property
    def status(self) -> str:
        return self.tagged.split(b" ", 2)[1].decode()

    @property
    def code(self) -> str | None:
        m = re.match(rb"\S+ \S+ \[([^\]]*)\]", self.tagged)
        return m.group(1).decode() if m else None

    def lines(self, keyword: bytes) -> list[bytes]:
        """Untagged lines whose first word after '* ' (or after the number) is keyword."""
        out = []
        for line in self.untagged:
            words = line.split(b" ", 3)
            # "* FLAGS (...)" names the response first; "* 3 FETCH (...)" after a number.
            if len(words) > 2 and words[1].isdigit():
                name = words[2]
            elif len(words) > 1:
                name = words[1]
            else:
                continue
            if name.upper() == keyword:
                out.append(line)
        return out

    def __repr__(self) -> str:
        return f"Response({self.untagged!r}, {self.tagged!r})"


class Transcript:
    def __init__(self, sock: socket.socket, timeout: float = 30) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self._buffer = b""
        self._tag = 0
        self.greeting = self.read_line()

    # ---------------------------------------------------------------- connecting

    @classmethod
    def connect(cls, server: Server, *, tls: bool = True, timeout: float = 30) -> Transcript:
        raw = socket.create_connection((server.host, server.imaps if tls else server.imap))
        # command() writes a command in pieces (tag and line, literal markers, CRLF); without
        # TCP_NODELAY, Nagle holds each piece for the server's delayed ACK, 40 ms a command.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = client_tls().wrap_socket(raw) if tls else raw
        return cls(sock, timeout)

    @classmethod
    def login(cls, server: Server, account: Account) -> Transcript:
        s = cls.connect(server)
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        return s

    def starttls(self) -> None:
        self.ok("STARTTLS")
        self.sock = client_tls().wrap_socket(self.sock)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- wire

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk

    def read_line(self) -> bytes:
        """One response line, with any literals it announces inlined."""
        out = b""
        while True:
            while b"\r\n" not in self._buffer:
                self._fill()
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            out += line
            m = _LITERAL.search(line)
            if not m:
                return out
            size = int(m.group(1))
            while len(self._buffer) < size:
                self._fill()
            out += b"\r\n" + self._buffer[:size]
            self._buffer = self._buffer[size:]

    def read_until(self, predicate: Any, timeout: float = 5) -> list[bytes]:
        """Lines read until one satisfies predicate (inclusive); fails after timeout."""
        deadline = time.monotonic() + timeout
        lines = []
        old = self.sock.gettimeout()
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting; got {lines!r}")
                self.sock.settimeout(remaining)
                try:
                    line = self.read_line()
                except TimeoutError:
                    raise AssertionError(f"timed out waiting; got {lines!r}") from None
                lines.append(line)
                if predicate(line):
                    return lines
        finally:
            self.sock.settimeout(old)

    def next_tag(self) -> str:
        self._tag += 1
        return f"t{self._tag}"

    def command(self, command: str | bytes, *literals: bytes) -> Response:
        """Send `tag command`; for each literal, wait for '+' and send it. Read to the tag."""
        tag = self.next_tag()
        if isinstance(command, str):
            command = command.encode()
        pieces = command.split(b"\x00") if literals else [command]
        assert len(pieces) == len(literals) + 1, "mark literal positions with \\x00"
        self.send(tag.encode() + b" " + pieces[0])
        untagged: list[bytes] = []
        for literal, rest in zip(literals, pieces[1:], strict=True):
            self.send(b"{%d}\r\n" % len(literal))
            while True:
                line = self.read_line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag.encode() + b" "):
                    return Response(untagged, line)
                untagged.append(line)
            self.send(literal + rest)
        self.send(b"\r\n")
        return self.finish(tag, untagged)

    def finish(self, tag: str, untagged: list[bytes] | None = None) -> Response:
        untagged = [] if untagged is None else untagged
        while True:
            line = self.read_line()
            if line.startswith(tag.encode() + b" "):
                return Response(untagged, line)
            untagged.append(line)

    # ---------------------------------------------------------------- assertions

    def ok(self, command: str | bytes, *literals: bytes, code: str | None = None) -> Response:
        r = self.command(command, *literals)
        assert r.status == "OK", f"{command!r}: expected OK, got {r.tagged!r}"
        if code is not None:
            assert r.code is not None, r.tagged
            assert r.code.startswith(code), r.tagged
        return r

    def no(self, command: str | bytes, *literals: bytes, code: str | None = None) -> Response:
        r = self.command(command, *literals)
        assert r.status == "NO", f"{command!r}: expected NO, got {r.tagged!r}"
        if code is not None:
            assert r.code is not None, r.tagged
            assert r.code.startswith(code), r.tagged
        return r

    def bad(self, command: str | bytes, *literals: bytes) -> Response:
        r = self.command(command, *literals)
        assert r.status == "BAD", f"{command!r}: expected BAD, got {r.tagged!r}"
        return r


def sock_closed(t: Transcript, timeout: float = 5) -> bool:
    """True once the server has closed the connection (reads EOF)."""
    t.sock.settimeout(timeout)
    try:
        while True:
            data = t.sock.recv(65536)
            if not data:
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
