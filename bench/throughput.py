"""Phase `throughput`: SMTP submission over implicit TLS with AUTH, N concurrent clients."""

from __future__ import annotations

import collections
import contextlib
import imaplib
import re
import threading
import time

import httpx
from clients import RawIMAP, api_url, client_tls, smtp_client, start_clients
from common import HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from messages import submission_message
from meters import cpu_meter, postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress

DELIVERY_TIMEOUT = 60.0  # for a server that queues: its last delivery after its last 250
COMMIT_COUNTERS = ("mailgate_store_commits_total", "mailgate_store_committed_writes_total")


def throughput_labels(clients: int, nodes: int) -> list[str]:
    """The summary rows of the throughput phase (also printed, FAILED, when it fails)."""
    if nodes == 1:
        return [f"SMTP submission, {clients} clients", "  submit latency p50 / p95 / p99"]
    return [
        f"SMTP submission, {clients} clients over {nodes} nodes",
        "  submit latency p50 / p95 / p99",
        "  delivered exactly once (by Subject)",
    ]


def inbox_subjects(port: int, account: Account) -> list[str]:
    """The Subject of every message in the account's INBOX (imaplib: it keeps literals)."""
    with imaplib.IMAP4_SSL(HOST, port, ssl_context=client_tls(), timeout=SOCKET_TIMEOUT) as imap:
        imap.login(account.address, account.key)
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK":
            raise BenchError(f"EXAMINE INBOX failed: {data!r}")
        if int(data[0] or 0) == 0:
            return []
        typ, fetched = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ != "OK":
            raise BenchError(f"FETCH Subject failed: {fetched!r}")
        subjects: list[str] = []
        for item in fetched:
            if isinstance(item, tuple):
                m = re.search(rb"^Subject: *(.*?)\r?$", item[1], re.MULTILINE | re.IGNORECASE)
                subjects.append(m.group(1).decode(errors="replace") if m else "")
        return subjects


def recipient_imap(server: Target, account: Account) -> RawIMAP:
    imap = RawIMAP(server.ports["imaps"])
    imap.login(account)
    return imap


def wait_delivered(inboxes: list[RawIMAP], total: int) -> float:
    """When the INBOXes (logged in) held `total` messages between them (STATUS, every 20 ms),
    or the deadline; closes them."""
    deadline = time.perf_counter() + DELIVERY_TIMEOUT
    try:
        while sum(imap.status_messages() for imap in inboxes) < total:
            if time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        return time.perf_counter()
    finally:
        for imap in inboxes:
            imap.close()


def store_commits(servers: list[Target]) -> tuple[float, float] | None:
    """(commits, writes) summed over the mailgate nodes' /metrics; None for the reference
    servers, which have none."""
    if not all("api" in server.ports for server in servers):
        return None
    totals = dict.fromkeys(COMMIT_COUNTERS, 0.0)
    for server in servers:
        text = httpx.get(f"{api_url(server.ports['api'])}/metrics", timeout=SOCKET_TIMEOUT).text
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in totals:
                totals[name] += float(value)
    return totals[COMMIT_COUNTERS[0]], totals[COMMIT_COUNTERS[1]]


def bench_throughput(
    servers: list[Target],
    senders: list[Account],
    total: int,
    summary: Summary,
    postgres: bool = False,
) -> Section:
    clients = len(senders)
    nodes = len(servers)
    per_client = total // clients
    total = per_client * clients
    barrier = threading.Barrier(clients + 1, timeout=120)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    ends = [0.0] * clients
    errors: list[str] = []
    numbers = [[i * 10**6 + j for j in range(per_client)] for i in range(clients)]
    messages = [
        [
            submission_message(senders[i].address, senders[(i + 1) % clients].address, n)
            for n in numbers[i]
        ]
        for i in range(clients)
    ]

    def client(i: int) -> None:
        sender, recipient = senders[i], senders[(i + 1) % clients]
        smtp = None
        try:
            # With several nodes, client i submits through node i mod N (round-robin).
            smtp = smtp_client(servers[i % nodes].ports["submissions"], sender)
            barrier.wait()
            mine = latencies[i]
            for data in messages[i]:
                t0 = time.perf_counter()
                smtp.sendmail(sender.address, [recipient.address], data)
                mine.append(time.perf_counter() - t0)
            ends[i] = time.perf_counter()
        except Exception as exc:
            errors.append(f"client {i}: {exc!r}")
            barrier.abort()
        finally:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.quit()

    where = f", round-robin over {nodes} nodes" if nodes > 1 else ""
    progress(f"throughput: {clients} SMTP clients x {per_client} messages{where}")
    # A server whose 250 means queued delivers afterwards: to time the deliveries, log in to
    # every recipient's INBOX now, so that waiting for them costs no logins.
    queues = any(server.queues for server in servers)
    watchers = (
        [recipient_imap(servers[r % nodes], a) for r, a in enumerate(senders)] if queues else []
    )
    commits0 = store_commits(servers)
    threads = start_clients(client, clients, barrier)
    cpu0 = [s.cpu_seconds() for s in servers]
    pg0 = postgres_cpu_seconds() if postgres else None
    with cpu_meter(*servers) as meter:
        start = time.perf_counter()
        for t in threads:
            t.join(600)
        cpu, _ = meter()
    node_cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
    pg1 = postgres_cpu_seconds() if pg0 is not None else None
    commits1 = store_commits(servers)
    if errors or any(t.is_alive() for t in threads):
        raise BenchError("; ".join(errors[:3]) or "SMTP clients did not finish in 600 s")
    wall = max(ends) - start
    flat = [x for per in latencies for x in per]

    # Recipient r receives from client r-1, which submitted through node (r-1) mod N; read it
    # back through node r mod N, so with several nodes every check crosses nodes.
    if queues:
        all_in = wait_delivered(watchers, total)
        cpu_to_inbox = sum(s.cpu_seconds() for s in servers) - sum(cpu0)
    delivered = 0
    for r, account in enumerate(senders):
        imap = RawIMAP(servers[r % nodes].ports["imaps"])
        try:
            imap.login(account)
            n = imap.status_messages()
        finally:
            imap.close()
        delivered += n
    exact = 0
    problems: list[str] = []
    if nodes > 1:
        progress("throughput: checking every message arrived exactly once")
        for r, account in enumerate(senders):
            got = collections.Counter(inbox_subjects(servers[r % nodes].ports["imaps"], account))
            want = {f"bench message {n}" for n in numbers[(r - 1) % clients]}
            missing = len(want - set(got))
            doubled = sum(c - 1 for s, c in got.items() if s in want and c > 1)
            stray = sum(c for s, c in got.items() if s not in want)
            exact += sum(1 for s in want if got.get(s) == 1)
            if missing or doubled or stray:
                problems.append(
                    f"{account.address}: {missing} missing, {doubled} duplicated, {stray} stray"
                )

    size = sum(len(m) for per in messages for m in per) / total
    section = Section(
        f"SMTP submission throughput: {clients} clients x {per_client} messages of "
        f"{size / 1024:.1f} KiB, port 465 (TLS), AUTH PLAIN, one recipient each{where}"
    )
    section.add("messages accepted (250)", str(len(flat)))
    check = "OK" if delivered == total else "MISSING MESSAGES"
    section.add("messages in recipients' INBOX", str(delivered), f"(STATUS; {check})")
    if queues:
        section.add(
            "  all in the INBOXes after the last 250",
            f"{all_in - max(ends):.2f}",
            "s  (its 250 means queued; STATUS of every INBOX polled every 20 ms)",
        )
    if nodes > 1:
        verdict = "OK" if not problems and exact == total else "; ".join(problems[:2])
        section.add(
            "messages delivered exactly once",
            str(exact),
            f"(Subject of every INBOX message, read through another node; {verdict})",
        )
    section.add("wall time", f"{wall:.2f}", "s")
    section.add("throughput", f"{total / wall:.1f}", "messages/s")
    if queues:
        section.add("throughput to the INBOXes", f"{total / (all_in - start):.1f}", "messages/s")
    for p in (50, 95, 99):
        section.add(f"submit latency p{p}", ms(percentile(flat, p)), "ms  (MAIL FROM -> 250)")
    section.add("submit latency max", ms(max(flat)), "ms")
    section.add("server CPU", f"{cpu / total * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    if nodes > 1:
        for node, used in zip(servers, node_cpu, strict=True):
            section.add(
                f"  {node.name}", f"{used:.2f}", f"s  ({used / wall * 100:.0f}% of one core)"
            )
    if queues:
        section.add(
            "server CPU to the last delivery",
            f"{cpu_to_inbox / total * 1000:.2f}",
            "ms/message  (queueing, delivery and the STATUS checks)",
        )
    pg_row(section, pg0, pg1, total, wall)
    if commits0 is not None and commits1 is not None and commits1[0] > commits0[0]:
        commits, writes = commits1[0] - commits0[0], commits1[1] - commits0[1]
        section.add(
            "store writes per commit",
            f"{writes / commits:.2f}",
            f"({writes:.0f} writes in {commits:.0f} commits; every write of the server's)",
        )
    labels = throughput_labels(clients, nodes)
    to_inbox = f", {total / (all_in - start):.0f} to INBOX" if queues else ""
    summary.add(labels[0], f"{total / wall:.1f} msg/s{to_inbox}", "")
    summary.add(
        labels[1],
        " / ".join(f"{percentile(flat, p) * 1000:.1f}" for p in (50, 95, 99)) + " ms",
    )
    if nodes > 1:
        summary.add(labels[2], f"{exact} / {total}", "OK" if exact == total else "NO")
    if delivered != total:
        raise BenchError(f"{total} messages accepted but {delivered} in the INBOXes")
    if problems or (nodes > 1 and exact != total):
        raise BenchError("not delivered exactly once: " + "; ".join(problems[:3]))
    return section


def _run(bench: Bench) -> Section:
    return bench_throughput(
        bench.servers, bench.senders, bench.counts.messages, bench.summary, bench.postgres
    )


PHASE = Phase(
    "throughput",
    _run,
    lambda counts, nodes: throughput_labels(counts.clients, nodes),
    nodes="all",
    reference=True,
)
