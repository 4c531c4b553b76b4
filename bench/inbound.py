"""Phase `inbound`: mail from another domain straight to the MX port, DKIM-signed by the
benchmark, with SPF/DKIM/DMARC evaluated by the server against the loopback DNS server."""

from __future__ import annotations

import collections
import contextlib
import imaplib
import re
import smtplib
import socket
import threading
import time

from clients import client_tls, start_clients
from common import DOMAIN, HOST, SOCKET_TIMEOUT, Account, BenchError, Target
from messages import shares, submission_message
from meters import postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress
from server import create_inbox
from world import (
    WORLD_DOMAIN,
    WORLD_HELO,
    ZONE_TTL,
    SigningKey,
    Zone,
    publish_world,
    world_keys,
)


def world_message(sender: str, recipient: str, n: int, keys: list[SigningKey]) -> bytes:
    """A ~2 KiB message from another domain, signed with both of its keys (relaxed/relaxed,
    From over-signed, as mailgate itself signs)."""
    import dkim

    data = submission_message(sender, recipient, n, subject="bench inbound")
    include = [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"from",
    ]
    signatures = [
        dkim.sign(
            data,
            key.selector.encode(),
            WORLD_DOMAIN.encode(),
            key.private,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.encode(),
            include_headers=include,
            linesep=b"\r\n",
        )
        for key in keys
    ]
    return b"".join(signatures) + data


def inbound_labels(clients: int, nodes: int) -> list[str]:
    where = f" over {nodes} nodes" if nodes > 1 else ""
    return [
        f"Inbound MX, SPF/DKIM/DMARC, {clients} clients{where}",
        "  DATA -> 250 p50 / p95 / p99",
        "  in INBOX with spf/dkim/dmarc=pass",
    ]


def inbox_headers(port: int, account: Account, fields: str) -> tuple[list[bytes], int]:
    """The header fields `fields` of every INBOX message, and the number of messages in Spam."""
    with imaplib.IMAP4_SSL(HOST, port, ssl_context=client_tls(), timeout=SOCKET_TIMEOUT) as imap:
        imap.login(account.address, account.key)
        typ, data = imap.status("Spam", "(MESSAGES)")
        m = re.search(rb"MESSAGES (\d+)", data[0] or b"") if typ == "OK" else None
        if m is None:
            raise BenchError(f"STATUS Spam failed: {data!r}")
        spam = int(m.group(1))
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK":
            raise BenchError(f"EXAMINE INBOX failed: {data!r}")
        if int(data[0] or 0) == 0:
            return [], spam
        typ, data = imap.fetch("1:*", f"(BODY.PEEK[HEADER.FIELDS ({fields})])")
        if typ != "OK":
            raise BenchError(f"FETCH {fields} failed: {data!r}")
        return [item[1] for item in data if isinstance(item, tuple)], spam


def verdicts_pass(header: bytes, hostname: str) -> bool:
    """This server's Authentication-Results says spf=pass, dkim=pass for both signatures
    (rsa-sha256 and ed25519-sha256) and dmarc=pass."""
    fields = re.findall(rb"^Authentication-Results:(.*(?:\r?\n[ \t].*)*)", header, re.M | re.I)
    ours = [
        " ".join(f.decode(errors="replace").split())
        for f in fields
        if f.decode(errors="replace").split(";", 1)[0].strip().lower() == hostname.lower()
    ]
    if len(ours) != 1:
        return False
    text = ours[0]
    return (
        re.findall(r"\bspf=(\w+)", text) == ["pass"]
        and re.findall(r"\bdkim=(\w+)", text) == ["pass", "pass"]
        and "header.a=rsa-sha256" in text
        and "header.a=ed25519-sha256" in text
        and re.findall(r"\bdmarc=(\w+)", text) == ["pass"]
    )


def bench_inbound(
    servers: list[Target],
    recipients: list[Account],
    keys: list[SigningKey],
    zone: Zone,
    total: int,
    summary: Summary,
    hostname: str,
    postgres: bool = False,
) -> Section:
    clients = len(recipients)
    nodes = len(servers)
    numbers = shares(total, clients)
    senders = [f"news{i}@{WORLD_DOMAIN}" for i in range(clients)]
    progress(f"inbound: signing {total} messages with dkimpy (RSA + Ed25519)")
    messages = [
        [world_message(senders[i], recipients[i].address, n, keys) for n in numbers[i]]
        for i in range(clients)
    ]
    data_latencies: list[list[float]] = [[] for _ in range(clients)]
    whole: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1, timeout=120)
    ends = [0.0] * clients
    errors: list[str] = []

    def expect(code: int, reply: bytes, what: str, good: tuple[int, ...] = (250,)) -> None:
        if code not in good:
            raise BenchError(f"{what}: {code} {reply.decode(errors='replace')}")

    def client(i: int) -> None:
        smtp = None
        try:
            # As another MTA would: one connection, STARTTLS, then message after message.
            port = servers[i % nodes].ports["mx"]
            smtp = smtplib.SMTP(HOST, port, local_hostname=WORLD_HELO, timeout=SOCKET_TIMEOUT)
            assert smtp.sock is not None  # connected by the constructor
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.starttls(context=client_tls())
            smtp.ehlo()
            barrier.wait()
            for n, data in zip(numbers[i], messages[i], strict=True):
                t0 = time.perf_counter()
                expect(*smtp.mail(senders[i]), f"MAIL FROM for message {n}")
                expect(*smtp.rcpt(recipients[i].address), f"RCPT for message {n}", (250, 251))
                t1 = time.perf_counter()
                expect(*smtp.data(data), f"DATA for message {n}")
                t2 = time.perf_counter()
                data_latencies[i].append(t2 - t1)
                whole[i].append(t2 - t0)
            ends[i] = time.perf_counter()
        except Exception as exc:
            errors.append(f"client {i}: {exc}")
            barrier.abort()
        finally:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.quit()

    where = f", round-robin over {nodes} nodes" if nodes > 1 else ""
    progress(f"inbound: {total} messages from {clients} MX clients, from {WORLD_DOMAIN}{where}")
    threads = start_clients(client, clients, barrier)
    dns0 = zone.queries
    cpu0 = [s.cpu_seconds() for s in servers]
    pg0 = postgres_cpu_seconds() if postgres else None
    start = time.perf_counter()
    for t in threads:
        t.join(600)
    node_cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
    pg1 = postgres_cpu_seconds() if pg0 is not None else None
    dns_queries = zone.queries - dns0
    if errors or any(t.is_alive() for t in threads):
        raise BenchError("; ".join(errors[:3]) or "MX clients did not finish in 600 s")
    wall = max(ends) - start
    cpu = sum(node_cpu)
    flat = [x for per in data_latencies for x in per]
    flat_whole = [x for per in whole for x in per]

    # Read every recipient's INBOX back (through another node when there are several).
    progress("inbound: checking every message is in INBOX with its verdicts")
    passed = 0
    problems: list[str] = []
    spam_total = 0
    for r, account in enumerate(recipients):
        headers, spam = inbox_headers(
            servers[(r + 1) % nodes].ports["imaps"], account, "SUBJECT AUTHENTICATION-RESULTS"
        )
        spam_total += spam
        want = {f"bench inbound {n}" for n in numbers[r]}
        got: collections.Counter[str] = collections.Counter()
        good: set[str] = set()
        for header in headers:
            m = re.search(rb"^Subject: *(.*?)\r?$", header, re.M | re.I)
            subject = m.group(1).decode(errors="replace") if m else ""
            got[subject] += 1
            if verdicts_pass(header, hostname):
                good.add(subject)
        passed += sum(1 for s in want if got.get(s) == 1 and s in good)
        missing = len(want - set(got))
        doubled = sum(c - 1 for s, c in got.items() if s in want and c > 1)
        stray = sum(c for s, c in got.items() if s not in want)
        failing = len((want & set(got)) - good)
        if missing or doubled or stray or failing or spam:
            problems.append(
                f"{account.address}: {missing} missing, {doubled} duplicated, {stray} stray, "
                f"{failing} without spf/dkim/dmarc=pass, {spam} in Spam"
            )

    size = sum(len(m) for per in messages for m in per) / total
    section = Section(
        f"Inbound MX: {total} messages of {size / 1024:.1f} KiB sent by {clients} clients over "
        f"STARTTLS from {WORLD_DOMAIN} (SPF ip4, DKIM rsa-sha256 + ed25519-sha256, DMARC "
        f"p=reject, on a loopback DNS server), one recipient each{where}"
    )
    section.add("messages accepted (250)", str(len(flat)))
    verdict = "OK" if passed == total and not problems else "; ".join(problems[:2])
    section.add(
        "in INBOX once, spf/dkim x2/dmarc=pass",
        str(passed),
        f"(IMAP, Authentication-Results of {hostname}; {verdict})",
    )
    section.add("messages in Spam", str(spam_total))
    section.add("wall time", f"{wall:.2f}", "s")
    section.add("throughput", f"{total / wall:.1f}", "messages/s")
    for p in (50, 95, 99):
        section.add(f"DATA -> 250 p{p}", ms(percentile(flat, p)), "ms  (DATA sent -> 250 read)")
    section.add("DATA -> 250 max", ms(max(flat)), "ms")
    section.add("MAIL FROM -> 250 p50", ms(percentile(flat_whole, 50)), "ms  (whole transaction)")
    section.add("server CPU", f"{cpu / total * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    if nodes > 1:
        for node, used in zip(servers, node_cpu, strict=True):
            section.add(
                f"  {node.name}", f"{used:.2f}", f"s  ({used / wall * 100:.0f}% of one core)"
            )
    pg_row(section, pg0, pg1, total, wall)
    section.add("DNS queries answered", str(dns_queries), f"(TTL {ZONE_TTL} s, so mostly cached)")

    labels = inbound_labels(clients, nodes)
    summary.add(labels[0], f"{total / wall:.1f} msg/s", "")
    summary.add(
        labels[1], " / ".join(f"{percentile(flat, p) * 1000:.1f}" for p in (50, 95, 99)) + " ms"
    )
    summary.add(labels[2], f"{passed} / {total}", "OK" if passed == total else "NO")
    if problems or passed != total:
        raise BenchError("inbound check failed: " + "; ".join(problems[:3]))
    return section


def _prepare(bench: Bench) -> str:
    assert bench.zone is not None
    bench.mx_inboxes = [
        create_inbox(bench.config, bench.env, f"mx{i}@{DOMAIN}")
        for i in range(bench.counts.clients)
    ]
    bench.world_keys = world_keys()
    publish_world(bench.zone, bench.world_keys)
    return f"SPF, DKIM ({', '.join(k.selector for k in bench.world_keys)}), DMARC of {WORLD_DOMAIN}"


def _run(bench: Bench) -> Section:
    assert bench.zone is not None
    return bench_inbound(
        bench.servers,
        bench.mx_inboxes,
        bench.world_keys,
        bench.zone,
        bench.counts.inbound_messages,
        bench.summary,
        bench.hostname,
        postgres=bench.postgres,
    )


PHASE = Phase(
    "inbound",
    _run,
    lambda counts, nodes: inbound_labels(counts.clients, nodes),
    nodes="all",
    dns=True,
    prepare=_prepare,
)
