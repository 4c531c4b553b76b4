"""Phase `webhook`: from the SMTP 250 after DATA to the `message.received` event POSTed to a
webhook, Svix-signed, at a receiver on loopback; then the deliveries per second to 4 endpoints
of a burst of messages submitted by several clients at once. The webhooks' twin of `ws_event`."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentmail import AgentMail
from agentmail.core.api_error import ApiError
from clients import NO_RETRIES, api_client, smtp_client, start_clients
from common import HOST, Account, BenchError, Target
from messages import shares, submission_message
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError

EVENT_TYPES = ["message.received"]
EVENT_TIMEOUT = 10.0  # one message's POST after its 250 (a failed delivery is retried in 5 s)
DRAIN_TIMEOUT = 60.0  # the burst's last POST after its last 250
LATE = 0.5  # seconds to wait for late duplicates once everything expected has arrived
ENDPOINTS = 4  # webhooks of the burst, each its own endpoint on the receiver
LATENCY_SUBJECT = "webhook latency"  # submission_message's subject: "webhook latency <n>"
BURST_SUBJECT = "webhook burst"


@dataclass(frozen=True)
class Delivery:
    path: str  # the endpoint: the webhook's URL path on the receiver
    svix_id: str
    event_id: str | None  # the body's, which must be the svix-id
    event_type: str | None
    subject: str | None  # of the event's message
    arrived: float  # perf_counter once the body was read, before the 200 went back
    peer: int  # the server's port of the connection it came on


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the server's httpx client expects
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            length = 0
        body = self.rfile.read(length)
        arrived = time.perf_counter()
        # 200 at once, then the check: the server is told as soon as it can be.
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.receiver.record(self.path, headers, body, arrived, self.client_address[1])

    def do_GET(self) -> None:
        self.send_error(405)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class Receiver:
    """A threaded HTTP server on loopback, in this process: answers every POST 200 at once,
    verifies its signature with the `svix` library under the secret of the webhook whose path
    it came to, and timestamps it."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}  # path -> the webhook's secret
        self.deliveries: list[Delivery] = []
        self.errors: list[str] = []
        self.changed = threading.Condition()
        self.httpd = _HTTPServer((HOST, 0), _Handler)
        self.httpd.receiver = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="webhook-receiver", daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def record(
        self, path: str, headers: dict[str, str], body: bytes, arrived: float, peer: int
    ) -> None:
        secret = self.secrets.get(path)
        error = None
        event: Any = None
        if secret is None:
            error = f"POST to {path}, no webhook's"
        else:
            try:
                SvixWebhook(secret).verify(body, headers)
                event = json.loads(body)
            except (WebhookVerificationError, ValueError) as exc:
                error = f"POST to {path}: {type(exc).__name__}: {exc}"
        if not isinstance(event, dict):
            event = {}
        message = event.get("message")
        subject = message.get("subject") if isinstance(message, dict) else None
        delivery = Delivery(
            path,
            headers.get("svix-id", ""),
            event.get("event_id"),
            event.get("event_type"),
            subject if isinstance(subject, str) else None,
            arrived,
            peer,
        )
        with self.changed:
            if error is not None:
                self.errors.append(error)
            self.deliveries.append(delivery)
            self.changed.notify_all()

    def wait(self, done: Callable[[list[Delivery]], bool], timeout: float) -> bool:
        """Whether `done(deliveries)` came true within `timeout` (or a signature failed)."""
        with self.changed:
            return self.changed.wait_for(
                lambda: bool(self.errors) or done(self.deliveries), timeout
            )

    def at(self, path: str) -> list[Delivery]:
        with self.changed:
            return [d for d in self.deliveries if d.path == path]

    def check(self) -> None:
        with self.changed:
            if self.errors:
                raise BenchError(f"{len(self.errors)} bad deliveries, e.g. {self.errors[0]}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@contextlib.contextmanager
def webhook(api: AgentMail, inbox: str, receiver: Receiver, path: str) -> Iterator[str]:
    """An inbox webhook made with the SDK, POSTing the inbox's message.received events to
    `path` on the receiver (which learns its secret); deleted on leaving. Yields its id."""
    try:
        made = api.inboxes.webhooks.create(
            inbox, url=receiver.url(path), event_types=EVENT_TYPES, request_options=NO_RETRIES
        )
    except ApiError as exc:
        said = getattr(exc.body, "message", None) or exc.body
        hint = " ([api] allow_private_webhooks = true?)" if exc.status_code == 400 else ""
        raise BenchError(f"creating a webhook: {exc.status_code} {said}{hint}") from None
    if not made.secret.startswith("whsec_"):
        raise BenchError(f"webhook {made.webhook_id}'s secret is {made.secret[:10]!r}...")
    receiver.secrets[path] = made.secret
    try:
        yield made.webhook_id
    finally:
        api.inboxes.webhooks.delete(inbox, made.webhook_id, request_options=NO_RETRIES)


def once_each(deliveries: list[Delivery], subjects: list[str], where: str) -> list[str]:
    """Problems, if the deliveries are not each subject's event once (one svix-id each, the
    body's event_id) and nothing else."""
    problems: list[str] = []
    ids = Counter(d.svix_id for d in deliveries)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        problems.append(f"{where}: {len(twice)} svix-ids more than once, e.g. {twice[0]}")
    wrong = [d for d in deliveries if d.event_id != d.svix_id]
    if wrong:
        problems.append(
            f"{where}: {len(wrong)} bodies whose event_id is not the svix-id, e.g. "
            f"{wrong[0].event_id} / {wrong[0].svix_id}"
        )
    other = [d for d in deliveries if d.event_type not in EVENT_TYPES]
    if other:
        problems.append(f"{where}: {len(other)} events of other types, e.g. {other[0].event_type}")
    got = Counter(d.subject for d in deliveries)
    missing = [s for s in subjects if s not in got]
    doubled = [s for s in subjects if got.get(s, 0) > 1]
    stray = sum(n for s, n in got.items() if s not in set(subjects))
    if missing or doubled or stray:
        problems.append(
            f"{where}: {len(missing)} messages' events missing, {len(doubled)} more than once, "
            f"{stray} of other messages"
        )
    return problems


def latency_label() -> str:
    return "SMTP 250 -> verified webhook POST p50/p95/p99/max"


def rate_label() -> str:
    return f"webhook deliveries/s ({ENDPOINTS} endpoints)"


def measure_latency(
    servers: list[Target],
    api: AgentMail,
    sender: Account,
    watcher: Account,
    receiver: Receiver,
    count: int,
    postgres: bool,
    section: Section,
    summary: Summary,
) -> None:
    """One webhook on the watcher's inbox; `count` messages submitted one at a time, each after
    the previous one's POST; 250 -> POST of each."""
    progress(f"webhook: {count} messages, one at a time, to a webhook on loopback")
    path = "/latency"
    subjects = [f"{LATENCY_SUBJECT} {7 * 10**6 + i}" for i in range(count)]
    latencies: list[float] = []
    submits: list[float] = []
    with webhook(api, watcher.address, receiver, path):
        smtp = smtp_client(servers[0].ports["submissions"], sender)
        try:
            gc.collect()
            pg0 = postgres_cpu_seconds() if postgres else None
            with cpu_meter(*servers) as meter:
                for i, subject in enumerate(subjects):
                    data = submission_message(
                        sender.address, watcher.address, 7 * 10**6 + i, subject=LATENCY_SUBJECT
                    )
                    t0 = time.perf_counter()
                    smtp.sendmail(sender.address, [watcher.address], data)
                    t250 = time.perf_counter()
                    if not receiver.wait(
                        lambda seen, s=subject: any(d.subject == s for d in seen[-4:]),
                        EVENT_TIMEOUT,
                    ):
                        raise BenchError(
                            f"no POST for {subject!r} within {EVENT_TIMEOUT:.0f} s of its 250"
                        )
                    receiver.check()
                    arrived = next(d.arrived for d in receiver.at(path) if d.subject == subject)
                    latencies.append(arrived - t250)
                    submits.append(t250 - t0)
                cpu, wall = meter()
            pg1 = postgres_cpu_seconds() if pg0 is not None else None
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
        time.sleep(LATE)  # a late duplicate arrives within this
    receiver.check()
    got = receiver.at(path)
    problems = once_each(got, subjects, path)
    if problems:
        raise BenchError("; ".join(problems))
    connections = len({d.peer for d in got})

    section.add("one at a time", "", f"{count} messages, one webhook on the watcher's inbox")
    for p in (50, 95, 99):
        section.add(f"  250 -> POST p{p}", ms(percentile(latencies, p)), "ms")
    section.add("  250 -> POST max", ms(max(latencies)), "ms")
    section.add("  250 -> POST min", ms(min(latencies)), "ms")
    section.add("  POSTs received", str(len(got)), "each message's event once, verified")
    section.add(
        "  connections the server opened",
        str(connections),
        f"(to the receiver, for {len(got)} POSTs)",
    )
    section.add("  submit latency p50 (one client)", ms(percentile(submits, 50)), "ms")
    whole = [a + b for a, b in zip(submits, latencies, strict=True)]
    section.add("  MAIL FROM -> POST p50", ms(percentile(whole, 50)), "ms  (the whole way)")
    section.add("  server CPU", f"{cpu / count * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    pg_row(section, pg0, pg1, count, wall, "  PostgreSQL CPU")
    summary.add(
        latency_label(),
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {max(latencies) * 1000:.1f} ms",
        "a few ms, as IDLE",
    )


def measure_burst(
    servers: list[Target],
    api: AgentMail,
    senders: list[Account],
    watcher: Account,
    receiver: Receiver,
    total: int,
    postgres: bool,
    section: Section,
    summary: Summary,
) -> None:
    """ENDPOINTS webhooks on the watcher's inbox; `total` messages submitted to it by the
    senders at once; every event POSTed to every endpoint, once."""
    clients = len(senders)
    numbers = shares(total, clients)
    subjects = [f"{BURST_SUBJECT} {n}" for per in numbers for n in per]
    messages = [
        [submission_message(s.address, watcher.address, n, subject=BURST_SUBJECT) for n in per]
        for s, per in zip(senders, numbers, strict=True)
    ]
    paths = [f"/burst/{k + 1}" for k in range(ENDPOINTS)]
    expected = ENDPOINTS * total
    barrier = threading.Barrier(clients + 1, timeout=120)
    accepted: dict[str, float] = {}  # subject -> its 250
    errors: list[str] = []

    def client(i: int) -> None:
        sender = senders[i]
        smtp = None
        try:
            smtp = smtp_client(servers[0].ports["submissions"], sender)
            barrier.wait()
            for n, data in zip(numbers[i], messages[i], strict=True):
                smtp.sendmail(sender.address, [watcher.address], data)
                accepted[f"{BURST_SUBJECT} {n}"] = time.perf_counter()
        except Exception as exc:
            errors.append(f"client {i}: {exc!r}")
            barrier.abort()
        finally:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.quit()

    def all_in(seen: list[Delivery]) -> bool:
        return sum(1 for d in seen if d.path.startswith("/burst/")) >= expected

    progress(
        f"webhook: {clients} SMTP clients x {total // clients} messages at once, "
        f"{ENDPOINTS} webhooks"
    )
    with contextlib.ExitStack() as hooks:
        for path in paths:
            hooks.enter_context(webhook(api, watcher.address, receiver, path))
        threads = start_clients(client, clients, barrier)
        pg0 = postgres_cpu_seconds() if postgres else None
        with cpu_meter(*servers) as meter:
            start = time.perf_counter()
            client0 = time.process_time()
            for t in threads:
                t.join(600)
            if errors or any(t.is_alive() for t in threads):
                raise BenchError("; ".join(errors[:3]) or "SMTP clients did not finish in 600 s")
            arrived = receiver.wait(all_in, DRAIN_TIMEOUT)
            cpu, _ = meter()
            client_cpu = time.process_time() - client0
        pg1 = postgres_cpu_seconds() if pg0 is not None else None
        receiver.check()
        if not arrived:
            got = sum(1 for d in receiver.deliveries if d.path.startswith("/burst/"))
            raise BenchError(
                f"{got} of {expected} POSTs within {DRAIN_TIMEOUT:.0f} s of the last 250"
            )
        time.sleep(LATE)  # a late duplicate arrives within this
    receiver.check()

    per_endpoint = {path: receiver.at(path) for path in paths}
    problems = [p for path, got in per_endpoint.items() for p in once_each(got, subjects, path)]
    if problems:
        raise BenchError("; ".join(problems[:3]))
    # Each endpoint gets the inbox's events in commit order: the same order at every one.
    orders = {tuple(d.svix_id for d in got) for got in per_endpoint.values()}
    first_250, last_250 = min(accepted.values()), max(accepted.values())
    last_post = max(d.arrived for got in per_endpoint.values() for d in got)
    wall = last_post - first_250
    lags = [
        d.arrived - accepted[d.subject] for got in per_endpoint.values() for d in got if d.subject
    ]
    late = sum(1 for got in per_endpoint.values() for d in got if d.arrived > last_250)
    smtp_wall = last_250 - start

    section.add(
        "burst",
        "",
        f"{clients} SMTP clients x {total // clients} messages at once to the watcher, "
        f"{ENDPOINTS} webhooks on its inbox: {expected} deliveries",
    )
    section.add("  deliveries/s", f"{expected / wall:.1f}", f"first 250 -> last POST, {wall:.2f} s")
    for k, got in enumerate(per_endpoint.values()):
        end = max(d.arrived for d in got)
        section.add(
            f"  endpoint {k + 1}",
            f"{len(got) / (end - first_250):.1f}",
            f"deliveries/s; {len(got)} POSTs, {len({d.peer for d in got})} connection(s)",
        )
    section.add(
        "  SMTP throughput meanwhile", f"{total / smtp_wall:.1f}", "messages/s (to the last 250)"
    )
    section.add(
        "  last POST after the last 250",
        ms(last_post - last_250),
        f"ms; {late} of {expected} POSTs after the last 250",
    )
    for p in (50, 99):
        section.add(f"  250 -> POST p{p}", ms(percentile(lags, p)), "ms  (under the burst)")
    section.add("  250 -> POST max", ms(max(lags)), "ms")
    section.add(
        "  every event once per endpoint",
        f"{expected}",
        "by svix-id, "
        + ("in the same order at every endpoint" if len(orders) == 1 else "ORDER DIFFERS"),
    )
    span = last_post - start
    section.add(
        "  server CPU",
        f"{cpu / total * 1000:.2f}",
        f"ms/message (its SMTP transaction and {ENDPOINTS} POSTs); {cpu_note(cpu, span)}",
    )
    pg_row(section, pg0, pg1, total, span, "  PostgreSQL CPU")
    section.add(
        "  client CPU",
        f"{client_cpu / total * 1000:.2f}",
        f"ms/message; {cpu_note(client_cpu, span)}  (SMTP clients and receiver, all threads)",
    )
    summary.add(rate_label(), f"{expected / wall:.0f}/s", f"{expected} POSTs, first 250 -> last")
    if len(orders) != 1:
        raise BenchError("the endpoints got the inbox's events in different orders")


def bench_webhook(bench: Bench) -> Section:
    servers = bench.servers  # the message goes in through node A; any node may POST it
    counts = bench.counts
    burst = max(counts.messages // ENDPOINTS, counts.clients)
    burst -= burst % counts.clients
    section = Section(
        "Delivery to webhooks: an HTTP receiver on loopback (threaded, in the benchmark "
        "process, 200 at once, every signature verified with the svix library); inbox "
        "webhooks made with the agentmail SDK, message.received, submissions on port 465"
    )
    with receiving() as receiver, api_client(servers[0].ports["api"], bench.watcher) as api:
        measure_latency(
            servers,
            api,
            bench.senders[0],
            bench.watcher,
            receiver,
            counts.idle_messages,
            bench.postgres,
            section,
            bench.summary,
        )
        measure_burst(
            servers,
            api,
            bench.senders,
            bench.watcher,
            receiver,
            burst,
            bench.postgres,
            section,
            bench.summary,
        )
    return section


PHASE = Phase(
    "webhook",
    bench_webhook,
    lambda counts, nodes: [latency_label(), rate_label()],
    # The receiver is on 127.0.0.1, which webhooks may not reach by default (SSRF).
    settings={"api.allow_private_webhooks": True},
)
