"""Phase `api_list`: an inbox of many messages paged through over the HTTP API, 100 a page,
with the agentmail SDK and with a bare HTTP client (the SDK's parsing is half the cost)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from clients import NO_RETRIES, RawIMAP, api_client, api_url
from common import SOCKET_TIMEOUT, Account, BenchError, Target
from fetch import append_archive
from meters import cpu_meter
from phase import Bench, Phase
from report import Section, Summary, ms, percentile, progress

PAGE = 100  # the API's largest page

# One page: its messages' ids and the next page's token (None after the last).
GetPage = Callable[[str | None], tuple[list[str], str | None]]


def api_list_labels(count: int) -> list[str]:
    return [
        f"API list {count} msgs, {PAGE}/page: msg/s, page p50/p99",
        "  the same without the SDK (httpx + json)",
    ]


@dataclass
class Listing:
    pages: list[float]  # each page: request -> response parsed
    firsts: list[float]  # the first page of each run (the newest messages)
    lasts: list[float]  # the last page of each run (the oldest)
    wall: float
    cpu: float  # the server's
    client_cpu: float  # ours: the client parsing the pages

    def messages_per_second(self, count: int) -> float:
        return count * len(self.firsts) / self.wall


def page_through(server: Target, get_page: GetPage, count: int, runs: int) -> Listing:
    """Page through the whole list `runs` times; each run must list every message once."""
    listing = Listing([], [], [], 0.0, 0.0, 0.0)
    gc.collect()
    with cpu_meter(server) as meter:
        client0 = time.process_time()
        for run in range(runs):
            seen: set[str] = set()
            listed = 0
            token: str | None = None
            times: list[float] = []
            while True:
                t0 = time.perf_counter()
                ids, token = get_page(token)
                times.append(time.perf_counter() - t0)
                listed += len(ids)
                seen.update(ids)
                if token is None:
                    break
            if listed != count or len(seen) != count:
                raise BenchError(
                    f"run {run + 1}: listed {listed} messages, {len(seen)} different, of {count}"
                )
            listing.pages += times
            listing.firsts.append(times[0])
            listing.lasts.append(times[-1])
        listing.client_cpu = time.process_time() - client0
        listing.cpu, listing.wall = meter()
    return listing


def bench_api_list(
    server: Target, owner: Account, count: int, runs: int, summary: Summary
) -> Section:
    progress(f"api_list: APPEND {count} messages")
    imap = RawIMAP(server.ports["imaps"])
    try:
        imap.login(owner)
        append_seconds, append_bytes = append_archive(imap, owner.address, count)
        exists = imap.select()
    finally:
        imap.close()
    if exists != count:
        raise BenchError(f"APPENDed {count} messages but SELECT says {exists} EXISTS")

    progress(f"api_list: {runs} x paging through {count} messages, {PAGE} a page, SDK and httpx")
    with api_client(server.ports["api"], owner) as api:

        def sdk_page(token: str | None) -> tuple[list[str], str | None]:
            page = api.inboxes.messages.list(
                owner.address, limit=PAGE, page_token=token, request_options=NO_RETRIES
            )
            return [m.message_id for m in page.messages], page.next_page_token

        # One pass untimed, so that neither client pays for the server's cold caches.
        page_through(server, sdk_page, count, 1)
        sdk = page_through(server, sdk_page, count, runs)

    url = f"{api_url(server.ports['api'])}/v0/inboxes/{owner.address}/messages"
    with httpx.Client(
        timeout=SOCKET_TIMEOUT, headers={"Authorization": f"Bearer {owner.key}"}
    ) as http:

        def bare_page(token: str | None) -> tuple[list[str], str | None]:
            params = {"limit": str(PAGE)} | ({"page_token": token} if token else {})
            response = http.get(url, params=params)
            response.raise_for_status()
            page = response.json()
            return [m["message_id"] for m in page["messages"]], page.get("next_page_token")

        bare_page(None)  # connected
        bare = page_through(server, bare_page, count, runs)

    n = len(sdk.pages)
    section = Section(
        f"API message list: an INBOX of {count} messages paged through {runs} times (limit="
        f"{PAGE}, page_token, newest first) with the agentmail SDK (messages.list), then with "
        "httpx and json alone; one client, every message listed once each run"
    )
    section.add(
        "APPEND (LITERAL+, 50 in flight)",
        f"{count / append_seconds:.0f}",
        f"messages/s  ({append_bytes / count / 1024:.1f} KiB each; filling the INBOX)",
    )
    section.add("pages", str(n), f"a client ({n // runs} a run)")

    def both(label: str, value: Callable[[Listing], str], note: str) -> None:
        section.add(label, f"{value(sdk)} / {value(bare)}", f"{note}  (SDK / httpx)")

    both("pages/s", lambda x: f"{n / x.wall:.1f}", "")
    both("messages listed/s", lambda x: f"{x.messages_per_second(count):.0f}", "")
    both("page p50", lambda x: ms(percentile(x.pages, 50)), "ms, request -> parsed")
    both("page p95", lambda x: ms(percentile(x.pages, 95)), "ms")
    both("page p99", lambda x: ms(percentile(x.pages, 99)), "ms")
    both("page max", lambda x: ms(max(x.pages)), "ms")
    both("first page p50", lambda x: ms(percentile(x.firsts, 50)), "ms, the newest messages")
    both("last page p50", lambda x: ms(percentile(x.lasts, 50)), "ms, the oldest (deepest)")
    both("server CPU", lambda x: f"{x.cpu / n * 1000:.2f}", "ms/page")
    both("client CPU", lambda x: f"{x.client_cpu / n * 1000:.2f}", "ms/page")
    labels = api_list_labels(count)
    for label, x in zip(labels, (sdk, bare), strict=True):
        summary.add(
            label,
            f"{x.messages_per_second(count):.0f} msg/s, {percentile(x.pages, 50) * 1000:.1f} / "
            f"{percentile(x.pages, 99) * 1000:.1f} ms",
        )
    return section


def _run(bench: Bench) -> Section:
    return bench_api_list(
        bench.servers[0],
        bench.lister,
        bench.counts.list_messages,
        bench.counts.list_runs,
        bench.summary,
    )


PHASE = Phase("api_list", _run, lambda counts, nodes: api_list_labels(counts.list_messages))
