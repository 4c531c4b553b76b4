"""What the connection-memory phases (memory.py, ws_memory.py, mcp_memory.py) share: many client
connections held open by a few spawned load-generator processes, and the server's memory read
before, with them all open and after they are closed, over rounds; then the same rows of their
sections.

A load generator is a spawned process running one asyncio loop. It opens its share of the
connections with `opener(*args)` (a module-level function, so that the spawned process can find
it by name, which returns the coroutine function that opens one connection and returns the
coroutine function that closes it), a few in flight at once, reports on its control pipe, holds
them until told, closes them and reports again, with what closing them returned."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from common import BenchError, Target
from report import Section, cpu_note, progress

MEMORY_TIMEOUT = 600.0
CONNECTIONS_PER_WORKER = 250  # a load-generator process for every 250 connections
MAX_WORKERS = 4
CONCURRENCY = 8  # connections being opened at once in each process, under the listen backlog
CLOSE_TIMEOUT = 60.0

Close = Callable[[], Awaitable[Any]]  # closes one connection; what it returns, close() collects
Open = Callable[[], Awaitable[Close]]  # opens one connection (and logs in, subscribes, ...)
Opener = Callable[..., Open]  # module-level: opener(*args) in each process


async def _hold(open_one: Open, count: int, concurrency: int, control: Any) -> None:
    gate = asyncio.Semaphore(concurrency)
    closers: list[Close] = []

    async def one() -> None:
        async with gate:
            closers.append(await open_one())

    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    control.send(("ready", len(closers), failures[:3], len(failures), time.perf_counter() - t0))
    with contextlib.suppress(EOFError, OSError):
        await loop.run_in_executor(None, control.recv)  # "close", or the parent is gone
    results: list[Any] = []
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            done = await asyncio.gather(*(close() for close in closers), return_exceptions=True)
            results = [r for r in done if r is not None and not isinstance(r, BaseException)]
    with contextlib.suppress(Exception):
        control.send(("closed", results))


def worker(
    opener: Opener, args: tuple[Any, ...], count: int, concurrency: int, control: Any
) -> None:
    """Entry point of a load-generator process: hold `count` connections until told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_hold(opener(*args), count, concurrency, control))


class Fleet:
    """`count` connections (`what`, for messages) held by a few spawned load generators."""

    def __init__(
        self, opener: Opener, args: tuple[Any, ...], count: int, what: str, name: str
    ) -> None:
        self.what = what
        self.workers = max(1, min(MAX_WORKERS, count // CONNECTIONS_PER_WORKER))
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for w in range(self.workers):
            share = count // self.workers + (1 if w < count % self.workers else 0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker,
                args=(opener, args, share, CONCURRENCY, child),
                name=f"bench-{name}-{w}",
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
                raise BenchError(f"{self.what} not open within {MEMORY_TIMEOUT:.0f} s")
            try:
                _, n, errs, nfailed, elapsed = pipe.recv()
            except EOFError:
                raise BenchError("a load-generator process died") from None
            opened += n
            failures += errs
            failed += nfailed
            slowest = max(slowest, elapsed)
        if failed:
            raise BenchError(f"{failed} {self.what} failed, e.g. {failures}")
        return opened, slowest

    def close(self) -> list[Any]:
        """Close every connection; what their closers returned (None left out)."""
        results: list[Any] = []
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(CLOSE_TIMEOUT + 10):
                    results += pipe.recv()[1]
            pipe.close()
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
        return results


Sample = tuple[str, dict[str, int], int]  # label, the server's memory (KiB), its open fds


@dataclass
class Rounds:
    samples: list[Sample]  # "before", then "N open (round r)" and "all closed (round r)"
    opened: int  # connections held in each round
    seconds: float  # round 1: to open them all (the slowest load generator)
    cpu: float  # round 1: the server's CPU time meanwhile
    workers: int  # load-generator processes

    def per_connection(self) -> dict[str, float]:
        """(round 1 with all open - before) / connections, in KiB, by memory field."""
        before, first = self.samples[0][1], self.samples[1][1]
        return {k: (first[k] - before[k]) / self.opened for k in ("Rss", "Pss", "Anonymous")}


def measure_rounds(
    server: Target, phase: str, count: int, rounds: int, fleet: Callable[[], Fleet]
) -> Rounds:
    """The server's memory before, then for each round with `count` connections of a new
    `fleet()` open and after they are closed. Warm the server up first."""
    samples: list[Sample] = [("before", server.memory_kib(), server.open_fds())]
    opened = workers = 0
    seconds = cpu = 0.0
    for r in range(1, rounds + 1):
        progress(f"{phase}: round {r}: opening {count} connections")
        cpu0 = server.cpu_seconds()
        held = fleet()
        workers = held.workers
        try:
            opened, open_seconds = held.wait_open()
            if r == 1:
                seconds, cpu = open_seconds, server.cpu_seconds() - cpu0
            time.sleep(2.0)  # let the server finish whatever the last connections started
            samples.append((f"{opened} open (round {r})", server.memory_kib(), server.open_fds()))
        finally:
            held.close()
        time.sleep(2.0)
        samples.append((f"all closed (round {r})", server.memory_kib(), server.open_fds()))
    return Rounds(samples, opened, seconds, cpu, workers)


def memory_rows(
    section: Section, run: Rounds, budget_kib: float | None, *, rate: str, setup: str
) -> str:
    """The rows every connection-memory section has; the verdict ("OK" or "OVER") on the
    anonymous memory per connection ("" without a budget). `rate`: what the connections per
    second are ("handshakes+logins"), `setup`: what setting one up is ("TLS handshake, LOGIN,
    ...")."""
    opened, seconds, cpu = run.opened, run.seconds, run.cpu
    section.add(
        "time to open all (round 1)",
        f"{seconds:.1f}",
        f"s  ({opened / seconds:.0f} {rate}/s, {run.workers} client process(es))",
    )
    section.add(
        "server CPU per connection set-up",
        f"{cpu / opened * 1000:.2f}",
        f"ms  ({setup}); {cpu_note(cpu, seconds)}",
    )
    for label, mem, fds in run.samples:
        section.add(
            f"server {label}",
            f"{mem['Rss']} / {mem['Pss']} / {mem['Anonymous']}",
            f"KiB RSS / PSS / anonymous; {fds} fds",
        )
    # The budget is judged on anonymous memory: it is what sessions allocate. PSS also moves
    # with file-backed pages shared with other processes (the load generators run the same
    # Python and libraries), by a few MB either way, which is noise at a few KiB per session.
    per = run.per_connection()
    verdict = ""
    note = "KiB  (private heap)"
    if budget_kib is not None:
        verdict = "OK" if per["Anonymous"] <= budget_kib else "OVER"
        note = f"KiB  (private heap; budget {budget_kib:.0f}: {verdict})"
    section.add("RSS per connection", f"{per['Rss']:.1f}", "KiB")
    section.add("PSS per connection", f"{per['Pss']:.1f}", "KiB")
    section.add("anonymous memory per connection", f"{per['Anonymous']:.1f}", note)
    opens = [mem["Anonymous"] for label, mem, _ in run.samples if " open " in label]
    if len(opens) > 1:
        # Slope of the "open" samples, round over round: what each connection leaves behind.
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
    return verdict
