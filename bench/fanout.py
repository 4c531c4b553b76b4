"""Phase `fanout`: many IMAP sessions idling on one mailbox, and how long it takes until every
one of them is told of a new message ("* n EXISTS"), from the SMTP 250 after DATA.

The sessions are held by load-generator processes (fleet.py), as in the `memory` phase; each
timestamps every EXISTS with time.monotonic() (CLOCK_MONOTONIC, one clock for every process of
the machine) and hands the times back when it is closed. The messages go one at a time, each
once every session has heard of the one before (or after FANOUT_TIMEOUT)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

from clients import RawIMAP, client_tls, smtp_client
from common import Account, BenchError, Target
from fleet import Close, Fleet, Open
from memory import login_command, open_idle
from messages import submission_message
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, progress

MESSAGES = 5
FANOUT_TIMEOUT = 60.0  # for every session to hear of one message
_EXISTS = re.compile(rb"\* (\d+) EXISTS")


def watcher_opener(port: int, account: Account) -> Open:
    """In a load generator: one TLS session idling on INBOX that notes when each EXISTS came;
    closing it returns {n: time.monotonic()} for every "* n EXISTS" heard while idling."""
    ctx, login = client_tls(), login_command(account)

    async def one() -> Close:
        reader, writer = await open_idle(port, ctx, login)
        heard: dict[int, float] = {}

        async def listen() -> None:
            while line := await reader.readline():
                m = _EXISTS.match(line)
                if m:
                    heard[int(m.group(1))] = time.monotonic()

        listening = asyncio.ensure_future(listen())

        async def close() -> dict[int, float]:
            listening.cancel()
            with contextlib.suppress(BaseException):
                await listening
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return heard

        return close

    return one


FANOUT_LABEL = "IDLE fan-out: 250 -> every session's EXISTS (p50 / max)"


def bench_fanout(
    server: Target, sender: Account, watcher: Account, count: int, summary: Summary
) -> Section:
    port = server.ports["imaps"]
    progress(f"fanout: {count} sessions idling on one INBOX, {MESSAGES} messages")
    fleet = Fleet(watcher_opener, (port, watcher), count, "IDLE sessions", "fanout")
    sent: list[tuple[int, float]] = []  # (EXISTS it makes, time.monotonic() of its 250)
    try:
        opened, _ = fleet.wait_open()
        base = _exists(server, watcher)
        smtp = smtp_client(server.ports["submissions"], sender)
        cpu0 = server.cpu_seconds()
        t0 = time.monotonic()
        try:
            for i in range(MESSAGES):
                data = submission_message(sender.address, watcher.address, 8 * 10**6 + i)
                smtp.sendmail(sender.address, [watcher.address], data)
                sent.append((base + i + 1, time.monotonic()))
                # Each on its own: wait for the server to have told everyone (its CPU goes
                # quiet) before the next, so the figures are one message's fan-out each.
                _quiet(server)
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
        cpu = server.cpu_seconds() - cpu0
        wall = time.monotonic() - t0
    finally:
        heard: list[Any] = fleet.close()
    told = [[h[n] - at for h in heard if n in h] for n, at in sent]
    missing = sum(opened - len(t) for t in told)
    if not heard or not all(told):
        raise BenchError(f"fanout: sessions heard of nothing ({len(heard)} reported)")
    section = Section(
        f"IDLE fan-out: {opened} TLS sessions idling on one INBOX (port 993), {MESSAGES} messages "
        "submitted one at a time (port 465); time from the 250 after DATA to each session's EXISTS"
    )
    for (n, _), times in zip(sent, told, strict=True):
        section.add(
            f"message {n - base}: p50 / p99 / max",
            f"{ms(percentile(times, 50))} / {ms(percentile(times, 99))} / {ms(max(times))}",
            f"ms  ({len(times)} of {opened} told)",
        )
    section.add("sessions never told", str(missing), f"of {opened * MESSAGES}")
    section.add(
        "server CPU per session told",
        f"{cpu / (opened * MESSAGES) * 1000:.3f}",
        f"ms; {cpu_note(cpu, wall)}",
    )
    lasts = [max(t) for t in told]
    summary.add(
        FANOUT_LABEL,
        f"{ms(percentile([x for t in told for x in t], 50))} / {ms(max(lasts))} ms "
        f"({opened} sessions)",
        "every session within 1 s (10,000 sessions)",
    )
    return section


def _exists(server: Target, account: Account) -> int:
    imap = RawIMAP(server.ports["imaps"])
    try:
        imap.login(account)
        return imap.select()
    finally:
        imap.close()


def _quiet(server: Target, idle_for: float = 0.5) -> None:
    """Until the server has used under 5% of a core for `idle_for` s (FANOUT_TIMEOUT at most)."""
    deadline = time.monotonic() + FANOUT_TIMEOUT
    last = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(idle_for)
        now = server.cpu_seconds()
        if now - last < 0.05 * idle_for:
            return
        last = now


def _run(bench: Bench) -> Section:
    return bench_fanout(
        bench.fresh_server("fanout"),
        bench.senders[0],
        bench.watcher,
        bench.counts.connections,
        bench.summary,
    )


PHASE = Phase("fanout", _run, lambda counts, nodes: [FANOUT_LABEL])
