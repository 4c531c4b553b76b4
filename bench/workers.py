"""Phase `workers`: the same load on `mailgate serve` with [server] workers = 1 and = 2: SMTP
submission (messages/s, N clients over implicit TLS with AUTH, each message to a hosted inbox)
and an IMAP loop (loops/s, N clients each repeating SELECT INBOX, a header-sync UID FETCH of
the mailbox and NOOP). Each run starts its own server (on the run's database, or SQLite in a
directory of its own) and stops it afterwards; the other phases' servers keep workers = 1."""

from __future__ import annotations

import smtplib
import tempfile
import threading
import time
import tomllib
import uuid
from pathlib import Path

from clients import RawIMAP, client_tls
from common import DOMAIN, HOST, SOCKET_TIMEOUT, Account, BenchError
from phase import Bench, Phase
from report import Section, progress
from server import Server, create_inbox, write_config

IMAP_SECONDS = 10.0  # each run's IMAP loop lasts this long
FETCH_MESSAGES = 50  # what the header sync fetches
COUNTS = (1, 2)


def workers_labels() -> list[str]:
    return [
        f"{what}, workers = {n}"
        for what in ("SMTP submission msgs/s", "IMAP loops/s (SELECT, UID FETCH, NOOP)")
        for n in COUNTS
    ]


def _message(sender: str, to: str, n: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: workers {n}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\n\r\nbody {n}\r\n"
    ).encode()


def _submit(port: int, senders: list[Account], to: str, total: int) -> float:
    """Messages per second, `total` over one connection per sender, all at once."""
    errors: list[BaseException] = []
    share = total // len(senders)

    def client(account: Account) -> None:
        try:
            with smtplib.SMTP_SSL(HOST, port, context=client_tls(), timeout=SOCKET_TIMEOUT) as s:
                s.login(account.address, account.key)
                for n in range(share):
                    s.sendmail(account.address, [to], _message(account.address, to, n))
        except BaseException as exc:  # reported below, after the others
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(a,)) for a in senders]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise BenchError(f"submission failed: {errors[0]!r}")
    return share * len(senders) / wall


def _imap_loops(port: int, account: Account, clients: int) -> float:
    """Loops per second over `clients` sessions for IMAP_SECONDS."""
    loops = [0] * clients
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(index: int) -> None:
        try:
            imap = RawIMAP(port)
            imap.login(account)
            while not stop.is_set():
                imap.select()
                imap.command(b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
                imap.command(b"NOOP")
                loops[index] += 1
            imap.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    stop.wait(IMAP_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise BenchError(f"IMAP loop failed: {errors[0]!r}")
    return sum(loops) / wall


def _measure(bench: Bench, workers: int, root: Path) -> tuple[float, float]:
    database = tomllib.loads(bench.config.read_text()).get("database", {}).get("url", "")
    workdir = root / f"workers{workers}"
    workdir.mkdir()
    config = workdir / "mailgate.toml"
    write_config(
        config,
        workdir / "data",
        database,
        {"server.workers": workers, "limits.messages_per_hour": 0, "auth.failure_delay": 0.0},
    )
    server = Server(workdir, config, bench.env, f"workers = {workers}")
    server.start()
    try:
        clients = bench.counts.clients
        tag = f"w{workers}-{time.monotonic_ns()}"
        senders = [
            create_inbox(config, bench.env, f"workers-{tag}-{i}@{DOMAIN}") for i in range(clients)
        ]
        reader = create_inbox(config, bench.env, f"workers-{tag}-reader@{DOMAIN}")
        port = server.ports["submissions"]
        progress(f"workers: {workers} worker(s), submitting {bench.counts.messages} messages")
        per_second = _submit(port, senders, reader.address, bench.counts.messages)
        _submit(port, senders[:1], senders[0].address, FETCH_MESSAGES)  # the mailbox to sync
        progress(f"workers: {workers} worker(s), IMAP loop for {IMAP_SECONDS:.0f} s")
        loops = _imap_loops(server.ports["imaps"], senders[0], clients)
    finally:
        server.stop()
    return per_second, loops


def _run(bench: Bench) -> Section:
    section = Section(f"Worker processes ([server] workers = {' vs '.join(map(str, COUNTS))})")
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-workers-") as root:
        for workers in COUNTS:
            results[workers] = _measure(bench, workers, Path(root))
    labels = workers_labels()
    for i, workers in enumerate(COUNTS):
        smtp, imap = results[workers]
        section.add(f"SMTP submission, workers = {workers}", f"{smtp:.1f}", "msgs/s")
        section.add(f"IMAP loop, workers = {workers}", f"{imap:.1f}", "loops/s")
        bench.summary.add(labels[i], f"{smtp:.1f}")
        bench.summary.add(labels[len(COUNTS) + i], f"{imap:.1f}")
    return section


PHASE = Phase("workers", _run, lambda counts, nodes: workers_labels(), default=False)
