#!/usr/bin/env python3
"""mailgate benchmark: start a real `mailgate serve`, load it over loopback, print numbers.

    .venv/bin/python bench/bench.py [--quick]
                                    [--only throughput,idle,crossnode,fetch,outbound,inbound,memory]
                                    [--database-url postgresql+asyncpg://postgres@127.0.0.1/test]
                                    [--nodes N]

The server runs as a subprocess (its CPU time and memory are read from /proc, apart from the
load generator) with a temporary data directory, a generated config and ports picked by the
server itself (port 0, read back from its "listening" lines). Inboxes are created with
`mailgate inbox create --json`. Measurements (see bench/README.md for what each number means):

- throughput: SMTP submission over implicit TLS with AUTH, N concurrent clients.
- idle: latency from the SMTP 250 after DATA to the "* n EXISTS" seen by an idling IMAP client.
- crossnode (--nodes 2 or more, PostgreSQL): the same, submitting through the first node and
  idling on the last, so the change travels by LISTEN/NOTIFY.
- fetch: the header-sync FETCHes a mail client runs on opening a folder of 1,000 messages.
- outbound: mail submitted for another domain, DKIM-signed by the server's delivery worker and
  delivered to a local SMTP sink found through MX records on a loopback DNS server.
- inbound: mail from another domain straight to the MX port, DKIM-signed by the benchmark, with
  SPF/DKIM/DMARC evaluated by the server against the same loopback DNS server.
- memory: server RSS/PSS per idle IMAP connection (TLS, logged in, INBOX selected, IDLE).

With --nodes N (N >= 2, PostgreSQL only) N servers share one fresh database, each with its own
data directory and ports; the throughput clients are spread over them round-robin, and the other
single-server phases run on the first node.

This is a script, not a test: it prints numbers and judges only correctness (every message
arrived, every FETCH returned every message). It stops by itself and removes what it made.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime
import gc
import imaplib
import importlib.metadata
import importlib.util
import itertools
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import queue
import random
import re
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HOST = "127.0.0.1"
# The `mailgate` command of this interpreter's installation (the project venv's).
MAILGATE = (sys.executable, "-m", "mailgate.cli")
DOMAIN = "bench.test"
PHASES = ("throughput", "idle", "crossnode", "fetch", "outbound", "inbound", "memory")
WORLD_PHASES = ("outbound", "inbound")  # need the loopback DNS server (and the SMTP sink)
MULTI_NODE_PHASES = ("crossnode",)  # need --nodes 2 or more
SOCKET_TIMEOUT = 60.0
READY_TIMEOUT = 60.0
IDLE_EXISTS_TIMEOUT = 10.0
MEMORY_TIMEOUT = 600.0

# The DESIGN.md "Speed budget" figures the results are compared with.
FETCH_BUDGET_MS = 24.0  # 2 x Dovecot's 12 ms for the ENVELOPE header sync of 1,000 messages
CROSSNODE_AIM_MS = 100.0  # issue 3: a change reaches other nodes' IDLE within 1 s, aim 100 ms
CROSSNODE_LIMIT_MS = 1000.0
IDLE_SESSION_BUDGET_KIB = 32.0

# The outbound and inbound phases: the world as the loopback DNS server describes it.
SERVER_HOSTNAME = "localhost"  # [server] hostname: the authserv-id of Authentication-Results
SINK_DOMAIN = "sink.test"  # outbound recipients' domain; its MX is the benchmark's SMTP sink
SINK_HOST = "mx.sink.test"
WORLD_DOMAIN = "world.test"  # inbound senders' domain, with SPF, two DKIM keys and DMARC
WORLD_HELO = "mail.world.test"
ZONE_TTL = 300  # seconds: cached by the server's resolver, as real records are
OUTBOUND_TIMEOUT = 300.0  # for the last message to reach the sink after the last submission
DKIM_SAMPLE = 50  # outbound messages whose two signatures the sink side verifies with dkimpy

ENVELOPE_SYNC = b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"
THUNDERBIRD_SYNC = (
    b"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject "
    b"Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type "
    b"Reply-To)])"
)
BODYSTRUCTURE_SYNC = b"UID FETCH 1:* (BODYSTRUCTURE)"


class BenchError(Exception):
    """A measurement could not be completed; the message says why."""


@dataclass(frozen=True)
class Counts:
    messages: int  # SMTP throughput: total messages over all clients
    clients: int
    idle_messages: int
    crossnode_messages: int
    fetch_messages: int
    fetch_runs: int
    connections: int
    outbound_messages: int
    inbound_messages: int


FULL = Counts(
    messages=800,
    clients=8,
    idle_messages=200,
    crossnode_messages=200,
    fetch_messages=1000,
    fetch_runs=20,
    connections=2000,
    outbound_messages=500,
    inbound_messages=500,
)
QUICK = Counts(
    messages=80,
    clients=8,
    idle_messages=20,
    crossnode_messages=20,
    fetch_messages=200,
    fetch_runs=5,
    connections=200,
    outbound_messages=80,
    inbound_messages=80,
)


@dataclass(frozen=True)
class Account:
    address: str
    key: str


# ------------------------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# ------------------------------------------------------------------------------- output


@dataclass
class Section:
    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, label: str, value: str, note: str = "") -> None:
        self.rows.append((label, value, note))

    def print(self) -> None:
        print(f"\n== {self.title}")
        w0 = max((len(label) for label, _, _ in self.rows), default=0)
        w1 = max((len(value) for _, value, _ in self.rows), default=0)
        for label, value, note in self.rows:
            print(f"  {label:<{w0}}  {value:>{w1}}  {note}".rstrip())
        sys.stdout.flush()


@dataclass
class Summary:
    setup: str = ""  # what ran: database and nodes, shown in the heading
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, what: str, result: str, budget: str = "") -> None:
        self.rows.append((what, result, budget))

    def failed(self, start: int, labels: list[str], reason: str) -> None:
        """A phase failed: replace whatever rows it added from `start` on by its usual rows,
        marked FAILED, so that every run of the same phases prints the same rows."""
        del self.rows[start:]
        reason = reason.splitlines()[0] if reason else ""
        reason = reason if len(reason) <= 70 else reason[:67] + "..."
        for i, label in enumerate(labels):
            self.rows.append((label, "FAILED", reason if i == 0 else ""))

    def print(self) -> None:
        header = ("measurement", "result", "budget / reference")
        rows = [header, *self.rows]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        rule = "-" * (w0 + w1 + 4 + max(len(r[2]) for r in rows))
        print(f"\n== Summary ({self.setup})" if self.setup else "\n== Summary")
        print("  " + rule)
        for i, (what, result, budget) in enumerate(rows):
            print(f"  {what:<{w0}}  {result:>{w1}}  {budget}".rstrip())
            if i == 0:
                print("  " + rule)
        print("  " + rule)
        sys.stdout.flush()


def progress(text: str) -> None:
    # Progress goes to stderr, so stdout holds only the report.
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- TLS


def client_tls() -> ssl.SSLContext:
    """The server's certificate is self-signed and generated for this run: do not verify it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ------------------------------------------------------------------------------- server


class Server:
    """One `mailgate serve` subprocess, in its own session so that ^C reaches only us."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str], name: str = "") -> None:
        self.name = name  # "node A", ... when there are several; empty for one server
        self.workdir = workdir
        self.config = config
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.log_path = workdir / "server.log"
        self.starts = 0
        self._clock: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process; `wait_ready` waits for it (so several can start together)."""
        self.starts += 1
        self.log_path = self.workdir / f"server-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*MAILGATE, "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._clock = _process_cpu_clock(self.proc.pid)

    def wait_ready(self) -> None:
        assert self.proc is not None
        what = f"server {self.name}" if self.name else "server"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if re.search(r"^ready$", text, re.MULTILINE):
                self.ports = {
                    m.group(1): int(m.group(2))
                    for m in re.finditer(r"^\s*listening\s+(\S+)\s+\S+:(\d+)", text, re.MULTILINE)
                }
                if "imaps" not in self.ports or "submissions" not in self.ports:
                    raise BenchError(f"{what} listed no imaps/submissions port:\n{text}")
                return
            if self.proc.poll() is not None:
                raise BenchError(f"{what} exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        raise BenchError(f"{what} not ready after {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole server process (all its threads, live or gone)."""
        if self._clock is not None:
            return time.clock_gettime(self._clock)
        # /proc/<pid>/stat counts in clock ticks (10 ms), too coarse for one FETCH but fine
        # over a phase.
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self) -> dict[str, int]:
        """Rss, Pss and Anonymous (KiB) from smaps_rollup."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Anonymous"):
                out[name] = int(rest.split()[0])
        return out

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def _die_with_parent() -> None:
    """In the server child: get SIGTERM if the benchmark dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _process_cpu_clock(pid: int) -> int | None:
    """The CLOCK_PROCESS_CPUTIME_ID-like clock of another process (ns resolution), if any."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            return None
        time.clock_gettime(clock.value)  # readable by us?
        return clock.value
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def cpu_meter(*servers: Server) -> Iterator[Callable[[], tuple[float, float]]]:
    """Yields a function returning (CPU seconds of all the servers, wall seconds) since entry."""
    cpu0, wall0 = sum(s.cpu_seconds() for s in servers), time.perf_counter()
    yield lambda: (sum(s.cpu_seconds() for s in servers) - cpu0, time.perf_counter() - wall0)


def postgres_cpu_seconds() -> float | None:
    """User + system CPU of every `postgres` process on this machine (the PostgreSQL server, when
    it runs here: backends, WAL writer, ...), or None if there is none. A backend that exits
    in between takes its CPU with it; the servers' pools keep theirs open."""
    total = 0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")] != "postgres":
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
        found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


def cpu_note(cpu: float, wall: float) -> str:
    return f"{cpu:.2f} s  ({cpu / wall * 100:.0f}% of one core over {wall:.2f} s)"


# ------------------------------------------------------------------------------- database


class Postgres:
    """A fresh database for the run on the server named by the URL, dropped afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"mailgate_bench_{uuid.uuid4().hex[:10]}"
        self.created = False
        self.version = "?"

    def _admin_dsn(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(scheme="postgresql"))

    @property
    def run_url(self) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{self.name}"))

    async def _execute(self, sql: str) -> str:
        import asyncpg

        conn = await asyncpg.connect(self._admin_dsn(), timeout=30)
        try:
            await conn.execute(sql)
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    def create(self) -> None:
        self.version = asyncio.run(self._execute(f'CREATE DATABASE "{self.name}"'))
        self.created = True

    def drop(self) -> None:
        if self.created:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.created = False


# ------------------------------------------------------------------------------- setup


def write_config(path: Path, data_dir: Path, database_url: str, extra: dict[str, Any]) -> None:
    settings: dict[str, dict[str, Any]] = {
        "server": {"hostname": SERVER_HOSTNAME, "bind": HOST, "data_dir": str(data_dir)},
        "database": {"url": database_url},
        "imap": {"port": 0, "tls_port": 0},
        "smtp": {"submission_port": 0, "tls_port": 0, "mx_port": 0},
    }
    for dotted, value in extra.items():
        section, key = dotted.split(".", 1)
        settings.setdefault(section, {})[key] = value
    lines: list[str] = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_set(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or "." not in name:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return name.strip(), value


def server_env() -> dict[str, str]:
    # MAILGATE_* variables would override the generated config (ports, database): drop them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def db_upgrade(config: Path, env: dict[str, str]) -> None:
    """Apply the migrations once, before several nodes start on the same database."""
    done = subprocess.run(
        [*MAILGATE, "db", "upgrade", "--config", str(config)],
        capture_output=True,
        cwd=config.parent,  # `-m` puts the cwd first on sys.path: no checkout there
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"db upgrade failed: {done.stderr.decode(errors='replace')}")


def create_inbox(config: Path, env: dict[str, str], address: str) -> Account:
    done = subprocess.run(
        [*MAILGATE, "inbox", "create", address, "--json", "--config", str(config)],
        capture_output=True,
        cwd=config.parent,  # `-m` puts the cwd first on sys.path: no checkout there
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"inbox create {address} failed: {done.stderr.decode(errors='replace')}")
    data = json.loads(done.stdout)
    return Account(data["inbox"]["address"], data["api_key"])


def raise_fd_limit(needed: int) -> int:
    """Raise our soft RLIMIT_NOFILE (the server and client workers inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


# ------------------------------------------------------------------------------- messages

# Word lists read better as one string each than as one item per line.
_WORDS = (  # noqa: SIM905
    "agent invoice meeting report quarterly update please review attached draft schedule "
    "server deploy customer request ticket status follow up tomorrow thanks regards budget "
    "contract release notes migration database backup weekly summary action items"
).split()
_NAMES = (  # noqa: SIM905
    "Alice Martin|Bob Chen|Carol Diaz|Dan Okafor|Eve Novak|Frank Muller|Grace Kim|Heidi Larsen|"
    "Ivan Petrov|Judy Rossi|Mallory Smith|Niaj Patel|Olivia Brown|Peggy Wong|Rupert Klein"
).split("|")
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()  # noqa: SIM905


def _text(rng: random.Random, size: int) -> str:
    """Wrapped prose of about `size` bytes."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(11)).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines)


def submission_message(
    sender: str, recipient: str, n: int, size: int = 2048, subject: str = "bench message"
) -> bytes:
    rng = random.Random(n)
    head = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject} {n}\r\n"
        f"Date: {format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return (head + _text(rng, size - len(head)) + "\r\n").encode()


def _person(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    local = name.lower().replace(" ", ".")
    domain = rng.choice(("example.com", "example.org", "corp.example.net", DOMAIN))
    return name, f"{local}@{domain}"


def archive_message(rng: random.Random, n: int, owner: str) -> tuple[bytes, str, str]:
    """A realistic ~3 KB message, its APPEND flags and its INTERNALDATE."""
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=n * 37 + rng.randint(0, 30)
    )
    name, address = _person(rng)
    subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    headers = [
        f"Return-Path: <{address}>",
        f"Received: from mx.example.com (mx.example.com [192.0.2.{n % 250 + 1}]) by "
        f"localhost with ESMTPS id {rng.getrandbits(48):012x}; {format_datetime(when)}",
        f'From: "{name}" <{address}>',
        f"To: {owner}",
    ]
    if rng.random() < 0.3:
        cc_name, cc = _person(rng)
        headers.append(f'Cc: "{cc_name}" <{cc}>, {_person(rng)[1]}')
    headers += [
        f"Subject: {'Re: ' if n % 4 == 1 else ''}{subject} #{n}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{n}.{rng.getrandbits(64):016x}@example.com>",
    ]
    if n % 4 == 1:
        parent = f"<{n - 1}.{rng.getrandbits(64):016x}@example.com>"
        headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
    headers.append("MIME-Version: 1.0")
    kind = n % 10
    if kind in (3, 7):  # multipart/alternative: text and HTML
        boundary = f"alt-{rng.getrandbits(64):016x}"
        text = _text(rng, 900)
        html = "<html><body><p>" + _text(rng, 1000).replace("\r\n", "</p>\r\n<p>") + "</p>"
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{html}</body></html>\r\n--{boundary}--\r\n"
        )
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    elif kind == 5:  # multipart/mixed with a small attachment
        boundary = f"mix-{rng.getrandbits(64):016x}"
        blob = base64.encodebytes(rng.randbytes(900)).decode().replace("\n", "\r\n")
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{_text(rng, 1200)}\r\n"
            f'--{boundary}\r\nContent-Type: application/pdf; name="report-{n}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="report-{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{blob}--{boundary}--\r\n"
        )
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    else:
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"]
        body = _text(rng, 2300) + "\r\n"
    data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode()
    flags = []
    if rng.random() < 0.8:
        flags.append("\\Seen")
    if rng.random() < 0.05:
        flags.append("\\Flagged")
    if rng.random() < 0.1:
        flags.append("\\Answered")
    date = f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year} {when:%H:%M:%S} +0000"
    return data, " ".join(flags), date


# ------------------------------------------------------------------------------- IMAP client


@dataclass
class Reply:
    status: bytes  # the tagged line
    lines: list[bytes]  # untagged lines (literal contents not included)
    fetches: int  # "* n FETCH" responses
    received: int  # bytes read while waiting for it


class RawIMAP:
    """A minimal blocking IMAP client over TLS: exact timing and no per-line overhead."""

    def __init__(self, port: int, timeout: float = SOCKET_TIMEOUT) -> None:
        raw = socket.create_connection((HOST, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = client_tls().wrap_socket(raw)
        self.buf = bytearray()
        self._tags = itertools.count(1)
        self._received = 0
        greeting = self.read_line()
        if not greeting.startswith(b"* OK"):
            raise BenchError(f"unexpected IMAP greeting {greeting!r}")

    def tag(self) -> bytes:
        return b"b%d" % next(self._tags)

    def _fill(self) -> float:
        data = self.sock.recv(1 << 18)
        if not data:
            raise BenchError("the IMAP server closed the connection")
        now = time.perf_counter()
        self._received += len(data)
        self.buf += data
        return now

    def read_line(self) -> bytes:
        while (nl := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, text: bytes, *, keep: bool = True) -> Reply:
        tag = self.tag()
        self.send(tag + b" " + text + b"\r\n")
        return self.read_reply(tag, keep=keep)

    def read_reply(self, tag: bytes, *, keep: bool = True) -> Reply:
        """Read up to the tagged reply, skipping literals ({n}) wherever they end a line."""
        buf = self.buf
        prefix = tag + b" "
        lines: list[bytes] = []
        fetches = 0
        start = scan = 0  # start of the current logical line; where to look for CRLF
        self._received = len(buf)
        while True:
            nl = buf.find(b"\r\n", scan)
            if nl < 0:
                if start > 1 << 16:
                    del buf[:start]
                    scan -= start
                    start = 0
                self._fill()
                continue
            if nl > start and buf[nl - 1] == 0x7D:  # "}": a literal follows this CRLF
                brace = buf.rfind(b"{", start, nl)
                digits = buf[brace + 1 : nl - 1].rstrip(b"+") if brace >= 0 else b""
                if digits.isdigit():
                    end = nl + 2 + int(digits)
                    while len(buf) < end:
                        self._fill()
                    scan = end
                    continue
            if buf.startswith(prefix, start):
                status = bytes(buf[start:nl])
                del buf[: nl + 2]
                if not status[len(prefix) :].startswith(b"OK"):
                    raise BenchError(f"IMAP command failed: {status!r}")
                return Reply(status, lines, fetches, self._received)
            if buf.startswith(b"* ", start) and buf.find(b" FETCH (", start, start + 24) > 0:
                fetches += 1
            if keep:
                lines.append(bytes(buf[start:nl]))
            start = scan = nl + 2

    def login(self, account: Account) -> None:
        self.command(b'LOGIN "%s" "%s"' % (account.address.encode(), account.key.encode()))

    def select(self, mailbox: bytes = b"INBOX") -> int:
        reply = self.command(b"SELECT " + mailbox)
        for line in reply.lines:
            m = re.fullmatch(rb"\* (\d+) EXISTS", line)
            if m:
                return int(m.group(1))
        raise BenchError(f"SELECT gave no EXISTS: {reply.lines!r}")

    def status_messages(self, mailbox: bytes = b"INBOX") -> int:
        reply = self.command(b"STATUS " + mailbox + b" (MESSAGES)")
        for line in reply.lines:
            m = re.search(rb"MESSAGES (\d+)", line)
            if m:
                return int(m.group(1))
        raise BenchError(f"STATUS gave no MESSAGES: {reply.lines!r}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.settimeout(5)
            self.command(b"LOGOUT", keep=False)
        with contextlib.suppress(Exception):
            self.sock.close()


def smtp_client(port: int, account: Account) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(HOST, port, context=client_tls(), timeout=SOCKET_TIMEOUT)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(account.address, account.key)
    return client


# ------------------------------------------------------------------------------- throughput


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
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ != "OK":
            raise BenchError(f"FETCH Subject failed: {data!r}")
        subjects = []
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb"^Subject: *(.*?)\r?$", item[1], re.MULTILINE | re.IGNORECASE)
                subjects.append(m.group(1).decode(errors="replace") if m else "")
        return subjects


def bench_throughput(
    servers: list[Server],
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
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gc.collect()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    cpu0 = [s.cpu_seconds() for s in servers]
    pg0 = postgres_cpu_seconds() if postgres else None
    with cpu_meter(*servers) as meter:
        start = time.perf_counter()
        for t in threads:
            t.join(600)
        cpu, _ = meter()
    node_cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
    pg1 = postgres_cpu_seconds() if pg0 is not None else None
    if errors or any(t.is_alive() for t in threads):
        raise BenchError("; ".join(errors[:3]) or "SMTP clients did not finish in 600 s")
    wall = max(ends) - start
    flat = [x for per in latencies for x in per]

    # Recipient r receives from client r-1, which submitted through node (r-1) mod N; read it
    # back through node r mod N, so with several nodes every check crosses nodes.
    delivered = 0
    per_recipient: list[int] = []
    for r, account in enumerate(senders):
        imap = RawIMAP(servers[r % nodes].ports["imaps"])
        try:
            imap.login(account)
            n = imap.status_messages()
        finally:
            imap.close()
        per_recipient.append(n)
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
    if nodes > 1:
        verdict = "OK" if not problems and exact == total else "; ".join(problems[:2])
        section.add(
            "messages delivered exactly once",
            str(exact),
            f"(Subject of every INBOX message, read through another node; {verdict})",
        )
    section.add("wall time", f"{wall:.2f}", "s")
    section.add("throughput", f"{total / wall:.1f}", "messages/s")
    for p in (50, 95, 99):
        section.add(f"submit latency p{p}", ms(percentile(flat, p)), "ms  (MAIL FROM -> 250)")
    section.add("submit latency max", ms(max(flat)), "ms")
    section.add("server CPU", f"{cpu / total * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    if nodes > 1:
        for node, used in zip(servers, node_cpu, strict=True):
            section.add(
                f"  {node.name}", f"{used:.2f}", f"s  ({used / wall * 100:.0f}% of one core)"
            )
    if pg0 is not None and pg1 is not None:
        pg_cpu = pg1 - pg0
        section.add(
            "PostgreSQL CPU",
            f"{pg_cpu / total * 1000:.2f}",
            f"ms/message; {cpu_note(pg_cpu, wall)}  (every local postgres process)",
        )
    labels = throughput_labels(clients, nodes)
    summary.add(labels[0], f"{total / wall:.1f} msg/s", "")
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


# ------------------------------------------------------------------------------- IDLE


class IdleWatcher(threading.Thread):
    """Owns one IMAP connection in IDLE; timestamps every "* n EXISTS" as it arrives."""

    def __init__(self, imap: RawIMAP) -> None:
        super().__init__(name="idle-watcher", daemon=True)
        self.imap = imap
        self.exists: queue.Queue[tuple[int, float]] = queue.Queue()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        imap = self.imap
        try:
            imap.sock.settimeout(0.2)  # poll for `stopping`
            while not self.stopping.is_set():
                try:
                    arrived = imap._fill()
                except TimeoutError:
                    continue
                while (nl := imap.buf.find(b"\r\n")) >= 0:
                    line = bytes(imap.buf[:nl])
                    del imap.buf[: nl + 2]
                    m = re.fullmatch(rb"\* (\d+) EXISTS", line)
                    if m:
                        self.exists.put((int(m.group(1)), arrived))
            imap.sock.settimeout(SOCKET_TIMEOUT)
            imap.send(b"DONE\r\n")
            imap.read_reply(b"idle", keep=False)
        except BaseException as exc:
            self.error = exc
            self.exists.put((-1, 0.0))


IDLE_LABEL = "Delivery -> IDLE EXISTS p50/p95/p99/max"
CROSSNODE_LABEL = "Cross-node delivery -> IDLE EXISTS p50/p95/p99/max"


@dataclass
class IdleRun:
    latencies: list[float]  # 250 after DATA -> "* n EXISTS" at the idling client
    submits: list[float]  # MAIL FROM -> 250
    cpu: list[float]  # CPU seconds of each server measured, in the order given
    wall: float
    postgres_cpu: float | None = None  # CPU seconds of the local PostgreSQL, if measured


def measure_idle(
    submit_via: Server,
    idle_on: Server,
    sender: Account,
    watcher: Account,
    count: int,
    first_number: int,
    postgres: bool = False,
) -> IdleRun:
    """Submit `count` messages one at a time through one server to an inbox idling on another
    (or the same) server; time each from the 250 to the EXISTS."""
    servers = [submit_via] if idle_on is submit_via else [submit_via, idle_on]
    imap = RawIMAP(idle_on.ports["imaps"])
    smtp = None
    thread: IdleWatcher | None = None
    try:
        imap.login(watcher)
        base = imap.select()
        imap.send(b"idle IDLE\r\n")
        line = imap.read_line()
        if not line.startswith(b"+"):
            raise BenchError(f"IDLE not accepted: {line!r}")
        thread = IdleWatcher(imap)
        thread.start()
        smtp = smtp_client(submit_via.ports["submissions"], sender)
        latencies: list[float] = []
        submits: list[float] = []
        gc.collect()
        cpu0 = [s.cpu_seconds() for s in servers]
        pg0 = postgres_cpu_seconds() if postgres else None
        with cpu_meter(*servers) as meter:
            for i in range(count):
                data = submission_message(sender.address, watcher.address, first_number + i)
                t0 = time.perf_counter()
                smtp.sendmail(sender.address, [watcher.address], data)
                t250 = time.perf_counter()
                want = base + i + 1
                while True:
                    try:
                        n, arrived = thread.exists.get(timeout=IDLE_EXISTS_TIMEOUT)
                    except queue.Empty:
                        raise BenchError(
                            f"no EXISTS {want} within {IDLE_EXISTS_TIMEOUT:.0f} s of the 250"
                        ) from None
                    if n < 0:
                        raise BenchError(f"IDLE connection failed: {thread.error!r}")
                    if n >= want:
                        break
                latencies.append(arrived - t250)
                submits.append(t250 - t0)
            _, wall = meter()
        cpu = [s.cpu_seconds() - c0 for s, c0 in zip(servers, cpu0, strict=True)]
        pg1 = postgres_cpu_seconds() if pg0 is not None else None
    finally:
        if thread is not None:
            thread.stopping.set()
            thread.join(30)
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
        imap.close()
    if thread is not None and thread.error is not None:
        raise BenchError(f"IDLE connection failed: {thread.error!r}")
    pg_cpu = pg1 - pg0 if pg0 is not None and pg1 is not None else None
    return IdleRun(latencies, submits, cpu, wall, pg_cpu)


def bench_idle(
    server: Server, sender: Account, watcher: Account, count: int, summary: Summary
) -> Section:
    progress(f"idle: {count} messages, one at a time, to an IDLE client")
    run = measure_idle(server, server, sender, watcher, count, 9 * 10**6)
    latencies, cpu, wall = run.latencies, run.cpu[0], run.wall

    section = Section(
        f"Delivery to IDLE: {count} messages submitted one at a time (port 465), "
        "time from the 250 after DATA to '* n EXISTS' at a client idling on INBOX"
    )
    for p in (50, 95, 99):
        section.add(f"250 -> EXISTS p{p}", ms(percentile(latencies, p)), "ms")
    section.add("250 -> EXISTS max", ms(max(latencies)), "ms")
    section.add("250 -> EXISTS min", ms(min(latencies)), "ms")
    section.add("submit latency p50 (one client)", ms(percentile(run.submits, 50)), "ms")
    section.add("server CPU", f"{cpu / count * 1000:.2f}", f"ms/message; {cpu_note(cpu, wall)}")
    summary.add(
        IDLE_LABEL,
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {max(latencies) * 1000:.1f} ms",
        "a few ms (Postfix+Dovecot ~500 ms)",
    )
    return section


def bench_crossnode(
    node_a: Server,
    node_b: Server,
    sender: Account,
    watcher: Account,
    count: int,
    summary: Summary,
) -> Section:
    progress(
        f"crossnode: {count} messages, one at a time, through {node_a.name} "
        f"to an IDLE client on {node_b.name}"
    )
    run = measure_idle(node_a, node_b, sender, watcher, count, 8 * 10**6, postgres=True)
    latencies = run.latencies
    worst = max(latencies) * 1000
    if worst < CROSSNODE_AIM_MS:
        verdict = "OK"
    elif worst < CROSSNODE_LIMIT_MS:
        verdict = f"within {CROSSNODE_LIMIT_MS / 1000:.0f} s, over the aim"
    else:
        verdict = f"OVER {CROSSNODE_LIMIT_MS / 1000:.0f} s"

    section = Section(
        f"Cross-node delivery to IDLE: {count} messages submitted one at a time through "
        f"{node_a.name} (port 465), time from the 250 after DATA to '* n EXISTS' at a client "
        f"idling on INBOX on {node_b.name} (PostgreSQL LISTEN/NOTIFY)"
    )
    for p in (50, 95, 99):
        section.add(f"250 -> EXISTS p{p}", ms(percentile(latencies, p)), "ms")
    section.add(
        "250 -> EXISTS max",
        ms(max(latencies)),
        f"ms  (aim < {CROSSNODE_AIM_MS:.0f} ms, limit {CROSSNODE_LIMIT_MS / 1000:.0f} s: "
        f"{verdict})",
    )
    section.add("250 -> EXISTS min", ms(min(latencies)), "ms")
    section.add("submit latency p50 (one client)", ms(percentile(run.submits, 50)), "ms")
    for node, cpu in zip((node_a, node_b), run.cpu, strict=True):
        section.add(
            f"server CPU {node.name}",
            f"{cpu / count * 1000:.2f}",
            f"ms/message; {cpu_note(cpu, run.wall)}",
        )
    if run.postgres_cpu is not None:
        section.add(
            "PostgreSQL CPU",
            f"{run.postgres_cpu / count * 1000:.2f}",
            f"ms/message; {cpu_note(run.postgres_cpu, run.wall)}",
        )
    summary.add(
        CROSSNODE_LABEL,
        " / ".join(f"{percentile(latencies, p) * 1000:.1f}" for p in (50, 95, 99))
        + f" / {worst:.1f} ms",
        f"< {CROSSNODE_AIM_MS:.0f} ms on loopback (issue 3): {verdict}",
    )
    return section


# ------------------------------------------------------------------------------- FETCH


def append_archive(imap: RawIMAP, owner: str, count: int, batch: int = 50) -> tuple[float, int]:
    """APPEND `count` messages with LITERAL+, `batch` commands in flight; (seconds, bytes)."""
    rng = random.Random(1993)
    total = 0
    t0 = time.perf_counter()
    for first in range(0, count, batch):
        tags: list[bytes] = []
        chunks: list[bytes] = []
        for n in range(first, min(first + batch, count)):
            data, flags, date = archive_message(rng, n, owner)
            total += len(data)
            tag = imap.tag()
            tags.append(tag)
            chunks.append(
                b'%s APPEND INBOX (%s) "%s" {%d+}\r\n%s\r\n'
                % (tag, flags.encode(), date.encode(), len(data), data)
            )
        imap.send(b"".join(chunks))
        for tag in tags:
            imap.read_reply(tag, keep=False)
    return time.perf_counter() - t0, total


FETCH_VARIANTS = (
    ("ENVELOPE sync", ENVELOPE_SYNC, True),  # (label, command, judged against the budget)
    ("Thunderbird HEADER.FIELDS", THUNDERBIRD_SYNC, False),
    ("BODYSTRUCTURE", BODYSTRUCTURE_SYNC, False),
)


def fetch_label(variant: str, count: int) -> str:
    return f"FETCH {variant}, {count} msgs p50 (min)"


def bench_fetch(server: Server, owner: Account, count: int, runs: int, summary: Summary) -> Section:
    progress(f"fetch: APPEND {count} messages")
    imap = RawIMAP(server.ports["imaps"])
    try:
        imap.login(owner)
        with cpu_meter(server) as meter:
            append_seconds, append_bytes = append_archive(imap, owner.address, count)
            append_cpu, _ = meter()
        exists = imap.select()
        if exists != count:
            raise BenchError(f"APPENDed {count} messages but SELECT says {exists} EXISTS")
        section = Section(
            f"Header sync FETCH: mailbox of {count} messages (avg "
            f"{append_bytes / count / 1024:.1f} KiB; 20% multipart), {runs} runs each, "
            "command sent -> tagged OK read"
        )
        section.add(
            "APPEND (LITERAL+, 50 in flight)",
            f"{count / append_seconds:.0f}",
            f"messages/s; server CPU {append_cpu / count * 1000:.2f} ms/message",
        )
        for label, command, budgeted in FETCH_VARIANTS:
            progress(f"fetch: {label} x {runs}")
            times: list[float] = []
            size = 0
            gc.collect()
            with cpu_meter(server) as meter:
                for _ in range(runs):
                    tag = imap.tag()
                    t0 = time.perf_counter()
                    imap.send(tag + b" " + command + b"\r\n")
                    reply = imap.read_reply(tag, keep=False)
                    times.append(time.perf_counter() - t0)
                    if reply.fetches != count:
                        raise BenchError(f"{label}: {reply.fetches} FETCH responses, not {count}")
                    size = reply.received
                cpu, _ = meter()
            p50 = percentile(times, 50)
            section.add(
                f"{label} min / p50 / p95 / max",
                f"{ms(min(times))} / {ms(p50)} / {ms(percentile(times, 95))} / {ms(max(times))}",
                f"ms  (first {ms(times[0])} ms; {size / 1024:.0f} KiB; "
                f"server CPU {cpu / runs * 1000:.1f} ms/run)",
            )
            budget = ""
            if budgeted:
                verdict = "OK" if p50 <= FETCH_BUDGET_MS / 1000 else "OVER"
                budget = f"<= {FETCH_BUDGET_MS:.0f} ms (Dovecot ~12 ms): {verdict}"
            summary.add(
                fetch_label(label, count),
                f"{ms(p50)} ({ms(min(times))}) ms",
                budget,
            )
        return section
    finally:
        imap.close()


# ------------------------------------------------------------------------------- memory


async def _hold_idle_connections(
    port: int, account: Account, count: int, concurrency: int, control: Any
) -> None:
    ctx = client_tls()
    gate = asyncio.Semaphore(concurrency)
    writers: list[asyncio.StreamWriter] = []
    login = b'a LOGIN "%s" "%s"\r\n' % (account.address.encode(), account.key.encode())

    async def expect(reader: asyncio.StreamReader, prefix: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed by the server")
            if line.startswith(prefix):
                if prefix != b"+" and not line[len(prefix) :].startswith(b"OK"):
                    raise ConnectionError(f"refused: {line!r}")
                return

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, ssl=ctx), SOCKET_TIMEOUT
            )
            try:
                async with asyncio.timeout(SOCKET_TIMEOUT):
                    await expect(reader, b"* ")
                    writer.write(login)
                    await expect(reader, b"a ")
                    writer.write(b"b SELECT INBOX\r\n")
                    await expect(reader, b"b ")
                    writer.write(b"c IDLE\r\n")
                    await expect(reader, b"+")
            except BaseException:
                writer.close()
                raise
            writers.append(writer)

    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    control.send(("ready", len(writers), failures[:3], len(failures), time.perf_counter() - t0))
    with contextlib.suppress(EOFError, OSError):
        await loop.run_in_executor(None, control.recv)  # "close", or the parent is gone
    for writer in writers:
        writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(30):
            await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    with contextlib.suppress(Exception):
        control.send(("closed",))


def memory_worker(port: int, account: Account, count: int, concurrency: int, control: Any) -> None:
    """Entry point of a load-generator process: hold `count` IDLE connections until told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_hold_idle_connections(port, account, count, concurrency, control))


def idle_cycle(port: int, account: Account) -> None:
    imap = RawIMAP(port)
    try:
        imap.login(account)
        imap.select()
        imap.send(b"i IDLE\r\n")
        if not imap.read_line().startswith(b"+"):
            raise BenchError("IDLE not accepted")
        imap.send(b"DONE\r\n")
        imap.read_reply(b"i", keep=False)
    finally:
        imap.close()


class IdleFleet:
    """K idle IMAP connections held by a few spawned load-generator processes."""

    def __init__(self, port: int, account: Account, count: int) -> None:
        self.workers = max(1, min(4, count // 250))
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for w in range(self.workers):
            share = count // self.workers + (1 if w < count % self.workers else 0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=memory_worker,
                args=(port, account, share, 8, child),  # 8 handshakes in flight per process
                name=f"bench-idle-{w}",
                daemon=True,
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.pipes.append(parent)

    def wait_open(self) -> tuple[int, float]:
        """(connections open, seconds the slowest process took); raises if any failed."""
        opened = failed = 0
        failures: list[str] = []
        slowest = 0.0
        deadline = time.monotonic() + MEMORY_TIMEOUT
        for pipe in self.pipes:
            if not pipe.poll(max(1.0, deadline - time.monotonic())):
                raise BenchError(f"IDLE connections not open within {MEMORY_TIMEOUT:.0f} s")
            try:
                _, n, errs, nfailed, elapsed = pipe.recv()
            except EOFError:
                raise BenchError("a load-generator process died") from None
            opened += n
            failures += errs
            failed += nfailed
            slowest = max(slowest, elapsed)
        if failed:
            raise BenchError(f"{failed} IDLE connections failed, e.g. {failures}")
        return opened, slowest

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(60):
                    pipe.recv()
            pipe.close()
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)


MEMORY_LABEL = "Memory per IDLE session (anon / PSS / RSS)"


def bench_memory(
    server: Server, account: Account, count: int, rounds: int, summary: Summary
) -> Section:
    port = server.ports["imaps"]
    progress(f"memory: warm-up, then {rounds} x {count} IDLE connections")
    # Warm the server up (imports, caches, the login path) so the baseline is its steady state.
    for _ in range(10):
        idle_cycle(port, account)
    time.sleep(1.0)
    samples = [("before", server.memory_kib(), server.open_fds())]
    opened = 0
    seconds = cpu = 0.0
    for r in range(1, rounds + 1):
        progress(f"memory: round {r}: opening {count} connections")
        cpu0 = server.cpu_seconds()
        fleet = IdleFleet(port, account, count)
        try:
            opened, open_seconds = fleet.wait_open()
            if r == 1:
                seconds, cpu = open_seconds, server.cpu_seconds() - cpu0
            time.sleep(2.0)  # let the server finish whatever the last logins started
            samples.append((f"{opened} open (round {r})", server.memory_kib(), server.open_fds()))
        finally:
            fleet.close()
        time.sleep(2.0)
        samples.append((f"all closed (round {r})", server.memory_kib(), server.open_fds()))

    before, first = samples[0][1], samples[1][1]
    per = {k: (first[k] - before[k]) / opened for k in ("Rss", "Pss", "Anonymous")}
    section = Section(
        f"Memory per idle IMAP connection: {opened} TLS connections (port 993), each logged "
        f"in, INBOX selected, in IDLE; {rounds} round(s) of open-all / close-all"
    )
    section.add(
        "time to open all (round 1)",
        f"{seconds:.1f}",
        f"s  ({opened / seconds:.0f} handshakes+logins/s, {fleet.workers} client process(es))",
    )
    section.add(
        "server CPU per connection set-up",
        f"{cpu / opened * 1000:.2f}",
        f"ms  (TLS handshake, LOGIN, SELECT, IDLE); {cpu_note(cpu, seconds)}",
    )
    for label, mem, fds in samples:
        section.add(
            f"server {label}",
            f"{mem['Rss']} / {mem['Pss']} / {mem['Anonymous']}",
            f"KiB RSS / PSS / anonymous; {fds} fds",
        )
    # The budget is judged on anonymous memory: it is what sessions allocate. PSS also moves
    # with file-backed pages shared with other processes (the load generators run the same
    # Python and libraries), by a few MB either way, which is noise at a few KiB per session.
    verdict = "OK" if per["Anonymous"] <= IDLE_SESSION_BUDGET_KIB else "OVER"
    section.add("RSS per connection", f"{per['Rss']:.1f}", "KiB")
    section.add("PSS per connection", f"{per['Pss']:.1f}", "KiB")
    section.add(
        "anonymous memory per connection",
        f"{per['Anonymous']:.1f}",
        f"KiB  (private heap; budget {IDLE_SESSION_BUDGET_KIB:.0f}: {verdict})",
    )
    if rounds > 1:
        # Slope of the "open" samples, round over round: what each connection leaves behind.
        opens = [mem["Anonymous"] for label, mem, _ in samples if " open " in label]
        xs = range(len(opens))
        mx, my = sum(xs) / len(opens), sum(opens) / len(opens)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, opens, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        section.add(
            "anonymous growth per connection per round",
            f"{slope / opened:.2f}",
            "KiB  (slope of the 'open' samples: a leak if well above 0)",
        )
    summary.add(
        MEMORY_LABEL,
        f"{per['Anonymous']:.1f} / {per['Pss']:.1f} / {per['Rss']:.1f} KiB",
        f"<= {IDLE_SESSION_BUDGET_KIB:.0f} KiB (Dovecot ~1.9 MB PSS): {verdict}",
    )
    return section


# ------------------------------------------------------------------------------- DNS and sink


class Zone:
    """An authoritative DNS server on loopback for the outbound and inbound phases, built on
    dnslib like tests/dnsserver.py: UDP and TCP on one free port, answers over 512 bytes
    truncated on UDP (so the resolver retries over TCP, as the RSA DKIM key needs), NXDOMAIN for
    names it has nothing at or below. Records carry a TTL of ZONE_TTL seconds, as real ones do:
    the server's resolver caches them, so a busy MX or delivery worker asks once per name.
    `queries` counts the queries answered."""

    def __init__(self) -> None:
        self.port = 0
        self.queries = 0
        self._records: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        self._servers: list[Any] = []

    @property
    def address(self) -> str:
        """ "host:port", the form `[dns] nameservers` takes."""
        return f"{HOST}:{self.port}"

    def set(self, name: str, rtype: str, values: list[Any]) -> None:
        """Replace `name`'s records of `rtype`. Values: A an address, MX "PREFERENCE HOST",
        TXT a str (cut into 255-byte strings) or a list of str (exactly those strings)."""
        from dnslib import MX, QTYPE, RR, TXT, A

        rtype = rtype.upper()
        owner = name.lower().rstrip(".")
        rdata: list[Any] = []
        for value in values:
            if rtype == "A":
                rdata.append(A(value))
            elif rtype == "MX":
                preference, _, host = str(value).partition(" ")
                rdata.append(MX(host.strip(), int(preference)))
            elif rtype == "TXT":
                if isinstance(value, str):
                    data = value.encode()
                    strings = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
                else:
                    strings = [s.encode() for s in value]
                rdata.append(TXT(strings))
            else:
                raise ValueError(f"the benchmark's zone does not serve {rtype} records")
        records = [RR(owner + ".", getattr(QTYPE, rtype), rdata=r, ttl=ZONE_TTL) for r in rdata]
        with self._lock:
            self._records[(owner, rtype)] = records

    def resolve(self, request: Any, handler: Any) -> Any:
        """dnslib's resolver interface: the reply to one query."""
        from dnslib import QTYPE, RCODE

        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        suffix = "." + name
        with self._lock:
            self.queries += 1
            answers = list(self._records.get((name, rtype), []))
            exists = any(
                (owner == name or owner.endswith(suffix)) and records
                for (owner, _), records in self._records.items()
            )
        for rr in answers:
            reply.add_answer(rr)
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def start(self) -> None:
        try:
            from dnslib import DNSHeader, DNSRecord
            from dnslib.server import DNSHandler, DNSLogger, DNSServer
        except ImportError:
            raise BenchError(
                "the outbound and inbound phases need dnslib: pip install -e '.[test]'"
            ) from None

        class Handler(DNSHandler):
            def get_reply(self, data: bytes) -> bytes:
                request = DNSRecord.parse(data)
                reply = self.server.resolver.resolve(request, self)
                packed: bytes = reply.pack()
                if self.protocol == "udp" and len(packed) > 512:
                    # RFC 1035 §4.2.1, no EDNS here: set TC and keep the question (dnslib's
                    # truncate() drops it, and dnspython rightly refuses such an answer).
                    header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1)
                    packed = DNSRecord(header, q=reply.q).pack()
                return packed

        logger = DNSLogger(logf=lambda _: None)
        for _ in range(20):  # a free TCP port whose UDP twin is free too
            tcp = DNSServer(self, HOST, 0, tcp=True, logger=logger, handler=Handler)
            port = tcp.server.server_address[1]
            try:
                udp = DNSServer(self, HOST, port, logger=logger, handler=Handler)
            except OSError:
                tcp.server.server_close()
                continue
            break
        else:
            raise BenchError("no free port with both UDP and TCP for the DNS server")
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="bench-dns",
                daemon=True,
            ).start()

    def stop(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.server.shutdown()
                server.server.server_close()
        self._servers = []

    def txt(self, name: str) -> bytes | None:
        """A TXT record of `name` asked over the network, as a remote verifier would (the first
        record's strings joined), or None: what dkimpy's `dnsfunc` returns."""
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [HOST]
        resolver.port = self.port
        resolver.timeout = resolver.lifetime = 5.0
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(next(iter(answer)).strings)


def publish_domain(zone: Zone, config: Path, env: dict[str, str], domain: str) -> int:
    """Put what `mailgate domain dns DOMAIN --json` says to publish into the zone; how many
    records that was."""
    done = subprocess.run(
        [*MAILGATE, "domain", "dns", domain, "--json", "--config", str(config)],
        capture_output=True,
        cwd=config.parent,  # `-m` puts the cwd first on sys.path: no checkout there
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"domain dns {domain} failed: {done.stderr.decode(errors='replace')}")
    records = json.loads(done.stdout)
    for record in records:
        if record["type"] == "TXT":
            zone.set(record["name"], "TXT", [record["strings"]])
        elif record["type"] == "MX":
            zone.set(record["name"], "MX", [record["value"].rstrip(".")])
    return len(records)


def queued_recipients(config: Path, env: dict[str, str]) -> int:
    """How many recipients `mailgate queue list` still shows."""
    done = subprocess.run(
        [*MAILGATE, "queue", "list", "--json", "--config", str(config)],
        capture_output=True,
        cwd=config.parent,  # `-m` puts the cwd first on sys.path: no checkout there
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"queue list failed: {done.stderr.decode(errors='replace')}")
    return len(json.loads(done.stdout))


@dataclass(frozen=True)
class SigningKey:
    """A DKIM key of the inbound senders' domain, made by the benchmark."""

    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private: bytes  # what dkimpy's sign() takes: PEM for RSA, base64 of the seed for Ed25519
    record: str  # the TXT record at <selector>._domainkey.<domain>


def world_keys() -> list[SigningKey]:
    """An RSA-2048 and an Ed25519 key (RFC 8463) for WORLD_DOMAIN."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    raw = serialization.Encoding.Raw
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_private = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed = ed_key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ed_public = ed_key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return [
        SigningKey(
            "bench-rsa",
            "rsa-sha256",
            rsa_private,
            f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}",
        ),
        SigningKey(
            "bench-ed",
            "ed25519-sha256",
            base64.b64encode(seed),
            f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}",
        ),
    ]


def publish_world(zone: Zone, keys: list[SigningKey]) -> None:
    """The inbound senders' domain: SPF for this machine's address, both DKIM keys, and a DMARC
    policy of reject, so that a failed evaluation shows as a refused message."""
    zone.set(WORLD_DOMAIN, "TXT", [f"v=spf1 ip4:{HOST} -all"])
    zone.set(WORLD_DOMAIN, "MX", [f"10 {WORLD_HELO}"])
    zone.set(WORLD_HELO, "A", [HOST])
    zone.set(WORLD_HELO, "TXT", [f"v=spf1 ip4:{HOST} -all"])
    for key in keys:
        zone.set(f"{key.selector}._domainkey.{WORLD_DOMAIN}", "TXT", [key.record])
    zone.set(f"_dmarc.{WORLD_DOMAIN}", "TXT", ["v=DMARC1; p=reject; adkim=r; aspf=r"])


def publish_sink(zone: Zone) -> None:
    zone.set(SINK_DOMAIN, "MX", [f"10 {SINK_HOST}"])
    zone.set(SINK_HOST, "A", [HOST])


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


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A throw-away ECDSA certificate for the sink's STARTTLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "sink.crt", directory / "sink.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# One message as the sink got it: (time.monotonic() of its 250, MAIL FROM, RCPT TOs, STARTTLS
# used, the number of the connection it came by, the message bytes). time.monotonic() is
# CLOCK_MONOTONIC, the same clock in every process of this machine.
Arrival = tuple[float, str, list[str], bool, int, bytes]


async def _run_sink(directory: Path, control: Any) -> None:
    from aiosmtpd.smtp import SMTP

    cert, key = _self_signed(directory, SINK_HOST)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    arrivals: list[Arrival] = []
    changed = threading.Condition()
    connections = itertools.count(1)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()
            if not hasattr(session, "bench_connection"):  # one Session per connection
                session.bench_connection = next(connections)
            with changed:
                arrivals.append(
                    (
                        now,
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        session.ssl is not None,
                        session.bench_connection,
                        bytes(envelope.original_content),
                    )
                )
                changed.notify_all()
            return "250 2.0.0 Ok: queued"

    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname=SINK_HOST,
            ident="mailgate bench sink",
            tls_context=tls,
            require_starttls=False,
        ),
        HOST,
        0,
    )
    control.send(("port", server.sockets[0].getsockname()[1]))
    stopping = asyncio.Event()

    def serve_control() -> None:
        """Answers the benchmark: ("wait", n, timeout) -> ("count", arrivals so far, once
        there are n or the time is up); ("arrivals", first) -> ("arrivals", list); ("stop",)."""
        try:
            while True:
                command = control.recv()
                if command[0] == "wait":
                    _, want, timeout = command
                    with changed:
                        changed.wait_for(lambda want=want: len(arrivals) >= want, timeout)
                        count = len(arrivals)
                    control.send(("count", count))
                elif command[0] == "arrivals":
                    with changed:
                        snapshot = arrivals[command[1] :]
                    control.send(("arrivals", snapshot))
                else:
                    break
        except (EOFError, OSError):
            pass  # the benchmark is gone
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=serve_control, name="sink-control", daemon=True).start()
    await stopping.wait()
    server.close()


def sink_worker(directory: str, control: Any) -> None:
    """Entry point of the SMTP sink process: accept every message, record when it came."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_run_sink(Path(directory), control))


class Sink:
    """The outbound phase's remote MX: aiosmtpd in a process of its own (so that neither the
    GIL nor the load generator delays it), on loopback, offering STARTTLS, accepting everything.
    """

    def __init__(self, directory: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=sink_worker, args=(str(directory), child), name="bench-sink", daemon=True
        )
        self.proc.start()
        child.close()
        if not self.pipe.poll(READY_TIMEOUT):
            self.close()
            raise BenchError("the SMTP sink did not start")
        try:
            _, self.port = self.pipe.recv()
        except EOFError:
            self.close()
            raise BenchError("the SMTP sink died while starting") from None

    def _ask(self, command: tuple[Any, ...], timeout: float) -> Any:
        try:
            self.pipe.send(command)
            if not self.pipe.poll(timeout):
                raise BenchError("the SMTP sink does not answer")
            return self.pipe.recv()[1]
        except (EOFError, OSError):
            raise BenchError("the SMTP sink died") from None

    def wait(self, count: int, timeout: float) -> int:
        """Messages received so far, once there are `count` or after `timeout` seconds."""
        return int(self._ask(("wait", count, timeout), timeout + 30))

    def arrivals(self, first: int = 0) -> list[Arrival]:
        return list(self._ask(("arrivals", first), 120))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)
        self.pipe.close()


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


def shares(total: int, clients: int) -> list[list[int]]:
    """Message numbers for each client: `total` in all, spread as evenly as they go."""
    return [
        [i * 10**6 + j for j in range(total // clients + (1 if i < total % clients else 0))]
        for i in range(clients)
    ]


def pg_row(section: Section, pg0: float | None, pg1: float | None, count: int, wall: float) -> None:
    if pg0 is not None and pg1 is not None:
        pg_cpu = pg1 - pg0
        section.add(
            "PostgreSQL CPU",
            f"{pg_cpu / count * 1000:.2f}",
            f"ms/message; {cpu_note(pg_cpu, wall)}  (every local postgres process)",
        )


# ------------------------------------------------------------------------------- outbound


def outbound_labels(clients: int, nodes: int) -> list[str]:
    where = f" over {nodes} nodes" if nodes > 1 else ""
    return [
        f"Outbound via MX to a sink, {clients} clients{where}",
        "  submit 250 -> sink 250 p50 / p95 / p99",
        "  at the sink once, RSA + Ed25519 DKIM",
    ]


def bench_outbound(
    servers: list[Server],
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
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gc.collect()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
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
    for when, mail_from, rcpts, used_tls, connection, data in arrivals:
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


# ------------------------------------------------------------------------------- inbound


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
    servers: list[Server],
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
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gc.collect()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
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


# ------------------------------------------------------------------------------- main


def machine_info() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    libs = ", ".join(
        f"{n} {version(n)}" for n in ("Twisted", "aiosmtpd", "pyOpenSSL", "SQLAlchemy")
    )
    return [
        f"machine   {os.cpu_count()} CPUs ({model}){mem}, {platform.platform()}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"mailgate  {version('mailgate')} from {_source()}; {libs}",
    ]


def _source() -> str:
    """Where the server's `mailgate` package comes from, with its git commit if it has one."""
    spec = importlib.util.find_spec("mailgate")
    if spec is None or spec.origin is None:
        return "?"
    root = Path(spec.origin).parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(root)
    return f"{root} (git {rev})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(PHASES)} (default: all of them; "
        f"{','.join(MULTI_NODE_PHASES)} only with --nodes 2 or more)",
    )
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL of a PostgreSQL server: a fresh database is created on it for the "
        "run and dropped afterwards (default: SQLite in the temporary data directory)",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="mailgate servers sharing the database (1); 2 or more need --database-url",
    )
    p.add_argument("--messages", type=int, help="throughput: total messages (800)")
    p.add_argument("--clients", type=int, help="throughput: concurrent SMTP clients (8)")
    p.add_argument("--idle-messages", type=int, help="idle: messages (200)")
    p.add_argument("--crossnode-messages", type=int, help="crossnode: messages (200)")
    p.add_argument("--fetch-messages", type=int, help="fetch: mailbox size (1000)")
    p.add_argument("--fetch-runs", type=int, help="fetch: repetitions of each FETCH (20)")
    p.add_argument("--connections", type=int, help="memory: idle IMAP connections (2000)")
    p.add_argument("--outbound-messages", type=int, help="outbound: messages (500)")
    p.add_argument("--inbound-messages", type=int, help="inbound: messages (500)")
    p.add_argument(
        "--memory-rounds",
        type=int,
        default=2,
        help="memory: times to open and close all connections; a second round shows leaks (2)",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=parse_set,
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra server setting, e.g. database.pool_size=20 (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        p.error("--database-url must be a postgresql URL (SQLite is the default)")
    if args.nodes < 1:
        p.error("--nodes must be 1 or more")
    if args.nodes > 1 and not args.database_url:
        p.error("--nodes 2 or more needs --database-url: SQLite serves one node only")
    available = [x for x in PHASES if args.nodes > 1 or x not in MULTI_NODE_PHASES]
    if args.only is None:
        args.phases = available
    else:
        only = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = set(only) - set(PHASES)
        if unknown or not only:
            p.error(f"--only takes a comma-separated subset of {','.join(PHASES)}")
        if set(only) - set(available):
            p.error(f"{','.join(sorted(set(only) - set(available)))} needs --nodes 2 or more")
        args.phases = [x for x in PHASES if x in only]
    base = QUICK if args.quick else FULL
    args.counts = Counts(
        messages=args.messages or base.messages,
        clients=args.clients or base.clients,
        idle_messages=args.idle_messages or base.idle_messages,
        crossnode_messages=args.crossnode_messages or base.crossnode_messages,
        fetch_messages=args.fetch_messages or base.fetch_messages,
        fetch_runs=args.fetch_runs or base.fetch_runs,
        connections=args.connections or base.connections,
        outbound_messages=args.outbound_messages or base.outbound_messages,
        inbound_messages=args.inbound_messages or base.inbound_messages,
    )
    return args


def summary_labels(phase: str, counts: Counts, nodes: int) -> list[str]:
    """The rows a phase adds to the summary: printed as FAILED when it fails."""
    if phase == "throughput":
        return throughput_labels(counts.clients, nodes)
    if phase == "idle":
        return [IDLE_LABEL]
    if phase == "crossnode":
        return [CROSSNODE_LABEL]
    if phase == "fetch":
        return [fetch_label(label, counts.fetch_messages) for label, _, _ in FETCH_VARIANTS]
    if phase == "outbound":
        return outbound_labels(counts.clients, nodes)
    if phase == "inbound":
        return inbound_labels(counts.clients, nodes)
    return [MEMORY_LABEL]


def node_name(k: int) -> str:
    return f"node {chr(ord('A') + k)}" if k < 26 else f"node {k + 1}"


def _terminate(signum: int, _frame: Any) -> None:
    print(f"\ninterrupted by {signal.Signals(signum).name}; cleaning up", file=sys.stderr)
    raise SystemExit(128 + signum)  # unwinds through the `finally` that cleans up


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts: Counts = args.counts
    nodes: int = args.nodes
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    began = time.perf_counter()
    fd_limit = raise_fd_limit(counts.connections * 2 + 1024)
    if "memory" in args.phases and fd_limit < counts.connections + 256:
        print(f"warning: open-file limit {fd_limit} is low for {counts.connections} connections")

    workdir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    pg = Postgres(args.database_url) if args.database_url else None
    servers: list[Server] = []
    summary = Summary()
    failed: list[str] = []
    zone: Zone | None = None
    sink: Sink | None = None
    try:
        print(f"mailgate benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        for line in machine_info():
            print("  " + line)
        if pg is not None:
            pg.create()
            database_url = pg.run_url
            print(f"  database  PostgreSQL {pg.version}, fresh database {pg.name}")
            database = f"PostgreSQL {pg.version.split()[0]}"
        else:
            import sqlite3

            database_url = ""
            print(
                f"  database  SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL) in {workdir}"
            )
            database = f"SQLite {sqlite3.sqlite_version}"
        summary.setup = f"{database}, {nodes} node{'s' if nodes > 1 else ''}"
        env = server_env()
        # The outbound and inbound phases need the world: a DNS server on loopback that the
        # servers resolve through, and (outbound) an SMTP sink their [outbound] mx_port points
        # at. Both start before the servers; --set still overrides these settings.
        world: dict[str, Any] = {}
        if any(phase in WORLD_PHASES for phase in args.phases):
            zone = Zone()
            zone.start()
            world["dns.nameservers"] = [zone.address]
            print(f"  dns       loopback DNS server (dnslib) on {zone.address}, TTL {ZONE_TTL} s")
        if "outbound" in args.phases:
            sink = Sink(workdir / "sink")
            world["outbound.mx_port"] = sink.port
            print(
                f"  sink      aiosmtpd on {HOST}:{sink.port} (STARTTLS), MX of {SINK_DOMAIN}, "
                f"in process {sink.proc.pid}"
            )
        settings = {**world, **dict(args.settings)}
        hostname = str(settings.get("server.hostname", SERVER_HOSTNAME))
        # One server keeps the layout it always had; several get a directory each (their own
        # config, data directory, certificate and log), sharing only the database.
        dirs = [workdir] if nodes == 1 else [workdir / f"node{k + 1}" for k in range(nodes)]
        configs = []
        for d in dirs:
            d.mkdir(exist_ok=True)
            config = d / "mailgate.toml"
            write_config(config, d / "data", database_url, settings)
            configs.append(config)
        if nodes > 1:
            progress("migrating the database once (mailgate db upgrade)")
            db_upgrade(configs[0], env)

        progress("creating inboxes")
        config = configs[0]
        senders = [create_inbox(config, env, f"sender{i}@{DOMAIN}") for i in range(counts.clients)]
        watcher = create_inbox(config, env, f"watcher@{DOMAIN}")
        archive = create_inbox(config, env, f"archive@{DOMAIN}")
        agent = create_inbox(config, env, f"agent@{DOMAIN}")
        mx_inboxes: list[Account] = []
        keys: list[SigningKey] = []
        if zone is not None:
            published = publish_domain(zone, config, env, DOMAIN)
            notes = [f"{published} records of {DOMAIN} (mailgate domain dns --json)"]
            if "outbound" in args.phases:
                publish_sink(zone)
                notes.append(f"MX of {SINK_DOMAIN}")
            if "inbound" in args.phases:
                mx_inboxes = [
                    create_inbox(config, env, f"mx{i}@{DOMAIN}") for i in range(counts.clients)
                ]
                keys = world_keys()
                publish_world(zone, keys)
                notes.append(
                    f"SPF, DKIM ({', '.join(k.selector for k in keys)}), DMARC of {WORLD_DOMAIN}"
                )
            print(f"  zone      {'; '.join(notes)}")

        servers = [
            Server(d, c, env, node_name(k) if nodes > 1 else "")
            for k, (d, c) in enumerate(zip(dirs, configs, strict=True))
        ]
        for server in servers:  # all start together, as nodes behind a balancer would
            server.launch()
        for server in servers:
            server.wait_ready()
        for server in servers:
            print(
                f"  {server.name or 'server':<8}  pid {server.pid}; "
                + ", ".join(f"{name} {HOST}:{port}" for name, port in sorted(server.ports.items()))
            )
        crossnode = f", crossnode {counts.crossnode_messages} msgs" if nodes > 1 else ""
        print(
            f"  counts    throughput {counts.messages} msgs / {counts.clients} clients, "
            f"idle {counts.idle_messages} msgs{crossnode}, fetch {counts.fetch_messages} msgs x "
            f"{counts.fetch_runs} runs, outbound {counts.outbound_messages} msgs, inbound "
            f"{counts.inbound_messages} msgs, memory {counts.connections} connections; "
            f"open-file limit {fd_limit}"
        )
        print(f"  phases    {', '.join(args.phases)}")
        if nodes > 1:
            roles = []
            if "throughput" in args.phases:
                roles.append("throughput round-robin over all")
            if "crossnode" in args.phases:
                roles.append(f"crossnode from {servers[0].name} to {servers[-1].name}")
            for phase in WORLD_PHASES:
                if phase in args.phases:
                    roles.append(f"{phase} round-robin over all")
            alone = [x for x in ("idle", "fetch", "memory") if x in args.phases]
            if alone:
                roles.append(f"{'/'.join(alone)} on {servers[0].name}")
            print(f"  nodes     {nodes} on one database; {', '.join(roles)}")
        sys.stdout.flush()

        first = servers[0]
        used = False
        for phase in args.phases:
            labels = summary_labels(phase, counts, nodes)
            down = [s for s in servers if not s.alive()]
            if down:
                which = "the server is" if nodes == 1 else f"{down[0].name} is"
                failed.append(f"{phase}: skipped, {which} not running")
                summary.failed(len(summary.rows), labels, f"skipped, {which} not running")
                continue
            mark = len(summary.rows)
            try:
                if phase == "throughput":
                    section = bench_throughput(
                        servers, senders, counts.messages, summary, postgres=pg is not None
                    )
                elif phase == "idle":
                    section = bench_idle(first, senders[0], watcher, counts.idle_messages, summary)
                elif phase == "crossnode":
                    section = bench_crossnode(
                        first,
                        servers[-1],
                        senders[0],
                        watcher,
                        counts.crossnode_messages,
                        summary,
                    )
                elif phase == "fetch":
                    section = bench_fetch(
                        first, archive, counts.fetch_messages, counts.fetch_runs, summary
                    )
                elif phase == "outbound":
                    assert sink is not None
                    assert zone is not None
                    section = bench_outbound(
                        servers,
                        senders,
                        sink,
                        zone,
                        counts.outbound_messages,
                        summary,
                        config,
                        env,
                        postgres=pg is not None,
                    )
                elif phase == "inbound":
                    assert zone is not None
                    section = bench_inbound(
                        servers,
                        mx_inboxes,
                        keys,
                        zone,
                        counts.inbound_messages,
                        summary,
                        hostname,
                        postgres=pg is not None,
                    )
                else:
                    if used:
                        # A fresh process, so memory freed by earlier phases cannot be reused
                        # by the new sessions and hide their cost.
                        progress("memory: restarting the server")
                        first.stop()
                        first.start()
                    section = bench_memory(
                        first, agent, counts.connections, args.memory_rounds, summary
                    )
                used = True
                section.print()
            except Exception as exc:
                failed.append(f"{phase}: {exc}")
                summary.failed(mark, labels, str(exc))
                print(f"\n== {phase}: FAILED: {exc}", flush=True)
                for server in servers:
                    if not server.alive():
                        which = f"{server.name} log" if server.name else "server log"
                        print(f"{which} (last lines):\n{server.log_tail()}", flush=True)
        if summary.rows:
            summary.print()
    except BenchError as exc:
        failed.append(f"setup: {exc}")
    finally:
        for server in servers:
            server.stop()
        if sink is not None:
            sink.close()
        if zone is not None:
            zone.stop()
        problems = [
            f"{log.parent.name}: {line}" if nodes > 1 else line
            for log in sorted(workdir.rglob("server-*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if re.search(r" (ERROR|CRITICAL) |Traceback", line)
        ]
        if problems:
            print(f"\nserver logged {len(problems)} error line(s), e.g. {problems[0]}")
        if pg is not None:
            try:
                pg.drop()
            except Exception as exc:
                print(f"could not drop database {pg.name}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nrun took {time.perf_counter() - began:.1f} s")
    for problem in failed:
        print(f"FAILED {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
