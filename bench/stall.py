"""Phase `stall`: can one client's costly command stall the others? A canary client's NOOP
latency while 8 clients run the costliest SEARCH still allowed over a big mailbox, and the
server's resident memory before, at the peak and after."""

from __future__ import annotations

import threading
import time

from clients import RawIMAP
from common import Account, BenchError, Target
from fetch import append_archive
from phase import Bench, Phase
from report import Section, Summary, ms, percentile, progress

CANARY_BUDGET_MS = 100.0  # the worst NOOP while the costly SEARCHes run
MEMORY_BUDGET_MIB = 20.0  # resident memory back within this of where it started
SEARCH_CLIENTS = 8
SEARCH_ROUNDS = 1  # per client
MAX_SEARCH_KEYS = 256  # mailgate/imap/syntax/search.py


def costliest_search() -> bytes:
    """As many keys as a program may have, each needing headers or decoded bodies: every
    message is loaded whole and matched against all of them."""
    ors = (MAX_SEARCH_KEYS - 1) // 2
    kinds = ("SUBJECT nowhere%d", "TEXT nowhere%d", "HEADER X-Nowhere-%d nothing")
    terms = [("OR " + kinds[n % 3]) % n for n in range(ors)]
    return ("SEARCH " + " ".join(terms) + " BODY nowhere").encode()


def rss_mib(server: Target) -> float:
    return server.memory_kib()["Rss"] / 1024


def stall_labels(count: int) -> list[str]:
    return [
        f"canary NOOP during {SEARCH_CLIENTS} costly SEARCHes, {count} msgs p50 / p99 / max",
        "server RSS before / peak / after the SEARCHes",
    ]


def bench_stall(server: Target, owner: Account, count: int, summary: Summary) -> Section:
    progress(f"stall: APPEND {count} messages")
    setup = RawIMAP(server.ports["imaps"])
    try:
        setup.login(owner)
        append_archive(setup, owner.address, count)
        if setup.select() != count:
            raise BenchError("stall: the mailbox does not hold what was appended")
    finally:
        setup.close()
    program = costliest_search()
    before = rss_mib(server)
    peak = before
    stop = threading.Event()
    noops: list[float] = []
    searches: list[float] = []
    errors: list[BaseException] = []

    def canary() -> None:
        imap = RawIMAP(server.ports["imaps"])
        try:
            imap.login(owner)
            while not stop.is_set():
                t0 = time.perf_counter()
                imap.command(b"NOOP", keep=False)
                noops.append(time.perf_counter() - t0)
                time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            imap.close()

    def searcher() -> None:
        imap = RawIMAP(server.ports["imaps"])
        try:
            imap.login(owner)
            imap.select()
            for _ in range(SEARCH_ROUNDS):
                t0 = time.perf_counter()
                imap.command(program, keep=False)
                searches.append(time.perf_counter() - t0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            imap.close()

    progress(f"stall: {SEARCH_CLIENTS} clients x {SEARCH_ROUNDS} costliest SEARCHes")
    watch = threading.Thread(target=canary)
    watch.start()
    clients = [threading.Thread(target=searcher) for _ in range(SEARCH_CLIENTS)]
    t0 = time.perf_counter()
    for client in clients:
        client.start()
    while any(c.is_alive() for c in clients):
        peak = max(peak, rss_mib(server))
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    stop.set()
    watch.join()
    time.sleep(1)  # what a finished command held is given back by now, or never
    after = rss_mib(server)
    if errors:
        raise BenchError(f"stall: {errors[0]!r}")
    if not noops:
        raise BenchError("stall: the canary got no NOOP answered")
    worst = max(noops)
    section = Section(
        f"One client cannot stall the others: {SEARCH_CLIENTS} clients x {SEARCH_ROUNDS} SEARCHes "
        f"of {MAX_SEARCH_KEYS - 1} keys (SUBJECT, TEXT, HEADER) over {count} messages, a canary "
        "sending NOOP meanwhile"
    )
    section.add(
        "SEARCH latency p50 / max",
        f"{ms(percentile(searches, 50))} / {ms(max(searches))}",
        f"ms ({len(searches)} searches in {wall:.1f} s)",
    )
    section.add(
        "canary NOOP p50 / p99 / max",
        f"{ms(percentile(noops, 50))} / {ms(percentile(noops, 99))} / {ms(worst)}",
        f"ms ({len(noops)} NOOPs)",
    )
    rss = f"{before:.0f} / {peak:.0f} / {after:.0f}"
    section.add("server RSS before / peak / after", rss, "MiB")
    labels = stall_labels(count)
    verdict = "OK" if worst * 1000 <= CANARY_BUDGET_MS else "OVER"
    summary.add(
        labels[0],
        f"{ms(percentile(noops, 50))} / {ms(percentile(noops, 99))} / {ms(worst)} ms",
        f"max <= {CANARY_BUDGET_MS:.0f} ms: {verdict}",
    )
    verdict = "OK" if after - before <= MEMORY_BUDGET_MIB else "OVER"
    summary.add(
        labels[1],
        f"{rss} MiB",
        f"after <= before + {MEMORY_BUDGET_MIB:.0f} MiB: {verdict}",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_stall(bench.servers[0], bench.searcher, bench.counts.stall_messages, bench.summary)


PHASE = Phase("stall", _run, lambda counts, nodes: stall_labels(counts.stall_messages))
