"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are raw deflate inside TLS,
as Thunderbird uses it. The client side here is zlib with the window a client would choose."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, fetches, message, start_idle, stop_idle
from tests.transcript import Transcript, sock_closed

WAIT = 5.0


class DeflateSocket:
    """The client's half of COMPRESS=DEFLATE over a TLS socket: what Transcript needs of a
    socket, compressing what it sends (sync-flushed, as clients do) and inflating what it
    reads."""

    def __init__(self, sock: socket.socket, flush: int = zlib.Z_SYNC_FLUSH) -> None:
        self.sock = sock
        self.flush = flush
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.compressor.compress(data) + self.compressor.flush(self.flush))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        while True:
            chunk = self.sock.recv(size)
            if not chunk:
                return b""
            plain = self.decompressor.decompress(chunk)
            if plain:
                return plain

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def close(self) -> None:
        self.sock.close()


def compress(s: Transcript, flush: int = zlib.Z_SYNC_FLUSH) -> DeflateSocket:
    r = s.ok("COMPRESS DEFLATE")
    assert r.untagged == []
    wrapped = DeflateSocket(s.sock, flush)  # type: ignore[arg-type]
    s.sock = wrapped  # type: ignore[assignment]
    return wrapped


def test_offered_once_logged_in(server: Server, account: Account) -> None:
    with Transcript.connect(server) as s:
        assert b"COMPRESS=DEFLATE" not in s.greeting
        s.ok(f'LOGIN "{account.address}" "{account.key}"')
        (line,) = s.ok("CAPABILITY").lines(b"CAPABILITY")
        assert b" COMPRESS=DEFLATE" in line


def test_commands_and_literals_both_ways(imap: Transcript) -> None:
    compress(imap)
    big = message("Compressed", body="All work and no play makes a dull inbox.\r\n" * 2000)
    append(imap, big)  # a synchronizing literal: the "+" comes compressed too
    imap.ok("SELECT INBOX")
    r = imap.ok("FETCH 1 (BODY.PEEK[])")
    (item,) = fetches(r).values()
    assert big in item
    imap.ok(b"APPEND INBOX {5+}\r\nhello", code="APPENDUID")
    assert imap.ok("SEARCH ALL").lines(b"SEARCH") == [b"* SEARCH 1 2"]


def test_second_compress_is_refused_and_logout_ends_cleanly(imap: Transcript) -> None:
    compress(imap)
    imap.no("COMPRESS DEFLATE", code="COMPRESSIONACTIVE")
    r = imap.ok("LOGOUT")
    assert r.lines(b"BYE")
    assert sock_closed(imap)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("COMPRESS", b"Missing argument"),
        ("COMPRESS GZIP", b"Unknown compression mechanism; only DEFLATE"),
        ("COMPRESS DEFLATE now", b"Unexpected characters"),
        ("COMPRESS  DEFLATE", b"Expected an atom"),
        ('COMPRESS "DEFLATE"', b"Expected an atom"),
    ],
)
def test_malformed_is_bad(imap: Transcript, command: str, reason: bytes) -> None:
    r = imap.bad(command)
    assert reason in r.tagged, r.tagged
    imap.ok("NOOP")  # still plain text: nothing was switched on


def test_needs_login(server: Server) -> None:
    with Transcript.connect(server) as s:
        r = s.bad("COMPRESS DEFLATE")
        assert b"Log in first" in r.tagged
        s.ok("NOOP")


def test_command_pipelined_behind_compress(imap: Transcript) -> None:
    """A client that sends its first compressed command right behind COMPRESS, without
    waiting for the OK: those bytes are compressed already and must be read as such."""
    tag = imap.next_tag()
    client = zlib.compressobj(6, zlib.DEFLATED, -15)
    noop = client.compress(b"n1 NOOP\r\n") + client.flush(zlib.Z_SYNC_FLUSH)
    imap.send(f"{tag} COMPRESS DEFLATE\r\n".encode() + noop)
    assert imap.read_line().startswith(f"{tag} OK".encode())
    wrapped = DeflateSocket(imap.sock)  # type: ignore[arg-type]
    wrapped.compressor = client
    imap.sock = wrapped  # type: ignore[assignment]
    assert imap.finish("n1").status == "OK"
    imap.ok("NOOP")


def test_idle_pushes_arrive_whole(
    sessions: Callable[[Account], Transcript], account: Account
) -> None:
    """Each push is flushed: the EXISTS reaches the client without waiting for more output."""
    idler, actor = sessions(account), sessions(account)
    compress(idler)
    idler.ok("SELECT INBOX")
    tag = start_idle(idler)
    append(actor, message("pushed"))
    idler.read_until(lambda line: line == b"* 1 EXISTS", WAIT)
    stop_idle(idler, tag)
    assert idler.ok("SEARCH ALL").lines(b"SEARCH") == [b"* SEARCH 1"]


@pytest.mark.parametrize("flush", [zlib.Z_SYNC_FLUSH, zlib.Z_PARTIAL_FLUSH, zlib.Z_FULL_FLUSH])
def test_quiet_session_resumes(make_server: Callable[..., Server], flush: int) -> None:
    """A compressed session left quiet (the server drops its decompressor at a block boundary
    to save memory) reads the client's next command with the history it refers back to."""
    server = make_server(imap={"idle_keepalive": 1})
    account = server.account()
    with Transcript.login(server, account) as s:
        compress(s, flush)
        s.ok("SELECT INBOX")
        for _ in range(2):
            tag = start_idle(s)
            # The keepalive comes from the same sweep that lets a quiet decompressor go.
            s.read_until(lambda line: line.startswith(b"* OK Still here"), WAIT)
            stop_idle(s, tag)
        s.ok("SELECT INBOX")  # refers back to the first SELECT
        s.ok("NOOP")


def test_bad_stream_ends_the_session_with_bye(server: Server, imap: Transcript) -> None:
    wrapped = compress(imap)
    wrapped.send_raw(b"\xff\xff\xff\xff garbage that is not deflate")
    lines = imap.read_until(lambda line: line.startswith(b"* BYE"), WAIT)
    assert lines[-1] == b"* BYE Bad compressed data"
    with pytest.raises((ConnectionError, OSError)):
        imap.read_line()
    # The listener is fine.
    with Transcript.connect(server) as other:
        other.ok("NOOP")


def test_end_of_stream_ends_the_session_with_bye(imap: Transcript) -> None:
    wrapped = compress(imap)
    wrapped.send_raw(wrapped.compressor.flush(zlib.Z_FINISH))
    lines = imap.read_until(lambda line: line.startswith(b"* BYE"), WAIT)
    assert lines[-1] == b"* BYE Bad compressed data"


def test_decompression_bomb_is_bounded(imap: Transcript) -> None:
    """A few KiB of deflate that inflate to 16 MiB of one line: the line limit answers, not
    the memory."""
    wrapped = compress(imap)
    bomb = b"a NOOP " + b"x" * (16 << 20)
    wrapped.sendall(bomb)
    lines = imap.read_until(lambda line: line.startswith(b"* BYE"), WAIT)
    assert lines[-1] == b"* BYE Command line too long"
