"""Phase `idle`: from the SMTP 250 after DATA to the "* n EXISTS" an idling IMAP client sees."""

from __future__ import annotations

import contextlib
import gc
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from clients import RawIMAP, smtp_client
from common import SOCKET_TIMEOUT, Account, BenchError, Target
from messages import submission_message
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, progress

IDLE_EXISTS_TIMEOUT = 10.0


class IdleWatcher(threading.Thread):
    """Owns one IMAP connection in IDLE; timestamps every "* n EXISTS" as it arrives."""

    def __init__(self, imap: RawIMAP) -> None:
        super().__init__(name="idle-watcher", daemon=True)
        self.imap = imap
        self.exists: queue.Queue[tuple[int, float]] = queue.Queue()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        imap = self.imap
        try:
            imap.sock.settimeout(0.2)  # poll for `stopping`
            while not self.stopping.is_set():
                try:
                    arrived = imap._fill()
                except TimeoutError:
                    continue
                while (nl := imap.buf.find(b"\r\n")) >= 0:
                    line = bytes(imap.buf[:nl])
                    del imap.buf[: nl + 2]
                    m = re.fullmatch(rb"\* (\d+) EXISTS", line)
                    if m:
                        self.exists.put((int(m.group(1)), arrived))
            imap.sock.settimeout(SOCKET_TIMEOUT)
            imap.send(b"DONE\r\n")
            imap.read_reply(b"idle", keep=False)
        except BaseException as exc:
            self.error = exc
            self.exists.put((-1, 0.0))

    def wait_exists(self, want: int) -> float:
        """When the mailbox's "* n EXISTS" reached `want` (perf_counter at the client)."""
        while True:
            try:
                n, arrived = self.exists.get(timeout=IDLE_EXISTS_TIMEOUT)
            except queue.Empty:
                raise BenchError(
                    f"no EXISTS {want} within {IDLE_EXISTS_TIMEOUT:.0f} s of the message"
                ) from None
            if n < 0:
                raise BenchError(f"IDLE connection failed: {self.error!r}")
            if n >= want:
                return arrived


@contextlib.contextmanager
def idling(server: Target, account: Account) -> Iterator[tuple[IdleWatcher, int]]:
    """An IMAP client idling on the account's INBOX: its watcher and the EXISTS at SELECT."""
    imap = RawIMAP(server.ports["imaps"])
    thread: IdleWatcher | None = None
    try:
        imap.login(account)
        base = imap.select()
        imap.send(b"idle IDLE\r\n")
        line = imap.read_line()
        if not line.startswith(b"+"):
            raise BenchError(f"IDLE not accepted: {line!r}")
        thread = IdleWatcher(imap)
        thread.start()
        yield thread, base
    finally:
        if thread is not None:
            thread.stopping.set()
            thread.join(30)
        imap.close()
    if thread is not None and thread.error is not None:
        raise BenchError(f"IDLE connection failed: {thread.error!r}")


IDLE_LABEL = "Delivery -> IDLE EXISTS p50/p95/p99/max"


@dataclass
class IdleRun:
    latencies: list[float]  # 250 after DATA -> "* n EXISTS" at the idling client
    submits: list[float]  # MAIL FROM -> 250
    cpu: list[float]  # CPU seconds of each server measured, in the order given
    wall: float
    postgres_cpu: float | None = None  # CPU seconds of the local PostgreSQL, if measured


def measure_idle(
    submit_via: Target,
    idle_on: Target,
    sender: Account,
    watcher: Account,
    count: int,
    first_number: int,
    postgres: bool = False,
) -> IdleRun:
    """Submit `count` messages one at a time through one server to an inbox idling on another
    (or the same) server; time each from the 250 to the EXISTS."""
    servers = [submit_via] if idle_on is submit_via else [submit_via, idle_on]
    with idling(idle_on, watcher) as (thread, base):
        smtp = smtp_client(submit_via.ports["submissions"], sender)
        try:
            latencies: list[float] = []
            submits: list[float] = []
            gc.collect()
            cpu0 = [s.cpu_seconds() for s in servers]
            pg0 = postgres_cpu_seconds() if postgres else None
            with cpu_meter(*servers) as meter:
                for i in range(count):
                    data = submission_message(sender.address, watcher.address, first_number + i)
                    t0 = time.perf_counter()
                    smtp.sendmail(sender.address, [watcher.address], data)
                    t250 = time.perf_counter()
                    latencies.append(thread.wait_exists(base + i + 1) - t250)
                    submits.append(t250 - t0)
                _, wall = meter()
            cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
            pg1 = postgres_cpu_seconds() if pg0 is not None else None
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
    pg_cpu = pg1 - pg0 if pg0 is not None and pg1 is not None else None
    return IdleRun(latencies, submits, cpu, wall, pg_cpu)


def bench_idle(
    server: Target, sender: Account, watcher: Account, count: int, summary: Summary
) -> Section:
    progress(f"idle: {count} messages, one at a time, to an IDLE client")
    run = measure_idle(server, server, sender, watcher, count, 9 * 10**6)
    latencies, cpu, wall = run.latencies, run.cpu[0], run.wall

    section = Section(
        f"Delivery to IDLE: {count} messages submitted one at a time (port 465), "
        "time from the 250 after DATA to '* n EXISTS' at a client idling on INBOX"
    )
    for p in (50, 95, 99):
        section.add(f"250 -> EXISTS p{p}", ms(percentile(latencies, p)), "ms")
    section.add("250 -> EXISTS max", ms(max(latencies)), "ms")
    section.add("250 -> EXISTS min", ms(min(latencies)), "ms")
    section.add("submit latency p50 (one client)", ms(percentile(run.submits, 50)), "ms")
    whole = [a + b for a, b in zip(run.submits, latencies, strict=True)]
    section.add("MAIL FROM -> EXISTS p50", ms(percentile(whole, 50)), "ms  (the whole way)")
    section.add("server CPU", f"{cpu / count * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    summary.add(
        IDLE_LABEL,
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {max(latencies) * 1000:.1f} ms",
        "a few ms (Postfix+Dovecot ~500 ms)",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_idle(
        bench.servers[0], bench.senders[0], bench.watcher, bench.counts.idle_messages, bench.summary
    )


PHASE = Phase("idle", _run, lambda counts, nodes: [IDLE_LABEL], reference=True)
