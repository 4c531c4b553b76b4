"""Phase `api_memory`: the memory the HTTP API adds to the server: its first request, and each
open keep-alive HTTP connection.

The API cannot be turned off ([api] has a port, not a switch), so its cost is read from a fresh
server before and after the first API request, and per connection with many held open."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from clients import NO_RETRIES, api_client
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from messages import api_text
from phase import Bench, Phase
from report import Section, Summary, progress

WARM_UP = 20  # sends and lists after the first request, then CONCURRENCY requests at once
CONCURRENCY = 50  # connections being opened, or requests in flight, at once
CLOSE_TIMEOUT = 30.0  # for the server to close the idle keep-alive connections
MiB = 1024  # in KiB


def api_memory_labels() -> list[str]:
    return [
        "API: server RSS growth, first request / warmed",
        "Memory per keep-alive HTTP conn (anon / PSS / RSS)",
    ]


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> None:
    """One request on a keep-alive connection; its response read whole (it must be a 200)."""
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise BenchError(f"GET /v0/auth/me answered {status!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connections(
    server: Target, account: Account, count: int
) -> AsyncIterator[list[Connection]]:
    """`count` plain-HTTP connections to the API, each once its one request (GET /v0/auth/me)
    is answered; closed on leaving."""
    port = server.ports["api"]
    req = (
        f"GET /v0/auth/me HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {account.key}\r\n\r\n"
    ).encode()
    gate = asyncio.Semaphore(CONCURRENCY)
    conns: list[Connection] = []

    async def connect() -> None:
        async with gate:
            conns.append(await asyncio.open_connection(HOST, port))

    async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with gate:
            await _request(reader, writer, req)

    try:
        async with asyncio.timeout(SOCKET_TIMEOUT * 5):
            await asyncio.gather(*(connect() for _ in range(count)))
            # The requests go once every connection is open: uvicorn closes a connection idle
            # for its keep-alive timeout (5 s) after a response, so they must all be held
            # when the memory is read.
            await asyncio.gather(*(ask(r, w) for r, w in conns))
        yield conns
    finally:
        for _, writer in conns:
            writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)


async def burst(server: Target, account: Account) -> None:
    """As many requests at once as `hold` makes, so the server's database pool has grown to
    what they need before the baseline is read."""
    async with connections(server, account, CONCURRENCY):
        pass


@dataclass
class KeepAlive:
    held: dict[str, int]  # the server's memory (KiB) with every connection open
    held_fds: int
    seconds: float  # to open them all and have every request answered
    closed: float  # from the last response until the server had closed them all
    after: dict[str, int]  # its memory once they are closed
    after_fds: int


async def hold(server: Target, account: Account, count: int) -> KeepAlive:
    """Hold `count` keep-alive connections, each after one request, until the server closes
    them."""
    fds0 = server.open_fds()
    t0 = time.perf_counter()
    async with connections(server, account, count) as conns:
        answered = time.perf_counter()
        held, held_fds = server.memory_kib(), server.open_fds()
        if held_fds < fds0 + count:
            raise BenchError(
                f"{count} connections answered but the server holds {held_fds - fds0} more fds: "
                "answering them all took longer than the keep-alive timeout; use fewer "
                "(--api-connections)"
            )
        try:  # each read ends when the server closes that connection
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*(r.read() for r, _ in conns))
        except TimeoutError:
            raise BenchError(
                f"the server held idle keep-alive connections over {CLOSE_TIMEOUT:.0f} s"
            ) from None
        closed = time.perf_counter() - answered
        await asyncio.sleep(1.0)
        return KeepAlive(
            held, held_fds, answered - t0, closed, server.memory_kib(), server.open_fds()
        )


def _mib(mem: dict[str, int]) -> str:
    return f"{mem['Rss'] / MiB:.1f} / {mem['Pss'] / MiB:.1f} / {mem['Anonymous'] / MiB:.1f}"


def bench_api_memory(server: Target, account: Account, count: int, summary: Summary) -> Section:
    progress("api_memory: the first API request, a warm-up, then keep-alive connections")
    time.sleep(1.0)
    samples = [("started, no API request yet", server.memory_kib(), server.open_fds())]
    with api_client(server.ports["api"], account) as api:
        api.inboxes.messages.list(account.address, limit=100, request_options=NO_RETRIES)
        samples.append(("after the first request (list)", server.memory_kib(), server.open_fds()))
        for i in range(WARM_UP):
            api.inboxes.messages.send(
                account.address,
                to=[account.address],
                subject=f"api memory {i}",
                text=api_text(i),
                request_options=NO_RETRIES,
            )
            api.inboxes.messages.list(account.address, limit=100, request_options=NO_RETRIES)
    asyncio.run(burst(server, account))
    time.sleep(1.0)
    samples.append(
        (
            f"after {WARM_UP} sends, {WARM_UP} lists, {CONCURRENCY} at once",
            server.memory_kib(),
            server.open_fds(),
        )
    )
    progress(f"api_memory: {count} keep-alive connections, one request each")
    kept = asyncio.run(hold(server, account, count))
    samples.append((f"{count} keep-alive connections open", kept.held, kept.held_fds))
    samples.append(("after the server closed them", kept.after, kept.after_fds))

    start, first, warm = samples[0][1], samples[1][1], samples[2][1]
    per = {k: (kept.held[k] - warm[k]) / count for k in ("Rss", "Pss", "Anonymous")}
    section = Section(
        "HTTP API memory: a fresh server before and after its first API request and a "
        f"warm-up, then {count} plain-HTTP keep-alive connections, each after one "
        "GET /v0/auth/me"
    )
    for label, mem, fds in samples:
        section.add(f"server {label}", _mib(mem), f"MiB RSS / PSS / anonymous; {fds} fds")
    section.add(
        "first request added",
        f"{(first['Rss'] - start['Rss']) / MiB:.1f}",
        f"MiB RSS ({(first['Anonymous'] - start['Anonymous']) / MiB:.1f} anonymous)",
    )
    section.add(
        "warm-up added",
        f"{(warm['Rss'] - first['Rss']) / MiB:.1f}",
        f"MiB RSS ({(warm['Anonymous'] - first['Anonymous']) / MiB:.1f} anonymous)",
    )
    section.add(
        "time to open all and answer",
        f"{kept.seconds:.2f}",
        f"s  ({count / kept.seconds:.0f} connections+requests/s, {CONCURRENCY} at once)",
    )
    section.add("RSS per connection", f"{per['Rss']:.1f}", "KiB")
    section.add("PSS per connection", f"{per['Pss']:.1f}", "KiB")
    section.add("anonymous memory per connection", f"{per['Anonymous']:.1f}", "KiB")
    section.add(
        "server closed the idle connections",
        f"{kept.closed:.1f}",
        "s after the last response (uvicorn's keep-alive timeout)",
    )
    labels = api_memory_labels()
    summary.add(
        labels[0],
        f"{(first['Rss'] - start['Rss']) / MiB:.1f} / {(warm['Rss'] - start['Rss']) / MiB:.1f} MiB",
    )
    summary.add(labels[1], f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB")
    return section


def _run(bench: Bench) -> Section:
    # A fresh process also means one that has served no API request yet.
    server = bench.fresh_server("api_memory")
    return bench_api_memory(server, bench.agent, bench.counts.api_connections, bench.summary)


PHASE = Phase("api_memory", _run, lambda counts, nodes: api_memory_labels())
