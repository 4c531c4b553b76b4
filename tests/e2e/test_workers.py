"""`mailgate serve` with `[server] workers = 2`: one parent, two worker processes on the same
ports. Connections spread over both, and what one worker commits every other one tells its
clients as it would across nodes (SQLite through the parent's relay, PostgreSQL through
NOTIFY); a killed worker is started again, SIGTERM and Ctrl-C stop them all, and mail queued
through both is sent once."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_message
from tests.dnsserver import ZoneServer
from tests.e2e.process import Serve, submit
from tests.e2e.world import (
    REMOTE,
    create_inbox,
    eventually,
    mailgate,
    outbound_settings,
    point_mx,
    wait_queue,
    write_config,
)
from tests.harness import Account, client_tls
from tests.imap.helpers import start_idle, stop_idle
from tests.smtppeer import SMTPPeer
from tests.transcript import Transcript

_WORKER = re.compile(r'^mailgate_worker\{pid="(\d+)",worker="(\d+)"\} 1', re.M)
_IMAP_SESSIONS = re.compile(r'^mailgate_sessions\{protocol="imap"\} (\S+)', re.M)


@pytest.fixture
def start(database: str, tmp_path: Path) -> Iterator[Any]:
    """start(**sections) -> (a running `serve` with two workers, its config); stopped at the
    end."""
    started: list[Serve] = []

    def run(**sections: Any) -> tuple[Serve, Path]:
        sections.setdefault("server", {})["workers"] = 2
        config = write_config(tmp_path / "node", database_url=database, **sections)
        mailgate(config, "db", "upgrade")  # here, where mailgate is imported already
        # Three processes start on a shared 2-core machine: more time than one gets.
        serve = Serve(config, tmp_path, timeout=180)
        started.append(serve)
        return serve, config

    yield run
    for serve in started:
        serve.kill()


def worker_pids(serve: Serve) -> list[int]:
    """The pids `serve` printed: "  workers      2 processes (pids 11, 12)"."""
    line = next(line for line in serve.stdout if line.startswith("  workers "))
    return [int(p) for p in re.findall(r"\d+", line.split("pids", 1)[1])]


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def scrape(serve: Serve) -> tuple[int, int, float]:
    """One GET /metrics on a connection of its own: (worker, pid, IMAP sessions) of the worker
    that took it."""
    url = f"http://127.0.0.1:{serve.ports['api']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as answer:
        text = answer.read().decode()
    worker = _WORKER.search(text)
    sessions = _IMAP_SESSIONS.search(text)
    assert worker is not None, text[:2000]
    assert sessions is not None, text[:2000]
    return int(worker.group(2)), int(worker.group(1)), float(sessions.group(1))


def per_worker(serve: Serve, timeout: float = 30) -> dict[int, tuple[int, float]]:
    """Worker -> (pid, IMAP sessions), scraping until both workers answered (bounded)."""
    seen: dict[int, tuple[int, float]] = {}

    def both() -> dict[int, tuple[int, float]] | None:
        worker, pid, sessions = scrape(serve)
        seen[worker] = (pid, sessions)
        return seen if len(seen) == 2 else None

    return eventually(both, timeout, "a scrape answered by each worker")


def imap_session(serve: Serve, account: Account) -> Transcript:
    raw = socket.create_connection(("127.0.0.1", serve.ports["imaps"]), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session = Transcript(client_tls().wrap_socket(raw))
    session.ok(f'LOGIN "{account.address}" "{account.key}"')
    return session


def sessions_on_both(serve: Serve, account: Account, at_least: int) -> list[Transcript]:
    """At least `at_least` logged-in IMAP sessions, more until each worker holds some (which
    worker accepts a connection is the kernel's choice): /metrics of each worker counts them."""
    sessions = [imap_session(serve, account) for _ in range(at_least)]
    for _ in range(40):
        counts = per_worker(serve)
        if all(n > 0 for _, n in counts.values()) and sum(n for _, n in counts.values()) == len(
            sessions
        ):
            return sessions
        sessions.append(imap_session(serve, account))
    raise AssertionError(f"connections never reached both workers: {counts}")


# -------------------------------------------------------------------- tests


def test_connections_spread_and_idle_hears_the_other_worker(start: Any) -> None:
    serve, config = start()
    pids = worker_pids(serve)
    assert len(pids) == 2
    assert children(serve.proc.pid) == set(pids)
    alice = create_inbox(config, "alice")
    idlers = sessions_on_both(serve, alice, at_least=6)
    assert {pid for pid, _ in per_worker(serve).values()} == set(pids)
    try:
        tags = []
        for session in idlers:
            session.ok("SELECT INBOX")
            tags.append(start_idle(session))
        # Submissions land on either worker; each is heard by the IDLE sessions of both.
        for n in range(1, 4):
            sent = time.monotonic()
            submit(serve, alice, [alice.address], f"over the relay {n}")
            for session in idlers:
                session.read_until(lambda line, n=n: line == f"* {n} EXISTS".encode(), 5)
            assert time.monotonic() - sent < 5
        for session, tag in zip(idlers, tags, strict=True):
            stop_idle(session, tag)
    finally:
        for session in idlers:
            session.close()


def test_concurrent_appends_through_both_workers_get_ascending_uids(start: Any) -> None:
    serve, config = start()
    alice = create_inbox(config, "alice")
    # Sessions on both workers (proven by their metrics), then APPENDs from all at once.
    for session in sessions_on_both(serve, alice, at_least=4):
        session.close()
    per_client = 10

    def append(client: int) -> list[int]:
        with imaplib.IMAP4_SSL(
            "127.0.0.1", serve.ports["imaps"], ssl_context=client_tls(), timeout=30
        ) as imap:
            imap.login(alice.address, alice.key)
            uids = []
            for i in range(per_client):
                message = make_message(alice.address, alice.address, f"c{client} m{i}")
                typ, data = imap.append("INBOX", None, None, message)
                assert typ == "OK", data
                found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                assert found is not None, data
                uids.append(int(found.group(1)))
            return uids

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(append, range(6)))
    for uids in results:
        assert uids == sorted(uids)  # each client's own APPENDs got rising UIDs
    everything = [uid for uids in results for uid in uids]
    assert len(set(everything)) == len(everything) == 6 * per_client
    with imaplib.IMAP4_SSL(
        "127.0.0.1", serve.ports["imaps"], ssl_context=client_tls(), timeout=30
    ) as imap:
        imap.login(alice.address, alice.key)
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("SEARCH", "ALL")
        assert typ == "OK"
        listed = [int(u) for u in data[0].split()]
    assert listed == sorted(everything)


def test_a_killed_worker_is_started_again_and_serves(start: Any) -> None:
    serve, config = start()
    alice = create_inbox(config, "alice")
    first, second = worker_pids(serve)
    os.kill(first, signal.SIGKILL)
    fresh = eventually(
        lambda: (children(serve.proc.pid) - {second}) - {first} or None,
        30,
        "a new worker in place of the killed one",
    )
    assert not alive(first)
    (replacement,) = fresh
    # It serves (a start takes long on a loaded machine): the parent says so, a scrape reaches
    # it, and logins keep working.
    eventually(
        lambda: f"worker 0 (pid {replacement}) is serving" in serve.log or None,
        180,
        "the new worker serving",
    )
    assert replacement in {pid for pid, _ in per_worker(serve).values()}
    for _ in range(6):
        imap_session(serve, alice).close()
    assert f"worker 0 (pid {first}) ended (killed by SIGKILL)" in serve.log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_every_worker_cleanly(start: Any, sig: int) -> None:
    serve, config = start()
    pids = worker_pids(serve)
    alice = create_inbox(config, "alice")
    open_sessions = sessions_on_both(serve, alice, at_least=2)
    finished = serve.stop(sig)
    assert finished.code == 0, finished.stderr
    assert finished.stdout.endswith("mailgate: stopping\nmailgate: stopped\n")
    assert not [pid for pid in pids if alive(pid)]
    for session in open_sessions:  # each was told goodbye by its worker
        lines = session.read_until(lambda line: line.startswith(b"* BYE"), 10)
        assert lines[-1].startswith(b"* BYE")
        session.close()
    assert "Traceback" not in finished.stderr


def test_workers_stop_when_their_parent_is_killed(start: Any) -> None:
    serve, _ = start()
    pids = worker_pids(serve)
    serve.proc.kill()
    serve.proc.wait(timeout=10)
    eventually(lambda: not any(alive(pid) for pid in pids) or None, 30, "no orphaned workers")


def test_mail_queued_through_both_workers_is_sent_once(start: Any) -> None:
    with ZoneServer() as zone, SMTPPeer() as remote:
        point_mx(zone)
        serve, config = start(**outbound_settings(zone, remote.port))
        senders = [create_inbox(config, f"s{i}") for i in range(4)]
        recipients = [f"bob@{REMOTE}", f"carol@{REMOTE}"]
        jobs = [(senders[i % 4], recipients[: 1 + i % 2], f"m{i}") for i in range(30)]
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda job: submit(serve, *job), jobs))
        expected = {(subject, r) for _, to, subject in jobs for r in to}

        def arrived() -> Counter[tuple[str, str]]:
            return Counter(
                (str(t.message()["Subject"]), r) for t in remote.messages for r in t.rcpt_tos
            )

        eventually(lambda: set(arrived()) >= expected or None, 60, "every recipient's mail")
        wait_queue(config, lambda rows: rows == [], "the queue to empty")
        counts = arrived()
        assert set(counts) == expected
        assert {k: n for k, n in counts.items() if n != 1} == {}
