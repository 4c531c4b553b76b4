"""Phase `memory`: server memory per idle IMAP connection (TLS, logged in, INBOX selected, IDLE)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
from typing import Any

from clients import RawIMAP, client_tls
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from phase import Bench, Phase
from report import Section, Summary, cpu_note, progress

MEMORY_TIMEOUT = 600.0

IDLE_SESSION_BUDGET_KIB = 32.0


async def _hold_idle_connections(
    port: int, account: Account, count: int, concurrency: int, control: Any
) -> None:
    ctx = client_tls()
    gate = asyncio.Semaphore(concurrency)
    writers: list[asyncio.StreamWriter] = []
    login = b'a LOGIN "%s" "%s"\r\n' % (account.address.encode(), account.key.encode())

    async def expect(reader: asyncio.StreamReader, prefix: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed by the server")
            if line.startswith(prefix):
                if prefix != b"+" and not line[len(prefix) :].startswith(b"OK"):
                    raise ConnectionError(f"refused: {line!r}")
                return

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, ssl=ctx), SOCKET_TIMEOUT
            )
            try:
                async with asyncio.timeout(SOCKET_TIMEOUT):
                    await expect(reader, b"* ")
                    writer.write(login)
                    await expect(reader, b"a ")
                    writer.write(b"b SELECT INBOX\r\n")
                    await expect(reader, b"b ")
                    writer.write(b"c IDLE\r\n")
                    await expect(reader, b"+")
            except BaseException:
                writer.close()
                raise
            writers.append(writer)

    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    control.send(("ready", len(writers), failures[:3], len(failures), time.perf_counter() - t0))
    with contextlib.suppress(EOFError, OSError):
        await loop.run_in_executor(None, control.recv)  # "close", or the parent is gone
    for writer in writers:
        writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(30):
            await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    with contextlib.suppress(Exception):
        control.send(("closed",))


def memory_worker(port: int, account: Account, count: int, concurrency: int, control: Any) -> None:
    """Entry point of a load-generator process: hold `count` IDLE connections until told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_hold_idle_connections(port, account, count, concurrency, control))


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


class IdleFleet:
    """K idle IMAP connections held by a few spawned load-generator processes."""

    def __init__(self, port: int, account: Account, count: int) -> None:
        self.workers = max(1, min(4, count // 250))
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for w in range(self.workers):
            share = count // self.workers + (1 if w < count % self.workers else 0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=memory_worker,
                args=(port, account, share, 8, child),  # 8 handshakes in flight per process
                name=f"bench-idle-{w}",
                daemon=True,
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.pipes.append(parent)

    def wait_open(self) -> tuple[int, float]:
        """(connections open, seconds the slowest process took); raises if any failed."""
        opened = failed = 0
        failures: list[str] = []
        slowest = 0.0
        deadline = time.monotonic() + MEMORY_TIMEOUT
        for pipe in self.pipes:
            if not pipe.poll(max(1.0, deadline - time.monotonic())):
                raise BenchError(f"IDLE connections not open within {MEMORY_TIMEOUT:.0f} s")
            try:
                _, n, errs, nfailed, elapsed = pipe.recv()
            except EOFError:
                raise BenchError("a load-generator process died") from None
            opened += n
            failures += errs
            failed += nfailed
            slowest = max(slowest, elapsed)
        if failed:
            raise BenchError(f"{failed} IDLE connections failed, e.g. {failures}")
        return opened, slowest

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(60):
                    pipe.recv()
            pipe.close()
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)


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
    samples = [("before", server.memory_kib(), server.open_fds())]
    opened = 0
    seconds = cpu = 0.0
    for r in range(1, rounds + 1):
        progress(f"memory: round {r}: opening {count} connections")
        cpu0 = server.cpu_seconds()
        fleet = IdleFleet(port, account, count)
        try:
            opened, open_seconds = fleet.wait_open()
            if r == 1:
                seconds, cpu = open_seconds, server.cpu_seconds() - cpu0
            time.sleep(2.0)  # let the server finish whatever the last logins started
            samples.append((f"{opened} open (round {r})", server.memory_kib(), server.open_fds()))
        finally:
            fleet.close()
        time.sleep(2.0)
        samples.append((f"all closed (round {r})", server.memory_kib(), server.open_fds()))

    before, first = samples[0][1], samples[1][1]
    per = {k: (first[k] - before[k]) / opened for k in ("Rss", "Pss", "Anonymous")}
    section = Section(
        f"Memory per idle IMAP connection: {opened} TLS connections (port 993), each logged "
        f"in, INBOX selected, in IDLE; {rounds} round(s) of open-all / close-all"
    )
    section.add(
        "time to open all (round 1)",
        f"{seconds:.1f}",
        f"s  ({opened / seconds:.0f} handshakes+logins/s, {fleet.workers} client process(es))",
    )
    section.add(
        "server CPU per connection set-up",
        f"{cpu / opened * 1000:.2f}",
        f"ms  (TLS handshake, LOGIN, SELECT, IDLE); {cpu_note(cpu, seconds)}",
    )
    for label, mem, fds in samples:
        section.add(
            f"server {label}",
            f"{mem['Rss']} / {mem['Pss']} / {mem['Anonymous']}",
            f"KiB RSS / PSS / anonymous; {fds} fds",
        )
    # The budget is judged on anonymous memory: it is what sessions allocate. PSS also moves
    # with file-backed pages shared with other processes (the load generators run the same
    # Python and libraries), by a few MB either way, which is noise at a few KiB per session.
    verdict = "OK" if per["Anonymous"] <= IDLE_SESSION_BUDGET_KIB else "OVER"
    section.add("RSS per connection", f"{per['Rss']:.1f}", "KiB")
    section.add("PSS per connection", f"{per['Pss']:.1f}", "KiB")
    section.add(
        "anonymous memory per connection",
        f"{per['Anonymous']:.1f}",
        f"KiB  (private heap; budget {IDLE_SESSION_BUDGET_KIB:.0f}: {verdict})",
    )
    if rounds > 1:
        # Slope of the "open" samples, round over round: what each connection leaves behind.
        opens = [mem["Anonymous"] for label, mem, _ in samples if " open " in label]
        xs = range(len(opens))
        mx, my = sum(xs) / len(opens), sum(opens) / len(opens)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, opens, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        section.add(
            "anonymous growth per connection per round",
            f"{slope / opened:.2f}",
            "KiB  (slope of the 'open' samples: a leak if well above 0)",
        )
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
