"""Phase `mcp_memory`: server memory per open MCP session at /mcp: a handshake-era session
(initialize) with its standalone GET stream open and one resource subscription, the realistic
idle subscriber, held by the official `mcp` SDK's client."""

from __future__ import annotations

import asyncio
import contextlib
import warnings

from clients import mcp_client
from common import SOCKET_TIMEOUT, Account, Target
from fleet import CONCURRENCY, MAX_WORKERS, Close, Fleet, Open, measure_rounds, memory_rows
from mcp_notify import resource_uri
from phase import Bench, Phase
from report import Section, Summary, progress

WARM_UP = CONCURRENCY * MAX_WORKERS  # sessions opened at once, twice, before the baseline
# Sessions one key may hold at once ([api] mcp_sessions_per_key, 100 by default): the phase
# opens them all with one inbox's key.
SESSIONS_PER_KEY = 10_000
MiB = 1024  # in KiB


def mcp_opener(port: int, account: Account) -> Open:
    """In a load generator: what opens one MCP session (the initialize handshake) with the
    account's key, subscribes it to the account's inbox resource and holds it, its GET stream
    open, until closed (DELETE). The SDK's client must be left in the task that entered it, so
    each session lives in a task of its own."""
    uri = resource_uri(account)

    async def one() -> Close:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        closing = asyncio.Event()

        async def hold() -> None:
            try:
                async with mcp_client(port, account, "legacy") as client:
                    with warnings.catch_warnings():  # deprecated as of 2026-07-28
                        warnings.simplefilter("ignore")
                        await client.subscribe_resource(uri)
                    opened.set_result(None)
                    await closing.wait()
            except BaseException as exc:
                if not opened.done():
                    opened.set_exception(exc)
                raise

        task = asyncio.create_task(hold())
        async with asyncio.timeout(SOCKET_TIMEOUT):
            await opened

        async def close() -> None:
            closing.set()
            with contextlib.suppress(Exception):
                await task

        return close

    return one


async def _warm_up(port: int, account: Account) -> None:
    """WARM_UP sessions opened and subscribed at once, then closed, twice: the server's code
    paths, caches and database pool as they will be."""
    for _ in range(2):
        open_one = mcp_opener(port, account)
        closers = await asyncio.gather(*(open_one() for _ in range(WARM_UP)))
        await asyncio.gather(*(close() for close in closers))


def mcp_memory_labels() -> list[str]:
    return ["Memory per MCP session (anon / PSS / RSS)"]


def bench_mcp_memory(
    server: Target, account: Account, count: int, rounds: int, summary: Summary
) -> Section:
    port = server.ports["api"]
    progress(f"mcp_memory: warm-up, then {rounds} x {count} subscribed MCP sessions")
    asyncio.run(_warm_up(port, account))
    run = measure_rounds(
        server,
        "mcp_memory",
        count,
        rounds,
        lambda: Fleet(mcp_opener, (port, account), count, "MCP sessions", "mcp"),
    )
    section = Section(
        f"Memory per MCP session: {run.opened} handshake-era sessions at /mcp (plain HTTP, the "
        "mcp SDK's client, an inbox key), each with its GET stream open and subscribed to the "
        f"inbox's resource; {rounds} round(s) of open-all / close-all (DELETE)"
    )
    memory_rows(
        section,
        run,
        None,
        rate="handshakes+subscriptions",
        setup="initialize, GET stream, resources/subscribe",
    )
    per = run.per_connection()
    section.add(
        "100 sessions",
        f"{per['Anonymous'] * 100 / MiB:.1f} / {per['Pss'] * 100 / MiB:.1f}",
        "MiB anonymous / PSS  (100 x the figures per session)",
    )
    summary.add(
        mcp_memory_labels()[0],
        f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB",
        f"100 sessions: {per['Anonymous'] * 100 / MiB:.1f} MiB anonymous",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_mcp_memory(
        bench.fresh_server("mcp_memory"),
        bench.agent,
        bench.counts.mcp_sessions,
        bench.memory_rounds,
        bench.summary,
    )


PHASE = Phase(
    "mcp_memory",
    _run,
    lambda counts, nodes: mcp_memory_labels(),
    settings={"api.mcp_sessions_per_key": SESSIONS_PER_KEY},
)
