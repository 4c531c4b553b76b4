"""Phase `mcp_call`: MCP tool calls over streamable HTTP (/mcp) with the official `mcp` SDK:
`send_message` and `list_threads`, one client at a time in each protocol era, then calls/s with
several clients at once; the same two requests over the REST API with the `agentmail` SDK
beside them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from api_send import inbox_total
from clients import NO_RETRIES, api_client, mcp_client
from common import Account, BenchError, Target
from messages import api_text
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress

WARM_UP = 5  # calls of each tool on each client before its clock starts
MIN_PER_CLIENT = 5  # calls of each tool by each of several clients at once, at least
THREADS = 10  # what list_threads lists when not told (an agent's call names the inbox alone)
ERAS = {"auto": "2026-07-28", "legacy": "handshake"}  # the client's mode: what it speaks


def mcp_call_labels(clients: int) -> list[str]:
    return [
        "MCP list_threads p50 / p99 (2026-07-28; handshake)",
        "MCP send_message p50 / p99 (2026-07-28; handshake)",
        f"MCP calls/s, {clients} clients (list_threads; send)",
    ]


def checked(result: Any, tool: str, key: str) -> dict[str, Any]:
    """A tool's structured result, once it is known to have succeeded and to hold `key`."""
    if result.is_error or not isinstance(result.structured_content, dict):
        text = getattr(result.content[0], "text", "") if result.content else "no content"
        raise BenchError(f"{tool} failed: {text[:200]}")
    found: dict[str, Any] = result.structured_content
    if key not in found:
        raise BenchError(f"{tool} answered without {key!r}: {str(found)[:200]}")
    return found


def send_arguments(sender: Account, recipient: Account, n: int) -> dict[str, Any]:
    """send_message's arguments: the ~1.8 KiB text of `api_send`, so the two compare."""
    return {
        "inbox_id": sender.address,
        "to": [recipient.address],
        "subject": f"mcp call {n}",
        "text": api_text(n),
    }


@dataclass
class Tools:
    """What one client's calls took, in seconds, and the server's CPU meanwhile."""

    sends: list[float]
    lists: list[float]
    send_cpu: float = 0.0
    list_cpu: float = 0.0
    listed: int = 0  # threads in the smallest list_threads answer


async def _timed(count: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    latencies = []
    for i in range(count):
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    return latencies


class Caller:
    """One MCP client's tool calls, each checked: send_message from `sender` to `recipient`,
    and list_threads of `sender`'s own inbox (an inbox key sees its own inbox alone). The
    arguments of its sends are made before the clock starts."""

    def __init__(
        self, client: Any, sender: Account, recipient: Account, base: int, sends: int
    ) -> None:
        self.client = client
        self.sender = sender
        self.arguments = [send_arguments(sender, recipient, base + j) for j in range(sends)]
        self.listed: list[int] = []

    async def send(self, j: int) -> None:
        result = await self.client.call_tool("send_message", self.arguments[j])
        checked(result, "send_message", "message_id")

    async def list(self, _: int = 0) -> None:
        result = await self.client.call_tool("list_threads", {"inbox_id": self.sender.address})
        self.listed.append(len(checked(result, "list_threads", "threads")["threads"]))


async def one_client(
    server: Target, mode: str, sender: Account, recipient: Account, count: int, base: int
) -> tuple[float, Tools]:
    """One client in `mode`: (seconds to connect, what its calls took). `count` sends from
    `sender` to `recipient`, then (another client, with the recipient's key) `count` lists of
    the recipient's inbox, each call once the previous one's result is in; after WARM_UP
    untimed calls of each."""
    port = server.ports["api"]
    t0 = time.perf_counter()
    async with mcp_client(port, sender, mode) as client:
        connect = time.perf_counter() - t0
        calls = Caller(client, sender, recipient, base, WARM_UP + count)
        for j in range(WARM_UP):
            await calls.send(j)
        gc.collect()
        cpu0 = server.cpu_seconds()
        sends = await _timed(count, lambda j: calls.send(WARM_UP + j))
        send_cpu = server.cpu_seconds() - cpu0
    async with mcp_client(port, recipient, mode) as client:
        calls = Caller(client, recipient, sender, base, 0)
        for _ in range(WARM_UP):
            await calls.list()
        calls.listed.clear()
        gc.collect()
        cpu0 = server.cpu_seconds()
        lists = await _timed(count, calls.list)
        list_cpu = server.cpu_seconds() - cpu0
    return connect, Tools(sends, lists, send_cpu, list_cpu, min(calls.listed))


@dataclass
class Burst:
    """`clients` at once: every call's latency, the wall time, the server's and our CPU."""

    latencies: list[float]
    wall: float
    cpu: float
    client_cpu: float
    pg: tuple[float | None, float | None] = (None, None)  # PostgreSQL CPU, before and after


async def many_clients(
    server: Target, senders: list[Account], count: int, postgres: bool
) -> tuple[Burst, Burst, int]:
    """len(senders) clients (2026-07-28) at once, all connected (and list_threads called
    WARM_UP times each) before the clock starts: `count` send_message each (client i to client
    i+1), then `count` list_threads each, of its own inbox. Also the fewest threads listed."""
    port = server.ports["api"]
    n = len(senders)
    async with contextlib.AsyncExitStack() as stack:
        callers = []
        for i, sender in enumerate(senders):
            client = await stack.enter_async_context(mcp_client(port, sender))
            callers.append(
                Caller(client, sender, senders[(i + 1) % n], 5 * 10**6 + i * 10**4, count)
            )
        await asyncio.gather(*(c.list() for c in callers for _ in range(WARM_UP)))

        async def burst(work: Callable[[Caller], Awaitable[list[float]]]) -> Burst:
            gc.collect()
            pg0 = postgres_cpu_seconds() if postgres else None
            with cpu_meter(server) as meter:
                client0 = time.process_time()
                per = await asyncio.gather(*(work(c) for c in callers))
                client_cpu = time.process_time() - client0
                cpu, wall = meter()
            pg1 = postgres_cpu_seconds() if pg0 is not None else None
            return Burst([x for xs in per for x in xs], wall, cpu, client_cpu, (pg0, pg1))

        sends = await burst(lambda c: _timed(count, c.send))
        for c in callers:
            c.listed.clear()
        lists = await burst(lambda c: _timed(count, c.list))
        fewest = min(x for c in callers for x in c.listed)
    return sends, lists, fewest


def rest_client(
    server: Target, sender: Account, recipient: Account, count: int, base: int
) -> Tools:
    """The same calls over the REST API with the agentmail SDK (one keep-alive connection per
    key): `messages.send`, and `threads.list` with list_threads's page size."""
    port = server.ports["api"]
    texts = [api_text(base + j) for j in range(WARM_UP + count)]
    listed: list[int] = []
    with api_client(port, sender) as api, api_client(port, recipient) as reader:

        def send(j: int) -> None:
            api.inboxes.messages.send(
                sender.address,
                to=[recipient.address],
                subject=f"mcp call {base + j}",
                text=texts[j],
                request_options=NO_RETRIES,
            )

        def list_(_: int) -> None:
            page = reader.inboxes.threads.list(
                recipient.address, limit=THREADS, request_options=NO_RETRIES
            )
            listed.append(len(page.threads))

        def timed(call: Callable[[int], None]) -> tuple[list[float], float]:
            gc.collect()
            cpu0 = server.cpu_seconds()
            latencies = []
            for j in range(WARM_UP, WARM_UP + count):
                t0 = time.perf_counter()
                call(j)
                latencies.append(time.perf_counter() - t0)
            return latencies, server.cpu_seconds() - cpu0

        for j in range(WARM_UP):
            send(j)
            list_(j)
        sends, send_cpu = timed(send)
        listed.clear()
        lists, list_cpu = timed(list_)
    return Tools(sends, lists, send_cpu, list_cpu, min(listed))


def _latencies(values: list[float]) -> str:
    return " / ".join(ms(percentile(values, p)) for p in (50, 95, 99)) + f" / {ms(max(values))}"


def _p50_p99(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:.1f} / {percentile(values, 99) * 1000:.1f}"


def bench_mcp_call(
    server: Target,
    senders: list[Account],
    count: int,
    summary: Summary,
    postgres: bool,
) -> Section:
    clients = len(senders)
    if clients < 2:
        raise BenchError("mcp_call needs 2 clients or more")
    # As many calls of each tool in all as one client makes, at least MIN_PER_CLIENT each.
    per_client = max(MIN_PER_CLIENT, count // clients)
    sender, recipient = senders[0], senders[1]
    before = inbox_total(server, senders)
    sent = 0
    eras: dict[str, tuple[float, Tools]] = {}
    for k, (mode, era) in enumerate(ERAS.items()):
        progress(f"mcp_call: one client ({era}), {count} send_message, {count} list_threads")
        eras[mode] = asyncio.run(
            one_client(server, mode, sender, recipient, count, (k + 1) * 10**6)
        )
        sent += WARM_UP + count
    progress("mcp_call: the same over the REST API (agentmail SDK)")
    rest = rest_client(server, sender, recipient, count, 3 * 10**6)
    sent += WARM_UP + count
    progress(
        f"mcp_call: {clients} clients at once, {per_client} send_message and list_threads each"
    )
    sends, lists, fewest = asyncio.run(many_clients(server, senders, per_client, postgres))
    sent += clients * per_client
    delivered = inbox_total(server, senders) - before

    section = Section(
        f"MCP tool calls: the official mcp SDK over streamable HTTP (/mcp, plain HTTP, inbox "
        f"keys as Bearer); one client, {count} send_message (~1.8 KiB text, to another local "
        f"inbox), then {count} list_threads (the recipient's inbox, {THREADS} threads a page), "
        f"one call at a time, in each protocol era, and the REST API's twins with the agentmail "
        f"SDK; then {clients} clients at once"
    )
    runs = [(era, eras[mode][1]) for mode, era in ERAS.items()] + [("REST", rest)]
    for era, tools in runs:
        send_name, list_name = (
            ("messages.send", "threads.list")
            if era == "REST"
            else (
                "send_message",
                "list_threads",
            )
        )
        section.add(f"{era}: {send_name} p50/p95/p99/max", _latencies(tools.sends), "ms")
        section.add(f"{era}: {list_name} p50/p95/p99/max", _latencies(tools.lists), "ms")
        section.add(
            f"{era}: server CPU, send / list",
            f"{tools.send_cpu / count * 1000:.2f} / {tools.list_cpu / count * 1000:.2f}",
            "ms/call",
        )
    for mode, era in ERAS.items():
        section.add(f"{era}: connect", ms(eras[mode][0]), "ms  (server/discover; initialize)")
    section.add("threads listed", str(min(t.listed for _, t in runs)), "(the fewest in any answer)")
    for name, burst in (("send_message", sends), ("list_threads", lists)):
        calls = len(burst.latencies)
        section.add(
            f"{clients} clients: {name}",
            f"{calls / burst.wall:.1f}",
            f"calls/s  ({calls} in {burst.wall:.2f} s, 2026-07-28)",
        )
        section.add(
            "  latency p50/p95/p99/max", _latencies(burst.latencies), "ms  (mostly queueing)"
        )
        section.add(
            "  server CPU",
            f"{burst.cpu / calls * 1000:.2f}",
            f"ms/call; {cpu_note(burst.cpu, burst.wall)}",
        )
        section.add(
            "  client CPU",
            f"{burst.client_cpu / calls * 1000:.2f}",
            f"ms/call; {cpu_note(burst.client_cpu, burst.wall)}  (the mcp SDK, one event loop)",
        )
        pg_row(section, *burst.pg, calls, burst.wall, "  PostgreSQL CPU")
    section.add("  threads listed", str(fewest), "(the fewest in any answer)")
    check = "OK" if delivered == sent else "MISSING MESSAGES"
    section.add("messages in recipients' INBOX", str(delivered), f"(STATUS; {sent} sent; {check})")
    labels = mcp_call_labels(clients)
    auto, legacy = eras["auto"][1], eras["legacy"][1]
    summary.add(
        labels[0],
        f"{_p50_p99(auto.lists)}; {_p50_p99(legacy.lists)} ms",
        f"REST threads.list {_p50_p99(rest.lists)} ms",
    )
    summary.add(
        labels[1],
        f"{_p50_p99(auto.sends)}; {_p50_p99(legacy.sends)} ms",
        f"REST messages.send {_p50_p99(rest.sends)} ms",
    )
    summary.add(
        labels[2],
        f"{len(lists.latencies) / lists.wall:.0f}; {len(sends.latencies) / sends.wall:.0f}",
        "calls/s",
    )
    if delivered != sent:
        raise BenchError(f"{sent} messages sent but {delivered} in the INBOXes")
    return section


def _run(bench: Bench) -> Section:
    return bench_mcp_call(
        bench.servers[0],
        bench.senders,
        bench.counts.idle_messages,
        bench.summary,
        bench.postgres,
    )


PHASE = Phase("mcp_call", _run, lambda counts, nodes: mcp_call_labels(counts.clients))
