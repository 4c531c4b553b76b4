"""Phase `crash`: the long form of tests/e2e/test_crash_safety.py. Clients submit (to a hosted
inbox and to the sink's domain) and APPEND without pause while the server is killed with
SIGKILL at random moments and started again on the same data, `--kills` times; then every
mailbox is read over IMAP and every message at the sink counted, against what each client was
acknowledged. The clients, their books and the verdict are the tests' (tests/e2e/crash.py)."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.e2e

from clients import client_tls
from common import DOMAIN, BenchError
from outbound import PHASE as OUTBOUND
from outbound import queued_recipients
from phase import Bench, Phase
from report import Section, ms, percentile, progress
from server import Server, create_inbox
from world import SINK_DOMAIN

from tests.e2e.crash import (
    APPEND,
    LOCAL,
    Listing,
    Load,
    kill_loop,
    read_mailbox,
    recorded_deliveries,
    verdict,
)
from tests.e2e.crash import OUTBOUND as TO_SINK
from tests.harness import Account

UPTIME = (0.05, 1.5)  # seconds up before each SIGKILL, drawn uniformly from the seeded RNG
RECOVERY_TIMEOUT = 120.0  # for every client to be served again after the last restart
DRAIN_TIMEOUT = 300.0  # for the queue to empty afterwards


def crash_labels(kills: int) -> list[str]:
    return [
        f"Crash safety: {kills} SIGKILLs under load, acknowledged",
        "  lost / stored twice (must be 0 / 0)",
        "  SIGKILL -> serving again p50 / p99",
    ]


def bench_crash(bench: Bench, kills: int, seed: int) -> Section:
    server = bench.servers[0]
    if not isinstance(server, Server):
        raise BenchError("the crash phase kills a mailgate server")
    assert bench.sink is not None
    clients = bench.counts.clients
    progress(f"crash: creating inboxes for {clients} clients")

    def inbox(name: str) -> Account:
        made = create_inbox(bench.config, bench.env, f"crash-{name}@{DOMAIN}")
        return Account(made.address, made.key)

    target = inbox("target")
    local = [inbox(f"local{i}") for i in range(max(1, clients // 2))]
    outbound = [inbox(f"outbound{i}") for i in range(max(1, clients // 4))]
    load = Load(lambda: server.ports, client_tls())
    for sender in local:
        load.submitter(sender, target.address, LOCAL)
    for i, sender in enumerate(outbound):
        load.submitter(sender, f"crash{i}+{{n}}@{SINK_DOMAIN}", TO_SINK)
    for _ in range(max(1, clients // 4)):
        load.appender(target)
    load.observer(target)
    base = bench.sink.wait(0, 0)  # what the sink got before this phase

    progress(
        f"crash: {len(local)} submitting to {target.address}, {len(outbound)} to {SINK_DOMAIN}, "
        f"{clients // 4 or 1} APPENDing, 1 watching; {kills} SIGKILLs, seed {seed}"
    )
    began = time.monotonic()
    load.start()
    try:
        done = kill_loop(seed, kills, server.kill, server.start, UPTIME, progress)
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while load.acknowledged_since(done.at[-1]) < load.writers:
            if time.monotonic() > deadline:
                raise BenchError(f"clients not served again within {RECOVERY_TIMEOUT:.0f} s")
            time.sleep(0.1)  # a bounded wait for the clients
    finally:
        load.stop()
    wall = time.monotonic() - began
    if load.failures:
        raise BenchError(f"a client failed: {load.failures[0]}")

    progress("crash: waiting for the queue to empty, then reading every mailbox")
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (left := queued_recipients(bench.config, bench.env)) and time.monotonic() < deadline:
        time.sleep(1)  # a bounded wait for the delivery worker
    mailboxes: dict[tuple[str, str], Listing] = {
        (target.address, "INBOX"): read_mailbox(load, target),
        **{(s.address, "Sent"): read_mailbox(load, s, "Sent") for s in local + outbound},
    }
    arrivals = [(a[6], a[5]) for a in bench.sink.arrivals(base)]
    log = "".join(p.read_text(errors="replace") for p in server.workdir.glob("server-*.log"))
    recorded = recorded_deliveries(log)
    result = verdict(load.attempts, mailboxes, arrivals, done.at, load.observers, recorded)

    attempts = load.attempts
    acknowledged = {
        kind: sum(1 for a in attempts if a.acknowledged and a.kind == kind)
        for kind in (LOCAL, APPEND, TO_SINK)
    }
    sessions = sum(c.connections for c in load.clients)
    recovery = done.recovery
    section = Section(
        f"Crash safety: {kills} SIGKILLs at random moments (seed {seed}, {UPTIME[0]}-{UPTIME[1]} "
        f"s up each time) while {len(local)} clients submit to a hosted inbox, "
        f"{len(outbound)} to {SINK_DOMAIN} and {clients // 4 or 1} APPEND (port 465 / 993), "
        "each restart on the same data"
    )
    section.add("kills", str(len(done.at)), f"in {wall:.1f} s")
    section.add(
        "attempts / acknowledged",
        f"{len(attempts)} / {result.acknowledged}",
        f"(submitted locally {acknowledged[LOCAL]}, APPENDed {acknowledged[APPEND]}, "
        f"to the sink {acknowledged[TO_SINK]}; {result.acknowledged / wall:.1f}/s)",
    )
    section.add(
        "stored without an acknowledgement",
        str(result.stored_unacknowledged),
        "(committed, the reply lost to the kill: allowed, once)",
    )
    section.add("lost", str(len(result.losses)), "acknowledged, not stored (must be 0)")
    section.add("stored twice", str(len(result.duplicates)), "(must be 0)")
    section.add(
        "strays / torn / UID problems",
        f"{len(result.strays)} / {len(result.torn)} / {len(result.uids)}",
        "(must be 0: UIDs 1..n, ascending in acknowledgement order, UIDVALIDITY kept)",
    )
    section.add(
        "at the sink",
        str(result.remote_arrivals),
        f"({len(result.resent_after_kill)} sent again after a kill between the sink's 250 "
        f"and its record; {left} recipients left in the queue)",
    )
    for p in (50, 99):
        section.add(f"SIGKILL -> serving again p{p}", ms(percentile(recovery, p)), "ms")
    section.add("SIGKILL -> serving again max", ms(max(recovery)), "ms  (the `ready` line)")
    section.add("client sessions opened", str(sessions), f"(by {len(load.clients)} clients)")

    labels = crash_labels(kills)
    bench.summary.add(labels[0], str(result.acknowledged), f"seed {seed}")
    ok = not result.losses and not result.duplicates
    bench.summary.add(
        labels[1], f"{len(result.losses)} / {len(result.duplicates)}", "OK" if ok else "NO"
    )
    bench.summary.add(
        labels[2],
        " / ".join(f"{percentile(recovery, p) * 1000:.0f}" for p in (50, 99)) + " ms",
    )
    if result.problems:
        raise BenchError(f"seed {seed}: {result.summary()}: {result.problems[:5]}")
    if left:
        raise BenchError(f"{left} recipients still queued after {DRAIN_TIMEOUT:.0f} s")
    return section


def _run(bench: Bench) -> Section:
    seed = bench.counts.seed or random.SystemRandom().randrange(2**32)
    return bench_crash(bench, bench.counts.kills, seed)


PHASE = Phase(
    "crash",
    _run,
    lambda counts, nodes: crash_labels(counts.kills),
    dns=True,
    sink=True,
    prepare=OUTBOUND.prepare,
    default=False,
)
