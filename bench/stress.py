"""Phase `stress`: imaptest's stress mode, Dovecot's own load tester (a random mix of commands
from many clients at once, every reply checked against the state it tracks), on a mailbox
loaded from an mbox of varied mail; meanwhile a second client logs in, SELECTs and FETCHes in
a loop, timed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from clients import RawIMAP
from common import HOST, Account, BenchError, Target
from messages import write_mbox
from meters import cpu_meter
from phase import Bench, Phase
from report import Section, Summary, ms, percentile, progress

MAILBOX = "Stress"  # imaptest works here, apart from whatever else the inbox holds
IMAPTEST_ENV = "IMAPTEST"
BUILD_HINT = (
    "build Dovecot's imaptest (release-2.3.21; shared/tools/build-imaptest.sh does it) "
    f"and pass its path with --imaptest or ${IMAPTEST_ENV}"
)
PROBE_PAUSE = 0.1  # between the second client's rounds: it probes, it does not add load


def imaptest_path(option: str | None) -> Path:
    """imaptest's binary: --imaptest, else $IMAPTEST, else `imaptest` on the PATH."""
    given = option or os.environ.get(IMAPTEST_ENV) or shutil.which("imaptest")
    if not given:
        raise BenchError(f"imaptest not found: {BUILD_HINT}")
    path = Path(given)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BenchError(f"imaptest {path} is not an executable file: {BUILD_HINT}")
    return path


@dataclass
class Outcome:
    commands: dict[str, int]  # imaptest's totals, by its column names (Logi, Sele, Fetc, ...)
    errors: list[str]  # its Error/Panic/Fatal lines
    warnings: list[str]
    wall: float
    exit_code: int


def run_imaptest(
    binary: Path, port: int, account: Account, mbox: Path, clients: int, secs: int
) -> Outcome:
    command = [
        str(binary),
        f"host={HOST}",
        f"port={port}",
        "ssl=any-cert",
        f"user={account.address}",
        f"pass={account.key}",
        f"mbox={mbox}",
        f"box={MAILBOX}",
        f"clients={clients}",
        f"secs={secs}",
    ]
    t0 = time.perf_counter()
    # After `secs` it lets the clients finish and stops by itself (30 s at most).
    done = subprocess.run(command, capture_output=True, timeout=secs + 120, check=False)
    wall = time.perf_counter() - t0
    out = done.stdout + done.stderr
    # Its problems are Dovecot log lines on stderr: "Error: user[n]: ...", "Panic: ...".
    problems = re.findall(rb"^(?:Error|Panic|Fatal|Warning): .*$", out, re.MULTILINE)
    errors = [p.decode(errors="replace") for p in problems if not p.startswith(b"Warning")]
    warnings = [p.decode(errors="replace") for p in problems if p.startswith(b"Warning")]
    return Outcome(_totals(done.stdout), errors, warnings, wall, done.returncode)


def _totals(stdout: bytes) -> dict[str, int]:
    """The counts under "Totals:": a header of command names, two lines of their
    probabilities, then the counts."""
    text = stdout.decode(errors="replace")
    if "Totals:" not in text:
        raise BenchError(f"imaptest printed no totals:\n{text[-2000:]}")
    lines = text.split("Totals:", 1)[1].strip("\n").splitlines()
    names, counts = lines[0].split(), lines[-1].split()
    if len(names) != len(counts) or not all(c.isdigit() for c in counts):
        raise BenchError(f"imaptest's totals unreadable: {lines!r}")
    return dict(zip(names, map(int, counts), strict=True))


class Probe(threading.Thread):
    """The second client: rounds of connect, LOGIN, SELECT INBOX and FETCH 1:* (FLAGS), each
    timed from the connect to the FETCH's tagged OK, until stopped."""

    def __init__(self, port: int, account: Account) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.account = account
        self.rounds: list[float] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                imap = RawIMAP(self.port)
                try:
                    imap.login(self.account)
                    if imap.select(b"INBOX"):
                        imap.command(b"FETCH 1:* (FLAGS)", keep=False)
                    self.rounds.append(time.perf_counter() - t0)
                finally:
                    imap.close()
                self.stop.wait(PROBE_PAUSE)
        except BaseException as exc:  # reported by the phase, not lost in the thread
            self.error = exc


def labels(clients: int, secs: int) -> list[str]:
    what = f"imaptest stress, {clients} clients x {secs} s"
    return [
        f"{what}: commands/s",
        f"{what}: errors",
        f"{what}: second client's LOGIN+SELECT+FETCH p50 / p99",
    ]


def bench_stress(
    server: Target,
    account: Account,
    binary: Path,
    clients: int,
    secs: int,
    messages: int,
    summary: Summary,
) -> Section:
    with tempfile.TemporaryDirectory(prefix="mailgate-stress-") as tmp:
        mbox = Path(tmp) / "stress.mbox"
        size = write_mbox(mbox, messages, account.address)
        imap = RawIMAP(server.ports["imaps"])
        try:
            imap.login(account)
            # imaptest does not create it; one left by an earlier run is kept at its size.
            if imap.command(b'LIST "" ' + MAILBOX.encode()).lines == []:
                imap.command(b"CREATE " + MAILBOX.encode())
        finally:
            imap.close()
        progress(f"stress: imaptest, {clients} clients for {secs} s, mbox of {messages} messages")
        probe = Probe(server.ports["imaps"], account)
        probe.start()
        try:
            with cpu_meter(server) as meter:
                outcome = run_imaptest(binary, server.ports["imaps"], account, mbox, clients, secs)
                cpu, _ = meter()
        finally:
            probe.stop.set()
            probe.join(30)
    if probe.error is not None:
        raise BenchError(f"stress: the second client failed: {probe.error!r}")
    if not probe.rounds:
        raise BenchError("stress: the second client finished no round")
    total = sum(outcome.commands.values())
    rate = total / secs
    p50, p99 = percentile(probe.rounds, 50), percentile(probe.rounds, 99)
    what = labels(clients, secs)
    section = Section(
        f"imaptest stress mode: {clients} clients for {secs} s in {MAILBOX}, from an mbox of "
        f"{messages} varied messages ({size / 1e6:.1f} MB); a second client meanwhile"
    )
    section.add("commands", f"{total:,}", f"({rate:.0f}/s over {secs} s)")
    section.add(
        "by command",
        " ".join(f"{name} {count}" for name, count in outcome.commands.items()),
    )
    section.add("server CPU", f"{cpu / total * 1000:.2f}", "ms/command")
    section.add("errors", f"{len(outcome.errors)}", outcome.errors[0] if outcome.errors else "")
    section.add(
        "warnings", f"{len(outcome.warnings)}", outcome.warnings[0] if outcome.warnings else ""
    )
    section.add(
        "second client p50 / p99 / max",
        f"{ms(p50)} / {ms(p99)} / {ms(max(probe.rounds))}",
        f"ms  ({len(probe.rounds)} rounds of connect, LOGIN, SELECT INBOX, FETCH 1:* (FLAGS))",
    )
    summary.add(what[0], f"{rate:.0f}", "")
    summary.add(what[1], f"{len(outcome.errors)}", "0")
    summary.add(what[2], f"{ms(p50)} / {ms(p99)} ms", "")
    if outcome.exit_code != 0:
        raise BenchError(f"stress: imaptest exited with {outcome.exit_code}")
    return section


def _run(bench: Bench) -> Section:
    counts = bench.counts
    return bench_stress(
        bench.servers[0],
        bench.agent,
        imaptest_path(bench.imaptest),
        counts.stress_clients,
        counts.stress_secs,
        counts.stress_messages,
        bench.summary,
    )


PHASE = Phase(
    "stress",
    _run,
    lambda counts, nodes: labels(counts.stress_clients, counts.stress_secs),
    default=False,
    reference=True,
)
