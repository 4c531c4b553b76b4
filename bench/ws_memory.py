"""Phase `ws_memory`: server memory per open websocket on the event stream at /v0 (authenticated
with an inbox key, subscribed to message.received, waiting for events)."""

from __future__ import annotations

import asyncio
import time

from common import SOCKET_TIMEOUT, Account, Target
from events import subscribe_message, subscribed, ws_url
from fleet import CONCURRENCY, MAX_WORKERS, Close, Fleet, Open, measure_rounds, memory_rows
from memory import IDLE_SESSION_BUDGET_KIB
from phase import Bench, Phase
from report import Section, Summary, progress
from websockets.asyncio.client import connect

WARM_UP = CONCURRENCY * MAX_WORKERS  # websockets opened at once, twice, before the baseline


def ws_opener(port: int, account: Account) -> Open:
    """In a load generator: what opens one websocket to /v0 with the account's key as Bearer
    token (the `websockets` client's defaults otherwise, as the SDK's client, permessage-deflate
    offered) and subscribes it to message.received."""
    url = ws_url(port)
    headers = {"Authorization": f"Bearer {account.key}"}
    subscribe = subscribe_message()

    async def one() -> Close:
        ws = await connect(url, additional_headers=headers, proxy=None, open_timeout=SOCKET_TIMEOUT)
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await ws.send(subscribe)
                subscribed(await ws.recv())
        except BaseException:
            await ws.close()
            raise
        return ws.close

    return one


async def _warm_up(port: int, account: Account) -> str:
    """WARM_UP websockets opened and subscribed at once, then closed, twice: the server's code
    paths, caches and database pool as they will be. What extension the server agreed to."""
    for _ in range(2):
        open_one = ws_opener(port, account)
        closers = await asyncio.gather(*(open_one() for _ in range(WARM_UP)))
        await asyncio.gather(*(close() for close in closers))
    # One more, to read what the server answered to the client's offer.
    headers = {"Authorization": f"Bearer {account.key}"}
    async with connect(ws_url(port), additional_headers=headers, proxy=None) as ws:
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions", "")


WS_MEMORY_LABEL = "Memory per websocket (anon / PSS / RSS)"


def bench_ws_memory(
    server: Target, account: Account, count: int, rounds: int, summary: Summary
) -> Section:
    port = server.ports["api"]
    progress(f"ws_memory: warm-up, then {rounds} x {count} subscribed websockets")
    extensions = asyncio.run(_warm_up(port, account))
    time.sleep(1.0)
    run = measure_rounds(
        server,
        "ws_memory",
        count,
        rounds,
        lambda: Fleet(ws_opener, (port, account), count, "websockets", "ws"),
    )
    section = Section(
        f"Memory per open websocket: {run.opened} websockets to /v0 (plain HTTP), each with an "
        f"inbox key, subscribed to message.received; {rounds} round(s) of open-all / close-all"
    )
    section.add(
        "compression",
        "deflate" if "permessage-deflate" in extensions else "none",
        f"the server answered the client's offer (as the SDK's) with: {extensions or 'nothing'}",
    )
    verdict = memory_rows(
        section,
        run,
        IDLE_SESSION_BUDGET_KIB,
        rate="handshakes+subscriptions",
        setup="websocket handshake, key check, subscribe",
    )
    per = run.per_connection()
    summary.add(
        WS_MEMORY_LABEL,
        f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB",
        f"under {IDLE_SESSION_BUDGET_KIB:.0f} KiB (an IDLE session's): {verdict}",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_ws_memory(
        bench.fresh_server("ws_memory"),
        bench.agent,
        bench.counts.ws_connections,
        bench.memory_rounds,
        bench.summary,
    )


PHASE = Phase("ws_memory", _run, lambda counts, nodes: [WS_MEMORY_LABEL])
