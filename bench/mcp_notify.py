"""Phase `mcp_notify`: from the SMTP 250 after DATA to the MCP notification that the recipient's
inbox resource changed (`notifications/resources/updated`), at a client subscribed to it in each
protocol era: `resources/subscribe` on a handshake-era session (told on its GET stream) and
`subscriptions/listen` at 2026-07-28 (told on the listen request's own stream). The MCP twin of
`idle` and `ws_event`; then the `resources/read` an agent sends once told."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from clients import mcp_client, smtp_client
from common import SOCKET_TIMEOUT, Account, BenchError, Target
from mcp.types import ResourceUpdatedNotification
from messages import submission_message
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress

NOTIFY_TIMEOUT = 10.0
WARM_UP_TRIES = 5  # messages sent until the first notification comes, before the clock starts
SUBJECT = "mcp notify"  # submission_message's subject: "mcp notify <n>"
ERAS = {
    "legacy": "session (resources/subscribe)",
    "auto": "2026-07-28 (subscriptions/listen)",
}


def resource_uri(account: Account) -> str:
    return f"mailgate://inboxes/{account.address}"


class Subscriber:
    """An MCP client subscribed to one inbox resource, run on an event loop in a thread of its
    own; every notification for that resource is timestamped (perf_counter) as the SDK hands
    it over: to the message handler (a session) or out of the listen iterator (2026-07-28)."""

    def __init__(self, port: int, account: Account, mode: str) -> None:
        self.port = port
        self.account = account
        self.mode = mode
        self.uri = resource_uri(account)
        self.arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
        self.others: list[str] = []  # anything else the server sent unasked
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-subscriber")
        self.client: Any = None
        self._stop: asyncio.Event | None = None
        self._running: concurrent.futures.Future[None] | None = None

    def _arrived(self, uri: str) -> None:
        self.arrivals.put((uri, time.perf_counter()))

    async def _handler(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self._arrived(str(message.params.uri))
        elif self.mode == "legacy" and not isinstance(message, Exception):
            self.others.append(repr(message)[:120])

    async def _run(self, ready: concurrent.futures.Future[None]) -> None:
        self._stop = asyncio.Event()
        try:
            handler = self._handler if self.mode == "legacy" else None
            async with mcp_client(self.port, self.account, self.mode, handler) as client:
                self.client = client
                if self.mode == "legacy":
                    with warnings.catch_warnings():  # deprecated as of 2026-07-28
                        warnings.simplefilter("ignore")
                        await client.subscribe_resource(self.uri)
                    ready.set_result(None)
                    await self._stop.wait()
                    return
                async with client.listen(resource_subscriptions=[self.uri]) as subscription:
                    if subscription.honored.resource_subscriptions != [self.uri]:
                        raise BenchError(f"listen honoured {subscription.honored!r}")
                    ready.set_result(None)

                    async def consume() -> None:
                        async for event in subscription:
                            uri = getattr(event, "uri", None)
                            if uri is None:
                                self.others.append(repr(event)[:120])
                            else:
                                self._arrived(str(uri))

                    reading = asyncio.create_task(consume())
                    stopping = asyncio.create_task(self._stop.wait())
                    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if reading.done():
                        reading.result()  # the stream failed: say why
                        raise BenchError("the listen stream ended")
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reading
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def start(self) -> None:
        self.thread.start()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._running = asyncio.run_coroutine_threadsafe(self._run(ready), self.loop)
        ready.result(SOCKET_TIMEOUT)

    def read(self) -> list[str]:
        """resources/read of the inbox (past the SDK's cache): its newest threads' subjects."""
        work = self.client.read_resource(self.uri, cache_mode="bypass")
        result = asyncio.run_coroutine_threadsafe(work, self.loop).result(SOCKET_TIMEOUT)
        body = json.loads(result.contents[0].text)
        return [t.get("subject") for t in body["threads"]]

    def wait(self, timeout: float = NOTIFY_TIMEOUT) -> float:
        """When the next notification for the resource arrived (perf_counter)."""
        while True:
            try:
                uri, arrived = self.arrivals.get(timeout=timeout)
            except queue.Empty:
                self._check()
                raise BenchError(f"no notification within {timeout:.0f} s of the 250") from None
            if uri == self.uri:
                return arrived
            self.others.append(f"updated {uri}")

    def drain(self) -> int:
        """Notifications that came unawaited since the last wait."""
        extra = 0
        while True:
            try:
                self.arrivals.get_nowait()
            except queue.Empty:
                return extra
            extra += 1

    def _check(self) -> None:
        if self._running is not None and self._running.done():
            exc = self._running.exception()
            raise BenchError(f"the MCP client failed: {exc!r}")

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        try:
            if self._running is not None:
                self._running.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


@contextlib.contextmanager
def subscribed(server: Target, account: Account, mode: str) -> Iterator[Subscriber]:
    subscriber = Subscriber(server.ports["api"], account, mode)
    subscriber.start()
    try:
        yield subscriber
    finally:
        subscriber.stop()


def mcp_notify_labels() -> list[str]:
    return [
        f"SMTP 250 -> MCP notification, {era.split(' ')[0]} p50/p95/p99/max"
        for era in ERAS.values()
    ]


class Era:
    """What one era's part measured."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.submits: list[float] = []
        self.reads: list[float] = []
        self.extra = 0
        self.cpu = self.wall = 0.0
        self.pg: tuple[float | None, float | None] = (None, None)


def one_era(
    server: Target,
    sender: Account,
    watcher: Account,
    mode: str,
    count: int,
    base: int,
    postgres: bool,
) -> Era:
    """`count` messages from `sender` to `watcher` over SMTP, one at a time, each once the
    previous one's notification has come and the resource has been read again."""
    era = Era()
    with subscribed(server, watcher, mode) as sub:
        smtp = smtp_client(server.ports["submissions"], sender)
        try:
            # A session's notifications go out on its GET stream, which the SDK opens after the
            # handshake, perhaps after the subscription: send until one comes.
            for k in range(WARM_UP_TRIES):
                data = submission_message(
                    sender.address, watcher.address, base - 1 - k, subject=SUBJECT
                )
                smtp.sendmail(sender.address, [watcher.address], data)
                try:
                    sub.wait(2.0)
                    break
                except BenchError:
                    if k == WARM_UP_TRIES - 1:
                        raise
            time.sleep(0.5)
            sub.drain()
            gc.collect()
            pg0 = postgres_cpu_seconds() if postgres else None
            with cpu_meter(server) as meter:
                for i in range(count):
                    n = base + i
                    data = submission_message(sender.address, watcher.address, n, subject=SUBJECT)
                    era.extra += sub.drain()
                    t0 = time.perf_counter()
                    smtp.sendmail(sender.address, [watcher.address], data)
                    t250 = time.perf_counter()
                    era.latencies.append(sub.wait() - t250)
                    era.submits.append(t250 - t0)
                    r0 = time.perf_counter()
                    subjects = sub.read()
                    era.reads.append(time.perf_counter() - r0)
                    if f"{SUBJECT} {n}" not in subjects:
                        raise BenchError(f"told, but reading the inbox does not show {SUBJECT} {n}")
                era.cpu, era.wall = meter()
            era.pg = (pg0, postgres_cpu_seconds() if pg0 is not None else None)
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
        time.sleep(0.5)  # whatever else comes meanwhile (a late duplicate, say)
        era.extra += sub.drain()
        if sub.others:
            raise BenchError(f"the server sent other messages: {sub.others[:3]}")
    if era.extra:
        raise BenchError(f"{era.extra} notifications more than messages ({count})")
    return era


def bench_mcp_notify(
    server: Target, sender: Account, watcher: Account, count: int, summary: Summary, postgres: bool
) -> Section:
    eras: dict[str, Era] = {}
    for k, (mode, name) in enumerate(ERAS.items()):
        progress(f"mcp_notify: {count} messages, one at a time, to an MCP subscriber: {name}")
        eras[mode] = one_era(server, sender, watcher, mode, count, (9 + k) * 10**6, postgres)
    section = Section(
        f"Delivery to an MCP subscriber: {count} messages submitted one at a time (port 465) to "
        f"an inbox whose resource a client (the mcp SDK) is subscribed to, time from the 250 "
        "after DATA to notifications/resources/updated; then its resources/read, in each era"
    )
    labels = mcp_notify_labels()
    for (mode, name), label in zip(ERAS.items(), labels, strict=True):
        era = eras[mode]
        short = name.split(" ")[0]
        section.add(f"{name}:", "")
        for p in (50, 95, 99):
            section.add(f"  250 -> notification p{p}", ms(percentile(era.latencies, p)), "ms")
        section.add("  250 -> notification max", ms(max(era.latencies)), "ms")
        section.add("  250 -> notification min", ms(min(era.latencies)), "ms")
        whole = [a + b for a, b in zip(era.submits, era.latencies, strict=True)]
        section.add(
            "  MAIL FROM -> notification p50", ms(percentile(whole, 50)), "ms  (the whole way)"
        )
        section.add("  submit latency p50", ms(percentile(era.submits, 50)), "ms")
        section.add(
            "  resources/read p50 / p99",
            f"{ms(percentile(era.reads, 50))} / {ms(percentile(era.reads, 99))}",
            "ms  (once told: the inbox's 20 newest threads, the new message among them)",
        )
        section.add(
            "  server CPU",
            f"{era.cpu / count * 1000:.2f}",
            f"ms/message, with its read; {cpu_note(era.cpu, era.wall)}",
        )
        pg_row(section, *era.pg, count, era.wall, "  PostgreSQL CPU")
        summary.add(
            label,
            " / ".join(f"{percentile(era.latencies, p) * 1000:.1f}" for p in (50, 95, 99))
            + f" / {max(era.latencies) * 1000:.1f} ms",
            "a few ms, as IDLE" if short == "session" else "",
        )
    section.add("notifications", "one a message", f"{count} each, nothing else")
    return section


def _run(bench: Bench) -> Section:
    return bench_mcp_notify(
        bench.servers[0],
        bench.senders[0],
        bench.watcher,
        bench.counts.idle_messages,
        bench.summary,
        bench.postgres,
    )


PHASE = Phase("mcp_notify", _run, lambda counts, nodes: mcp_notify_labels())
