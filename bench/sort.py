"""Phase `sort`: SORT and THREAD over a big mailbox (RFC 5256), SEARCH over the same, and whether
a client with a quick command waits behind THREAD."""

from __future__ import annotations

import gc
import threading
import time

from clients import RawIMAP
from common import Account, BenchError, Target
from fetch import append_archive
from meters import cpu_meter
from phase import Bench, Phase
from report import Section, Summary, ms, percentile, progress

MAILBOX = "Sorted"
COMMANDS = (
    ("SORT (DATE)", b"SORT (DATE) UTF-8 ALL", b"* SORT "),
    ("SORT (SUBJECT)", b"SORT (SUBJECT) UTF-8 ALL", b"* SORT "),
    ("SORT (REVERSE ARRIVAL) of UNSEEN", b"SORT (REVERSE ARRIVAL) UTF-8 UNSEEN", b"* SORT "),
    ("THREAD REFERENCES", b"THREAD REFERENCES UTF-8 ALL", b"* THREAD "),
    ("THREAD REFS", b"THREAD REFS UTF-8 ALL", b"* THREAD "),
    # Flags only (the database's query), then headers and text (the text index built at ingest).
    ("UID SEARCH UNSEEN", b"UID SEARCH UNSEEN", b"* SEARCH"),
    ("UID SEARCH FLAGGED UNDELETED", b"UID SEARCH FLAGGED UNDELETED", b"* SEARCH"),
    ("UID SEARCH SUBJECT", b"UID SEARCH SUBJECT invoice", b"* SEARCH"),
    ("UID SEARCH FROM", b"UID SEARCH FROM alice.martin", b"* SEARCH"),
    ("UID SEARCH BODY", b'UID SEARCH BODY "invoice meeting report"', b"* SEARCH"),
    ("UID SEARCH TEXT", b'UID SEARCH TEXT "grace kim"', b"* SEARCH"),
)


def sort_label(label: str, count: int) -> str:
    return f"{label}, {count} msgs p50 / p99"


def canary_label(count: int) -> str:
    return f"canary NOOP during THREAD REFERENCES, {count} msgs p50 / max"


def bench_sort(server: Target, owner: Account, count: int, runs: int, summary: Summary) -> Section:
    progress(f"sort: APPEND {count} messages to {MAILBOX}")
    imap = RawIMAP(server.ports["imaps"])
    try:
        imap.login(owner)
        imap.command(b"CREATE " + MAILBOX.encode())
        append_archive(imap, owner.address, count, mailbox=MAILBOX)
        if imap.select(MAILBOX.encode()) != count:
            raise BenchError("sort: the mailbox does not hold what was appended")
        section = Section(
            f"SORT, THREAD and SEARCH: a mailbox of {count} messages (as fetch's), {runs} runs "
            "each, command sent -> tagged OK read"
        )
        for label, command, answer in COMMANDS:
            progress(f"sort: {label} x {runs}")
            times: list[float] = []
            gc.collect()
            with cpu_meter(server) as meter:
                for _ in range(runs):
                    t0 = time.perf_counter()
                    reply = imap.command(command)
                    times.append(time.perf_counter() - t0)
                    if not any(line.startswith(answer) for line in reply.lines):
                        raise BenchError(f"sort: {label} gave no {answer!r}")
                cpu, _ = meter()
            p50, p99 = percentile(times, 50), percentile(times, 99)
            section.add(
                f"{label} min / p50 / p99 / max",
                f"{ms(min(times))} / {ms(p50)} / {ms(p99)} / {ms(max(times))}",
                f"ms  (server CPU {cpu / runs * 1000:.1f} ms/run)",
            )
            summary.add(sort_label(label, count), f"{ms(p50)} / {ms(p99)} ms", "")
        noops = _canary(server, owner, imap, runs)
        section.add(
            "canary NOOP during THREAD REFERENCES p50 / max",
            f"{ms(percentile(noops, 50))} / {ms(max(noops))}",
            f"ms  ({len(noops)} NOOPs from another session)",
        )
        summary.add(canary_label(count), f"{ms(percentile(noops, 50))} / {ms(max(noops))} ms", "")
        return section
    finally:
        imap.close()


def _canary(server: Target, owner: Account, busy: RawIMAP, runs: int) -> list[float]:
    """NOOP latencies of a second session while `busy` runs THREAD REFERENCES `runs` times."""
    progress("sort: canary NOOPs during THREAD REFERENCES")
    canary = RawIMAP(server.ports["imaps"])
    noops: list[float] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def threads() -> None:
        try:
            for _ in range(runs):
                busy.command(b"THREAD REFERENCES UTF-8 ALL", keep=False)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            done.set()

    try:
        canary.login(owner)
        worker = threading.Thread(target=threads)
        worker.start()
        while not done.is_set():
            t0 = time.perf_counter()
            canary.command(b"NOOP", keep=False)
            noops.append(time.perf_counter() - t0)
        worker.join()
    finally:
        canary.close()
    if errors:
        raise BenchError(f"sort: THREAD failed during the canary: {errors[0]!r}")
    return noops


def _run(bench: Bench) -> Section:
    return bench_sort(
        bench.servers[0],
        bench.archive,
        bench.counts.sort_messages,
        bench.counts.sort_runs,
        bench.summary,
    )


PHASE = Phase(
    "sort",
    _run,
    lambda counts, nodes: [
        *(sort_label(label, counts.sort_messages) for label, _, _ in COMMANDS),
        canary_label(counts.sort_messages),
    ],
    reference=True,
)
