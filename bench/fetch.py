"""Phase `fetch`: the header-sync FETCHes a mail client runs on opening a folder."""

from __future__ import annotations

import gc
import random
import time

from clients import RawIMAP
from common import Account, BenchError, Target
from messages import archive_message
from meters import cpu_meter
from phase import Bench, Phase
from report import Section, Summary, ms, percentile, progress

# The DESIGN.md "Speed budget" figure the results are compared with.
FETCH_BUDGET_MS = 24.0  # 2 x Dovecot's 12 ms for the ENVELOPE header sync of 1,000 messages

ENVELOPE_SYNC = b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"
THUNDERBIRD_SYNC = (
    b"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject "
    b"Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type "
    b"Reply-To)])"
)
BODYSTRUCTURE_SYNC = b"UID FETCH 1:* (BODYSTRUCTURE)"
# Whole messages, as a client downloading a folder for offline use does.
BODY_DOWNLOAD = b"UID FETCH 1:* (BODY.PEEK[])"


def append_archive(
    imap: RawIMAP, owner: str, count: int, batch: int = 50, mailbox: str = "INBOX"
) -> tuple[float, int]:
    """APPEND `count` messages to `mailbox` with LITERAL+, `batch` commands in flight;
    (seconds, bytes)."""
    rng = random.Random(1993)
    total = 0
    t0 = time.perf_counter()
    for first in range(0, count, batch):
        tags: list[bytes] = []
        chunks: list[bytes] = []
        for n in range(first, min(first + batch, count)):
            data, flags, date = archive_message(rng, n, owner)
            total += len(data)
            tag = imap.tag()
            tags.append(tag)
            chunks.append(
                b'%s APPEND %s (%s) "%s" {%d+}\r\n%s\r\n'
                % (tag, mailbox.encode(), flags.encode(), date.encode(), len(data), data)
            )
        imap.send(b"".join(chunks))
        for tag in tags:
            imap.read_reply(tag, keep=False)
    return time.perf_counter() - t0, total


FETCH_VARIANTS = (
    ("ENVELOPE sync", ENVELOPE_SYNC, True),  # (label, command, judged against the budget)
    ("Thunderbird HEADER.FIELDS", THUNDERBIRD_SYNC, False),
    ("BODYSTRUCTURE", BODYSTRUCTURE_SYNC, False),
    ("BODY.PEEK[]", BODY_DOWNLOAD, False),
)


def fetch_label(variant: str, count: int) -> str:
    return f"FETCH {variant}, {count} msgs p50 (min)"


def bench_fetch(server: Target, owner: Account, count: int, runs: int, summary: Summary) -> Section:
    progress(f"fetch: APPEND {count} messages")
    imap = RawIMAP(server.ports["imaps"])
    try:
        imap.login(owner)
        with cpu_meter(server) as meter:
            append_seconds, append_bytes = append_archive(imap, owner.address, count)
            append_cpu, _ = meter()
        exists = imap.select()
        if exists != count:
            raise BenchError(f"APPENDed {count} messages but SELECT says {exists} EXISTS")
        section = Section(
            f"Header sync FETCH: mailbox of {count} messages (avg "
            f"{append_bytes / count / 1024:.1f} KiB; 20% multipart), {runs} runs each, "
            "command sent -> tagged OK read"
        )
        section.add(
            "APPEND (LITERAL+, 50 in flight)",
            f"{count / append_seconds:.0f}",
            f"messages/s; server CPU {append_cpu / count * 1000:.2f} ms/message",
        )
        for label, command, budgeted in FETCH_VARIANTS:
            progress(f"fetch: {label} x {runs}")
            times: list[float] = []
            size = 0
            gc.collect()
            with cpu_meter(server) as meter:
                for _ in range(runs):
                    tag = imap.tag()
                    t0 = time.perf_counter()
                    imap.send(tag + b" " + command + b"\r\n")
                    reply = imap.read_reply(tag, keep=False)
                    times.append(time.perf_counter() - t0)
                    if reply.fetches != count:
                        raise BenchError(f"{label}: {reply.fetches} FETCH responses, not {count}")
                    size = reply.received
                cpu, _ = meter()
            p50 = percentile(times, 50)
            section.add(
                f"{label} min / p50 / p95 / max",
                f"{ms(min(times))} / {ms(p50)} / {ms(percentile(times, 95))} / {ms(max(times))}",
                f"ms  (first {ms(times[0])} ms; {size / 1024:.0f} KiB, "
                f"{size / p50 / 1e6:.0f} MB/s at p50; server CPU {cpu / runs * 1000:.1f} ms/run)",
            )
            budget = ""
            if budgeted:
                verdict = "OK" if p50 <= FETCH_BUDGET_MS / 1000 else "OVER"
                budget = f"<= {FETCH_BUDGET_MS:.0f} ms (Dovecot ~12 ms): {verdict}"
            summary.add(
                fetch_label(label, count),
                f"{ms(p50)} ({ms(min(times))}) ms",
                budget,
            )
        return section
    finally:
        imap.close()


def _run(bench: Bench) -> Section:
    return bench_fetch(
        bench.servers[0],
        bench.archive,
        bench.counts.fetch_messages,
        bench.counts.fetch_runs,
        bench.summary,
    )


PHASE = Phase(
    "fetch",
    _run,
    lambda counts, nodes: [
        fetch_label(label, counts.fetch_messages) for label, _, _ in FETCH_VARIANTS
    ],
    reference=True,
)
