"""Phase `compress_memory`: server memory per idle IMAP connection with COMPRESS=DEFLATE (TLS,
logged in, COMPRESS DEFLATE, INBOX selected, IDLE), beside the same connections uncompressed,
each measured on a freshly started server as `memory` measures it."""

from __future__ import annotations

import asyncio
import time
import zlib

from clients import RawIMAP, client_tls
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from fleet import Close, Fleet, Open, Rounds, measure_rounds, memory_rows
from memory import IDLE_SESSION_BUDGET_KIB, idle_cycle, idle_opener
from phase import Bench, Phase
from report import Section, Summary, progress


class _Deflated:
    """The client's side of COMPRESS=DEFLATE as Thunderbird sets it up: zlib's default window
    and memory level, a sync flush after each command."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.writer.write(self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH))

    async def readline(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = await self.reader.read(65536)
            if not chunk:
                return b""
            self.buffer += self.decompressor.decompress(chunk)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"


def compressed_idle_opener(port: int, account: Account) -> Open:
    """In a load generator: what opens one TLS connection, logs in, turns on COMPRESS=DEFLATE,
    selects INBOX and IDLEs."""
    ctx = client_tls()
    login = b'a LOGIN "%s" "%s"\r\n' % (account.address.encode(), account.key.encode())

    async def expect(read: asyncio.StreamReader | _Deflated, prefix: bytes) -> None:
        while True:
            line = await read.readline()
            if not line:
                raise ConnectionError("closed by the server")
            if line.startswith(prefix):
                if prefix != b"+" and not line[len(prefix) :].startswith(b"OK"):
                    raise ConnectionError(f"refused: {line!r}")
                return

    async def one() -> Close:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, ssl=ctx), SOCKET_TIMEOUT
        )
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await expect(reader, b"* ")
                writer.write(login)
                await expect(reader, b"a ")
                writer.write(b"z COMPRESS DEFLATE\r\n")
                await expect(reader, b"z ")
                deflated = _Deflated(reader, writer)
                deflated.write(b"b SELECT INBOX\r\n")
                await expect(deflated, b"b ")
                deflated.write(b"c IDLE\r\n")
                await expect(deflated, b"+")
        except BaseException:
            writer.close()
            raise

        async def close() -> None:
            writer.close()
            await writer.wait_closed()

        return close

    return one


def _compressed_cycle(port: int, account: Account) -> None:
    """One session that turns COMPRESS on and hangs up, for the warm-up (imports, code
    paths)."""
    imap = RawIMAP(port)
    try:
        imap.login(account)
        reply = imap.command(b"COMPRESS DEFLATE", keep=False)
        if b" OK " not in reply.status:
            raise BenchError(f"COMPRESS DEFLATE not accepted: {reply.status!r}")
    finally:
        imap.close()


COMPRESSED_LABEL = "Memory per COMPRESS=DEFLATE IDLE session (anon / PSS / RSS)"


def _measure(server: Target, account: Account, count: int, rounds: int, compressed: bool) -> Rounds:
    port = server.ports["imaps"]
    for _ in range(10):
        idle_cycle(port, account)
        _compressed_cycle(port, account)
    time.sleep(1.0)
    opener = compressed_idle_opener if compressed else idle_opener
    what = "compressed IDLE connections" if compressed else "IDLE connections"
    return measure_rounds(
        server,
        "compress_memory",
        count,
        rounds,
        lambda: Fleet(opener, (port, account), count, what, "zidle" if compressed else "idle"),
    )


def bench_compress_memory(
    bench: Bench, account: Account, count: int, rounds: int, summary: Summary
) -> Section:
    progress(f"compress_memory: {rounds} x {count} IDLE connections, compressed then plain")
    compressed = _measure(bench.fresh_server("compress_memory"), account, count, rounds, True)
    # A server of its own for the plain ones: memory the compressed round freed would hide
    # what they cost.
    bench.used = True
    plain = _measure(bench.fresh_server("compress_memory"), account, count, rounds, False)
    section = Section(
        f"Memory per idle IMAP connection with COMPRESS=DEFLATE: {compressed.opened} TLS "
        f"connections (port 993), each logged in, COMPRESS DEFLATE (the client with zlib's "
        f"default 32 KiB window), INBOX selected, in IDLE; {rounds} round(s); then the same "
        "without COMPRESS on a fresh server"
    )
    verdict = memory_rows(
        section,
        compressed,
        IDLE_SESSION_BUDGET_KIB,
        rate="handshakes+logins",
        setup="TLS handshake, LOGIN, COMPRESS, SELECT, IDLE",
    )
    per, base = compressed.per_connection(), plain.per_connection()
    section.add(
        "anonymous memory per connection without COMPRESS",
        f"{base['Anonymous']:.1f}",
        f"KiB  (COMPRESS adds {per['Anonymous'] - base['Anonymous']:.1f} KiB)",
    )
    summary.add(
        COMPRESSED_LABEL,
        f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB",
        f"<= {IDLE_SESSION_BUDGET_KIB:.0f} KiB: {verdict}; plain {base['Anonymous']:.1f} KiB",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_compress_memory(
        bench,
        bench.agent,
        bench.counts.connections,
        bench.memory_rounds,
        bench.summary,
    )


PHASE = Phase("compress_memory", _run, lambda counts, nodes: [COMPRESSED_LABEL])
