"""Phase `memory`: server memory per idle IMAP connection (TLS, logged in, INBOX selected, IDLE)."""

from __future__ import annotations

import asyncio
import ssl
import time

from clients import Deflated, RawIMAP, client_tls
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from fleet import Close, Fleet, Open, measure_rounds, memory_rows
from phase import Bench, Phase
from report import Section, Summary, progress

IDLE_SESSION_BUDGET_KIB = 32.0


async def open_idle(
    port: int, ctx: ssl.SSLContext, login: bytes, *, compress: bool = False
) -> tuple[asyncio.StreamReader | Deflated, asyncio.StreamWriter]:
    """One TLS connection, logged in with `login` (the LOGIN command), with COMPRESS=DEFLATE
    turned on (`compress`), INBOX selected and idling: what to read it by, and its writer."""

    async def expect(reader: asyncio.StreamReader | Deflated, prefix: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed by the server")
            if line.startswith(prefix):
                if prefix != b"+" and not line[len(prefix) :].startswith(b"OK"):
                    raise ConnectionError(f"refused: {line!r}")
                return

    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, port, ssl=ctx), SOCKET_TIMEOUT
    )
    try:
        async with asyncio.timeout(SOCKET_TIMEOUT):
            await expect(reader, b"* ")
            writer.write(login)
            await expect(reader, b"a ")
            session: asyncio.StreamWriter | Deflated = writer
            stream: asyncio.StreamReader | Deflated = reader
            if compress:
                writer.write(b"z COMPRESS DEFLATE\r\n")
                await expect(reader, b"z ")
                session = stream = Deflated(reader, writer)
            session.write(b"b SELECT INBOX\r\n")
            await expect(stream, b"b ")
            session.write(b"c IDLE\r\n")
            await expect(stream, b"+")
    except BaseException:
        writer.close()
        raise
    return stream, writer


def login_command(account: Account) -> bytes:
    return b'a LOGIN "%s" "%s"\r\n' % (account.address.encode(), account.key.encode())


def idle_opener(port: int, account: Account, *, compress: bool = False) -> Open:
    """In a load generator: what opens one TLS connection, logs in, turns on COMPRESS=DEFLATE
    (`compress`), selects INBOX and IDLEs."""
    ctx, login = client_tls(), login_command(account)

    async def one() -> Close:
        _, writer = await open_idle(port, ctx, login, compress=compress)

        async def close() -> None:
            writer.close()
            await writer.wait_closed()

        return close

    return one


def idle_cycle(port: int, account: Account) -> None:
    imap = RawIMAP(port)
    try:
        imap.login(account)
        imap.select()
        imap.send(b"i IDLE\r\n")
        if not imap.read_line().startswith(b"+"):
            raise BenchError("IDLE not accepted")
        imap.send(b"DONE\r\n")
        imap.read_reply(b"i", keep=False)
    finally:
        imap.close()


MEMORY_LABEL = "Memory per IDLE session (anon / PSS / RSS)"


def bench_memory(
    server: Target, account: Account, count: int, rounds: int, summary: Summary
) -> Section:
    port = server.ports["imaps"]
    progress(f"memory: warm-up, then {rounds} x {count} IDLE connections")
    # Warm the server up (imports, caches, the login path) so the baseline is its steady state.
    for _ in range(10):
        idle_cycle(port, account)
    time.sleep(1.0)
    run = measure_rounds(
        server,
        "memory",
        count,
        rounds,
        lambda: Fleet(idle_opener, (port, account), count, "IDLE connections", "idle"),
    )
    section = Section(
        f"Memory per idle IMAP connection: {run.opened} TLS connections (port 993), each logged "
        f"in, INBOX selected, in IDLE; {rounds} round(s) of open-all / close-all"
    )
    verdict = memory_rows(
        section,
        run,
        IDLE_SESSION_BUDGET_KIB,
        rate="handshakes+logins",
        setup="TLS handshake, LOGIN, SELECT, IDLE",
    )
    per = run.per_connection()
    summary.add(
        MEMORY_LABEL,
        f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB",
        f"<= {IDLE_SESSION_BUDGET_KIB:.0f} KiB (Dovecot ~1.9 MB PSS): {verdict}",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_memory(
        bench.fresh_server("memory"),
        bench.agent,
        bench.counts.connections,
        bench.memory_rounds,
        bench.summary,
    )


PHASE = Phase("memory", _run, lambda counts, nodes: [MEMORY_LABEL], reference=True)
