"""Phase `ws_event`: from the SMTP 250 after DATA to the `message.received` event a client
subscribed to the websocket stream at /v0 gets; the stream's twin of `idle`."""

from __future__ import annotations

import contextlib
import gc
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from clients import smtp_client
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from messages import submission_message
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress
from websockets.sync.client import ClientConnection, connect

EVENT_TIMEOUT = 10.0
EVENT_TYPES = ["message.received"]
SUBJECT = "ws event"  # submission_message's subject: "ws event <n>"


def ws_url(port: int) -> str:
    return f"ws://{HOST}:{port}/v0"


def subscribe_message() -> str:
    return json.dumps({"type": "subscribe", "event_types": EVENT_TYPES})


def subscribed(text: str | bytes) -> None:
    """Raise unless `text` is the server's answer to `subscribe_message`."""
    try:
        reply = json.loads(text)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or reply.get("type") != "subscribed":
        raise BenchError(f"subscribe answered {text!r}")


class EventWatcher(threading.Thread):
    """Owns one websocket subscribed to the stream; timestamps every event as it arrives."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(name="ws-watcher", daemon=True)
        self.ws = ws
        self.events: queue.Queue[tuple[str | None, float]] = queue.Queue()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.others: list[Any] = []  # anything but a message.received event with a subject

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    text = self.ws.recv(timeout=0.2)  # poll for `stopping`
                except TimeoutError:
                    continue
                arrived = time.perf_counter()
                event = json.loads(text)
                subject = None
                if event.get("type") == "event" and event.get("event_type") in EVENT_TYPES:
                    subject = (event.get("message") or {}).get("subject")
                if not isinstance(subject, str):
                    self.others.append(event)
                    continue
                self.events.put((subject, arrived))
        except BaseException as exc:
            self.error = exc
            self.events.put((None, 0.0))

    def wait_event(self, subject: str, seen: Counter[str]) -> float:
        """When the event of the message with `subject` arrived (perf_counter at the client);
        every event's subject counted in `seen` on the way."""
        while True:
            try:
                got, arrived = self.events.get(timeout=EVENT_TIMEOUT)
            except queue.Empty:
                raise BenchError(
                    f"no event for {subject!r} within {EVENT_TIMEOUT:.0f} s of its 250"
                ) from None
            if got is None:
                raise BenchError(f"the websocket failed: {self.error!r}")
            seen[got] += 1
            if got == subject:
                return arrived


@contextlib.contextmanager
def watching(server: Target, account: Account) -> Iterator[EventWatcher]:
    """A websocket client subscribed to the account's message.received events, as the SDK's
    `client.websockets.connect()` does it (the key as Bearer token): its watcher thread."""
    ws = connect(
        ws_url(server.ports["api"]),
        additional_headers={"Authorization": f"Bearer {account.key}"},
        proxy=None,
        open_timeout=SOCKET_TIMEOUT,
    )
    thread: EventWatcher | None = None
    try:
        ws.send(subscribe_message())
        subscribed(ws.recv(timeout=SOCKET_TIMEOUT))
        thread = EventWatcher(ws)
        thread.start()
        yield thread
    finally:
        if thread is not None:
            thread.stopping.set()
            thread.join(30)
        ws.close()
    if thread is not None and thread.error is not None:
        raise BenchError(f"the websocket failed: {thread.error!r}")


WS_EVENT_LABEL = "SMTP 250 -> websocket event p50/p95/p99/max"


def bench_ws_event(
    server: Target,
    sender: Account,
    watcher: Account,
    count: int,
    summary: Summary,
    postgres: bool = False,
) -> Section:
    progress(f"ws_event: {count} messages, one at a time, to a websocket subscriber")
    latencies: list[float] = []
    submits: list[float] = []
    seen: Counter[str] = Counter()
    subjects = [f"{SUBJECT} {8 * 10**6 + i}" for i in range(count)]
    with watching(server, watcher) as thread:
        smtp = smtp_client(server.ports["submissions"], sender)
        try:
            gc.collect()
            pg0 = postgres_cpu_seconds() if postgres else None
            with cpu_meter(server) as meter:
                for i, subject in enumerate(subjects):
                    data = submission_message(
                        sender.address, watcher.address, 8 * 10**6 + i, subject=SUBJECT
                    )
                    t0 = time.perf_counter()
                    smtp.sendmail(sender.address, [watcher.address], data)
                    t250 = time.perf_counter()
                    latencies.append(thread.wait_event(subject, seen) - t250)
                    submits.append(t250 - t0)
                cpu, wall = meter()
            pg1 = postgres_cpu_seconds() if pg0 is not None else None
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
        # Whatever else the stream sent meanwhile (a late duplicate, say) arrives within this.
        time.sleep(0.5)
        while True:
            try:
                got, _ = thread.events.get_nowait()
            except queue.Empty:
                break
            if got is not None:
                seen[got] += 1
        others = thread.others
    extra = {s: n for s, n in seen.items() if n != 1 or s not in subjects}
    if extra or others:
        raise BenchError(
            f"events not once each: {dict(list(extra.items())[:3])}, other messages "
            f"{[json.dumps(o)[:80] for o in others[:3]]}"
        )

    section = Section(
        f"Delivery to a websocket: {count} messages submitted one at a time (port 465), time "
        "from the 250 after DATA to the message.received event at a client subscribed to /v0"
    )
    for p in (50, 95, 99):
        section.add(f"250 -> event p{p}", ms(percentile(latencies, p)), "ms")
    section.add("250 -> event max", ms(max(latencies)), "ms")
    section.add("250 -> event min", ms(min(latencies)), "ms")
    section.add("events received", f"{len(seen)}", "each message's once, nothing else")
    section.add("submit latency p50 (one client)", ms(percentile(submits, 50)), "ms")
    whole = [a + b for a, b in zip(submits, latencies, strict=True)]
    section.add("MAIL FROM -> event p50", ms(percentile(whole, 50)), "ms  (the whole way)")
    section.add("server CPU", f"{cpu / count * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    pg_row(section, pg0, pg1, count, wall)
    summary.add(
        WS_EVENT_LABEL,
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {max(latencies) * 1000:.1f} ms",
        "a few ms, as IDLE",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_ws_event(
        bench.servers[0],
        bench.senders[0],
        bench.watcher,
        bench.counts.idle_messages,
        bench.summary,
        bench.postgres,
    )


PHASE = Phase("ws_event", _run, lambda counts, nodes: [WS_EVENT_LABEL])
