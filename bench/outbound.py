"""Phase `outbound`: mail submitted for another domain, DKIM-signed by the server's delivery
worker and delivered to the SMTP sink found through MX records on the loopback DNS server."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import re
import threading
import time
from pathlib import Path

from clients import smtp_client, start_clients
from common import DOMAIN, Account, BenchError, Target
from messages import shares, submission_message
from meters import postgres_cpu_seconds
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, pg_row, progress
from server import mailgate
from world import (
    SINK_DOMAIN,
    ZONE_TTL,
    Sink,
    Zone,
    publish_sink,
)

OUTBOUND_TIMEOUT = 300.0  # for the last message to reach the sink after the last submission
DKIM_SAMPLE = 50  # outbound messages whose two signatures the sink side verifies with dkimpy


def queued_recipients(config: Path, env: dict[str, str]) -> int:
    """How many recipients `mailgate queue list` still shows."""
    return len(json.loads(mailgate(config, env, "queue", "list", "--json")))


def dkim_tags(header: bytes) -> list[dict[str, str]]:
    """The tags of every DKIM-Signature field in a header section (whitespace removed)."""
    fields = re.findall(rb"^DKIM-Signature:(.*(?:\r?\n[ \t].*)*)", header, re.M | re.I)
    out = []
    for value in fields:
        text = re.sub(r"\s+", "", value.decode(errors="replace"))
        tags = dict(part.partition("=")[::2] for part in text.split(";") if "=" in part)
        out.append(tags)
    return out


def dkimpy_verifies(data: bytes, zone: Zone, signatures: int) -> bool:
    """Every one of the message's `signatures` DKIM signatures verifies with dkimpy, its keys
    fetched from the zone over the network (outside mailgate)."""
    import dkim

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        return zone.txt(name.decode() if isinstance(name, bytes) else name)

    try:
        return all(dkim.DKIM(data).verify(idx=i, dnsfunc=txt) for i in range(signatures))
    except dkim.DKIMException:
        return False


def outbound_labels(clients: int, nodes: int) -> list[str]:
    where = f" over {nodes} nodes" if nodes > 1 else ""
    return [
        f"Outbound via MX to a sink, {clients} clients{where}",
        "  submit 250 -> sink 250 p50 / p95 / p99",
        "  at the sink once, RSA + Ed25519 DKIM",
    ]


def bench_outbound(
    servers: list[Target],
    senders: list[Account],
    sink: Sink,
    zone: Zone,
    total: int,
    summary: Summary,
    config: Path,
    env: dict[str, str],
    postgres: bool = False,
) -> Section:
    clients = len(senders)
    nodes = len(servers)
    numbers = shares(total, clients)
    recipients = [f"rcpt{i}@{SINK_DOMAIN}" for i in range(clients)]
    messages = [
        [
            submission_message(senders[i].address, recipients[i], n, subject="bench outbound")
            for n in numbers[i]
        ]
        for i in range(clients)
    ]
    # Per client: (number, MAIL FROM sent, 250 read), on time.monotonic() like the sink's.
    sent: list[list[tuple[int, float, float]]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1, timeout=120)
    ends = [0.0] * clients
    errors: list[str] = []

    def client(i: int) -> None:
        smtp = None
        try:
            smtp = smtp_client(servers[i % nodes].ports["submissions"], senders[i])
            barrier.wait()
            mine = sent[i]
            for n, data in zip(numbers[i], messages[i], strict=True):
                t0 = time.monotonic()
                smtp.sendmail(senders[i].address, [recipients[i]], data)
                mine.append((n, t0, time.monotonic()))
            ends[i] = time.monotonic()
        except Exception as exc:
            errors.append(f"client {i}: {exc!r}")
            barrier.abort()
        finally:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.quit()

    where = f", round-robin over {nodes} nodes" if nodes > 1 else ""
    progress(
        f"outbound: {total} messages from {clients} SMTP clients to {SINK_DOMAIN}{where}, "
        "delivered to the sink"
    )
    base = sink.wait(0, 0)  # what the sink got before this phase
    threads = start_clients(client, clients, barrier)
    dns0 = zone.queries
    cpu0 = [s.cpu_seconds() for s in servers]
    pg0 = postgres_cpu_seconds() if postgres else None
    start = time.monotonic()
    for t in threads:
        t.join(600)
    if errors or any(t.is_alive() for t in threads):
        raise BenchError("; ".join(errors[:3]) or "SMTP clients did not finish in 600 s")
    submitted_at = max(ends)
    deadline = submitted_at + OUTBOUND_TIMEOUT
    got = base
    while True:
        got = sink.wait(base + total, max(0.0, min(10.0, deadline - time.monotonic())))
        if got >= base + total or time.monotonic() >= deadline:
            break
        progress(f"outbound: {got - base} of {total} at the sink")
    node_cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
    pg1 = postgres_cpu_seconds() if pg0 is not None else None
    dns_queries = zone.queries - dns0
    cpu = sum(node_cpu)
    arrivals = sink.arrivals(base)

    # Every submitted message at the sink exactly once, with the envelope it was sent with and
    # one rsa-sha256 and one ed25519-sha256 signature by the sender's domain.
    wanted = {
        n: (senders[i].address, recipients[i], t0, t250)
        for i in range(clients)
        for n, t0, t250 in sent[i]
    }
    seen: collections.Counter[int] = collections.Counter()
    stray = envelope_wrong = signed = tls = 0
    connections: set[int] = set()
    after_250: list[float] = []  # client's 250 -> sink's 250
    after_mail: list[float] = []  # client's MAIL FROM -> sink's 250
    last = start
    received: list[bytes] = []
    for when, mail_from, rcpts, used_tls, connection, data, _ in arrivals:
        header = data.split(b"\r\n\r\n", 1)[0]
        m = re.search(rb"^Subject: bench outbound (\d+)\r?$", header, re.M)
        n = int(m.group(1)) if m else -1
        if n not in wanted:
            stray += 1
            continue
        seen[n] += 1
        if seen[n] > 1:
            continue
        sender, recipient, t0, t250 = wanted[n]
        if mail_from != sender or rcpts != [recipient]:
            envelope_wrong += 1
        algorithms = sorted((t.get("a", ""), t.get("d", "")) for t in dkim_tags(header))
        if algorithms == [("ed25519-sha256", DOMAIN), ("rsa-sha256", DOMAIN)]:
            signed += 1
        tls += used_tls
        connections.add(connection)
        after_250.append(when - t250)
        after_mail.append(when - t0)
        last = max(last, when)
        received.append(data)
    once = sum(1 for n in wanted if seen[n] == 1)
    missing = sum(1 for n in wanted if seen[n] == 0)
    doubled = sum(c - 1 for c in seen.values() if c > 1)

    progress(f"outbound: verifying {min(DKIM_SAMPLE, len(received))} messages with dkimpy")
    step = max(1, len(received) // DKIM_SAMPLE)
    sample = received[::step][:DKIM_SAMPLE]
    verified = sum(1 for data in sample if dkimpy_verifies(data, zone, 2))
    progress("outbound: checking the queue is empty")
    left = queued_recipients(config, env)
    for _ in range(20 if got >= base + total else 0):  # the last outcomes may still be written
        if left == 0:
            break
        time.sleep(0.5)
        left = queued_recipients(config, env)

    wall = max(last - start, 1e-6)
    submit_wall = submitted_at - start
    submits = [t250 - t0 for per in sent for _, t0, t250 in per]
    size = sum(len(m) for per in messages for m in per) / total
    ok = once == total and not stray and not envelope_wrong and signed == total
    section = Section(
        f"Outbound delivery: {total} messages of {size / 1024:.1f} KiB submitted by {clients} "
        f"clients (port 465, AUTH) to {SINK_DOMAIN}, whose MX (loopback DNS) is an aiosmtpd "
        f"sink offering STARTTLS; the server DKIM-signs (RSA + Ed25519) and delivers{where}"
    )
    section.add("messages accepted (250)", str(len(submits)))
    section.add(
        "messages at the sink exactly once",
        str(once),
        f"({missing} missing, {doubled} duplicates, {stray} stray, "
        f"{envelope_wrong} with a wrong envelope; {'OK' if ok else 'NO'})",
    )
    section.add(
        "  with DKIM rsa-sha256 + ed25519-sha256",
        str(signed),
        f"(d={DOMAIN}; {'OK' if signed == total else 'NO'})",
    )
    section.add(
        "  verified by dkimpy at the sink",
        f"{verified} / {len(sample)}",
        "(both signatures, keys from the zone as `mailgate domain dns --json` gave them; "
        f"{'OK' if verified == len(sample) else 'NO'})",
    )
    section.add(
        "  over STARTTLS",
        str(tls),
        f"(in {len(connections)} SMTP connection(s) from the server)",
    )
    section.add("recipients left in the queue", str(left), "(mailgate queue list)")
    section.add(
        "submission wall time", f"{submit_wall:.2f}", f"s  ({total / submit_wall:.1f} msg/s)"
    )
    section.add(
        "wall time to the last sink 250",
        f"{wall:.2f}",
        f"s  (first submission -> last 250 at the sink; {max(0.0, last - submitted_at):.2f} s "
        "after the last submission)",
    )
    section.add("throughput", f"{total / wall:.1f}", "messages/s  (submission to the sink's 250)")
    for p in (50, 95, 99):
        section.add(f"submit 250 -> sink 250 p{p}", ms(percentile(after_250, p)), "ms")
    section.add("submit 250 -> sink 250 max", ms(max(after_250, default=math.nan)), "ms")
    section.add("MAIL FROM -> sink 250 p50", ms(percentile(after_mail, 50)), "ms  (the whole way)")
    section.add(
        "submit latency p50 / p95",
        f"{ms(percentile(submits, 50))} / {ms(percentile(submits, 95))}",
        "ms  (MAIL FROM -> 250, queued)",
    )
    section.add("server CPU", f"{cpu / total * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    if nodes > 1:
        for node, used in zip(servers, node_cpu, strict=True):
            section.add(
                f"  {node.name}", f"{used:.2f}", f"s  ({used / wall * 100:.0f}% of one core)"
            )
    pg_row(section, pg0, pg1, total, wall)
    section.add("DNS queries answered", str(dns_queries), f"(TTL {ZONE_TTL} s, so mostly cached)")

    labels = outbound_labels(clients, nodes)
    summary.add(labels[0], f"{total / wall:.1f} msg/s", "")
    summary.add(
        labels[1],
        " / ".join(f"{percentile(after_250, p) * 1000:.1f}" for p in (50, 95, 99)) + " ms",
    )
    summary.add(labels[2], f"{min(once, signed)} / {total}", "OK" if ok else "NO")
    if not ok:
        waited = f" within {OUTBOUND_TIMEOUT:.0f} s" if got < base + total else ""
        raise BenchError(
            f"{once} of {total} messages at the sink exactly once{waited} ({missing} missing, "
            f"{doubled} duplicates, {stray} stray, {envelope_wrong} wrong envelope), "
            f"{signed} with both DKIM signatures"
        )
    if verified != len(sample):
        raise BenchError(f"dkimpy verified {verified} of {len(sample)} sampled messages")
    if left:
        raise BenchError(f"{left} recipients still queued after every message arrived")
    return section


def _prepare(bench: Bench) -> str:
    assert bench.zone is not None
    publish_sink(bench.zone)
    return f"MX of {SINK_DOMAIN}"


def _run(bench: Bench) -> Section:
    assert bench.sink is not None
    assert bench.zone is not None
    return bench_outbound(
        bench.servers,
        bench.senders,
        bench.sink,
        bench.zone,
        bench.counts.outbound_messages,
        bench.summary,
        bench.config,
        bench.env,
        postgres=bench.postgres,
    )


PHASE = Phase(
    "outbound",
    _run,
    lambda counts, nodes: outbound_labels(counts.clients, nodes),
    nodes="all",
    dns=True,
    sink=True,
    prepare=_prepare,
)
