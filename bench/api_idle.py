"""Phase `api_idle`: from an HTTP API send returning to the "* n EXISTS" an idling IMAP client
sees; the API's twin of `idle`."""

from __future__ import annotations

import gc
import time

from clients import NO_RETRIES, api_client
from common import Account, Target
from idle import idling
from messages import api_text
from meters import cpu_meter
from phase import Bench, Phase
from report import Section, Summary, cpu_note, ms, percentile, progress

API_IDLE_LABELS = ["API send -> IDLE EXISTS p50/p95/p99/max", "  request -> EXISTS p50 / p99"]


def bench_api_idle(
    server: Target, sender: Account, watcher: Account, count: int, summary: Summary
) -> Section:
    progress(f"api_idle: {count} API sends, one at a time, to an IDLE client")
    latencies: list[float] = []
    sends: list[float] = []
    with idling(server, watcher) as (thread, base), api_client(server.ports["api"], sender) as api:
        # The connection is opened and the key checked once before the clock starts, as the
        # SMTP client logs in before `idle` times it.
        api.inboxes.get(sender.address, request_options=NO_RETRIES)
        gc.collect()
        with cpu_meter(server) as meter:
            for i in range(count):
                t0 = time.perf_counter()
                api.inboxes.messages.send(
                    sender.address,
                    to=[watcher.address],
                    subject=f"api idle {i}",
                    text=api_text(i),
                    request_options=NO_RETRIES,
                )
                sent = time.perf_counter()
                latencies.append(thread.wait_exists(base + i + 1) - sent)
                sends.append(sent - t0)
            cpu, wall = meter()

    section = Section(
        f"API send to IDLE: {count} messages sent one at a time with the agentmail SDK "
        "(messages.send, plain HTTP), time from send returning to '* n EXISTS' at a client "
        "idling on INBOX"
    )
    for p in (50, 95, 99):
        section.add(f"send -> EXISTS p{p}", ms(percentile(latencies, p)), "ms")
    section.add("send -> EXISTS max", ms(max(latencies)), "ms")
    section.add("send -> EXISTS min", ms(min(latencies)), "ms")
    section.add("send latency p50 (one client)", ms(percentile(sends, 50)), "ms  (request -> 200)")
    whole = [a + b for a, b in zip(sends, latencies, strict=True)]
    section.add("request -> EXISTS p50", ms(percentile(whole, 50)), "ms  (the whole way)")
    section.add("server CPU", f"{cpu / count * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    summary.add(
        API_IDLE_LABELS[0],
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {max(latencies) * 1000:.1f} ms",
        "~0: the EXISTS comes with the response",
    )
    summary.add(
        API_IDLE_LABELS[1],
        f"{percentile(whole, 50) * 1000:.1f} / {percentile(whole, 99) * 1000:.1f} ms",
        "the whole way; SMTP's: idle's MAIL FROM -> EXISTS",
    )
    return section


def _run(bench: Bench) -> Section:
    return bench_api_idle(
        bench.servers[0], bench.senders[0], bench.watcher, bench.counts.idle_messages, bench.summary
    )


PHASE = Phase("api_idle", _run, lambda counts, nodes: API_IDLE_LABELS)
