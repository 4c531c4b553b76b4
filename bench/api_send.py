"""Phase `api_send`: messages sent through the HTTP API by N concurrent SDK clients; the API's
twin of `throughput`."""

from __future__ import annotations

import threading
import time

from clients import NO_RETRIES, RawIMAP, api_client, start_clients
from common import Account, BenchError, Target
from messages import api_text
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress


def api_send_labels(clients: int) -> list[str]:
    return [f"API send, {clients} clients", "  send latency p50 / p95 / p99"]


def inbox_total(server: Target, accounts: list[Account]) -> int:
    """The messages in the accounts' INBOXes together (STATUS over IMAP)."""
    total = 0
    for account in accounts:
        imap = RawIMAP(server.ports["imaps"])
        try:
            imap.login(account)
            total += imap.status_messages()
        finally:
            imap.close()
    return total


def bench_api_send(
    server: Target, senders: list[Account], total: int, summary: Summary, postgres: bool
) -> Section:
    clients = len(senders)
    per_client = total // clients
    total = per_client * clients
    port = server.ports["api"]
    barrier = threading.Barrier(clients + 1, timeout=120)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    ends = [0.0] * clients
    errors: list[str] = []
    texts = [api_text(j) for j in range(per_client)]

    def client(i: int) -> None:
        sender, recipient = senders[i], senders[(i + 1) % clients]
        try:
            with api_client(port, sender) as api:
                # Connected and the key checked before the clock starts, as the SMTP clients
                # of `throughput` log in first.
                api.inboxes.get(sender.address, request_options=NO_RETRIES)
                barrier.wait()
                mine = latencies[i]
                for j, text in enumerate(texts):
                    t0 = time.perf_counter()
                    api.inboxes.messages.send(
                        sender.address,
                        to=[recipient.address],
                        subject=f"api message {i * 10**6 + j}",
                        text=text,
                        request_options=NO_RETRIES,
                    )
                    mine.append(time.perf_counter() - t0)
                ends[i] = time.perf_counter()
        except Exception as exc:
            errors.append(f"client {i}: {exc!r}")
            barrier.abort()

    progress(f"api_send: {clients} SDK clients x {per_client} messages")
    before = inbox_total(server, senders)
    threads = start_clients(client, clients, barrier)
    pg0 = postgres_cpu_seconds() if postgres else None
    with cpu_meter(server) as meter:
        start = time.perf_counter()
        client0 = time.process_time()
        for t in threads:
            t.join(600)
        client_cpu = time.process_time() - client0
        cpu, _ = meter()
    pg1 = postgres_cpu_seconds() if pg0 is not None else None
    if errors or any(t.is_alive() for t in threads):
        raise BenchError("; ".join(errors[:3]) or "API clients did not finish in 600 s")
    wall = max(ends) - start
    flat = [x for per in latencies for x in per]
    delivered = inbox_total(server, senders) - before

    size = sum(len(t) for t in texts) / len(texts)
    section = Section(
        f"API send throughput: {clients} clients (threads, each with the agentmail SDK on its "
        f"own keep-alive connection) x {per_client} messages, text of {size / 1024:.1f} KiB, "
        "plain HTTP, inbox keys, one recipient each"
    )
    section.add("messages sent (200)", str(len(flat)))
    check = "OK" if delivered == total else "MISSING MESSAGES"
    section.add("messages in recipients' INBOX", str(delivered), f"(STATUS; {check})")
    section.add("wall time", f"{wall:.2f}", "s")
    section.add("throughput", f"{total / wall:.1f}", "messages/s")
    for p in (50, 95, 99):
        section.add(f"send latency p{p}", ms(percentile(flat, p)), "ms  (request -> response)")
    section.add("send latency max", ms(max(flat)), "ms")
    section.add("server CPU", f"{cpu / total * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    section.add(
        "client CPU",
        f"{client_cpu / total * 1000:.2f}",
        f"ms/message; {cpu_note(client_cpu, wall)}  (the SDK and httpx, all threads)",
    )
    pg_row(section, pg0, pg1, total, wall)
    labels = api_send_labels(clients)
    summary.add(labels[0], f"{total / wall:.1f} msg/s", "as SMTP submission's (throughput)")
    summary.add(
        labels[1], " / ".join(f"{percentile(flat, p) * 1000:.1f}" for p in (50, 95, 99)) + " ms"
    )
    if delivered != total:
        raise BenchError(f"{total} messages sent but {delivered} in the INBOXes")
    return section


def _run(bench: Bench) -> Section:
    return bench_api_send(
        bench.servers[0], bench.senders, bench.counts.messages, bench.summary, bench.postgres
    )


PHASE = Phase("api_send", _run, lambda counts, nodes: api_send_labels(counts.clients))
