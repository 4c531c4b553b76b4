"""Phase `compress_memory`: server memory per idle IMAP connection with COMPRESS=DEFLATE (TLS,
logged in, COMPRESS DEFLATE, INBOX selected, IDLE), beside the same connections uncompressed,
each measured on a freshly started server as `memory` measures it."""

from __future__ import annotations

import time

from clients import RawIMAP
from common import Account, BenchError, Target
from fleet import Fleet, Open, Rounds, measure_rounds, memory_rows
from memory import IDLE_SESSION_BUDGET_KIB, idle_cycle, idle_opener
from phase import Bench, Phase
from report import Section, Summary, progress


def compressed_idle_opener(port: int, account: Account) -> Open:
    """In a load generator: what opens one TLS connection, logs in, turns on COMPRESS=DEFLATE,
    selects INBOX and IDLEs."""
    return idle_opener(port, account, compress=True)


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
