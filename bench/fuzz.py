"""Phase `fuzz` (only when --only names it): hostile input at volume, the long form of
tests/fuzz/. A mutational loop over seeds of real input (the seeds, mutators and checks of
tests/fuzz/targets.py) feeds --fuzz-inputs inputs (1,000,000) to:

- the IMAP command parser, and its search grammar (SEARCH programs of random keys),
- MIME parsing (ENVELOPE, BODY, BODYSTRUCTURE of mutated messages, checked against RFC 3501),
- the PROXY protocol header parser (over a socket pair, as proxy.py reads it),

in this process, and a share of them over TLS to the running server: single-line IMAP commands
to a logged-in session and SMTP command lines to a logged-in submission session.

Run as a script, `bench/fuzz.py TARGET [libFuzzer flags]` fuzzes one in-process target (imap,
mime or proxy) with atheris instead, coverage-guided (`-runs=N`, `-max_total_time=S`, a corpus
directory...): atheris is not a dependency of mailgate; `pip install atheris` first.

A crash is an input whose check fails (an exception of the wrong kind, malformed output; over
the wire: a dropped connection, a reply without an enhanced code, an internal error); a hang is
an input that took more than HANG_MS of CPU twice in a row (in-process) or HANG_WIRE seconds
(over the wire).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.fuzz

from clients import client_tls
from common import HOST, Account, BenchError, Target
from phase import Bench, Phase
from report import Section, Summary, progress

from tests.fuzz.targets import (
    MESSAGES,
    MIME_PIECES,
    NOISE,
    PROXY_HEADERS,
    PROXY_PIECES,
    SEARCH_WORDS,
    VALID_COMMANDS,
    check_message,
    check_proxy,
    check_request,
    mutate_command,
    mutate_message,
    random_command,
)

HANG_MS = 100  # CPU time one in-process input may take before it counts as a hang
HANG_WIRE = 5.0  # seconds one command over the wire may take to be answered
WIRE_SHARE = 0.01  # the share of inputs sent to the server over TLS (half IMAP, half SMTP)
REPORT_EVERY = 100_000


@dataclass
class Tally:
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    slowest: float = 0.0  # seconds: CPU in-process, wall over the wire
    examples: list[str] = field(default_factory=list)  # the first crashes and hangs

    def record(self, seconds: float, limit: float, failure: str | None, data: object) -> None:
        self.inputs += 1
        self.slowest = max(self.slowest, seconds)
        if failure is not None:
            self.crashes += 1
        elif seconds > limit:
            self.hangs += 1
            failure = f"took {seconds * 1000:.0f} ms"
        if failure is not None and len(self.examples) < 3:
            self.examples.append(f"{failure[:200]} on {data!r:.200}")


# ---------------------------------------------------------------------------------------------
# In-process targets: each makes an input from the RNG and checks it


def _imap_input(rng: random.Random) -> list[bytes]:
    roll = rng.random()
    if roll < 0.6:
        return mutate_command(rng, rng.choice(VALID_COMMANDS))
    if roll < 0.85:
        return random_command(rng)
    return [bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))]


def _seq(rng: random.Random) -> bytes:
    def n() -> bytes:
        return rng.choice([b"*", b"%d" % rng.randint(0, 2**32), b"$"])

    return b",".join(
        n() + (b":" + n() if rng.random() < 0.5 else b"") for _ in range(rng.randint(1, 4))
    )


def _search_input(rng: random.Random) -> list[bytes]:
    words = [
        rng.choice([b"a UID SEARCH ", b"a SEARCH RETURN (SAVE MIN) ", b"a SORT (DATE) UTF-8 "])
    ]
    for _ in range(rng.randint(1, 20)):
        roll = rng.random()
        if roll < 0.6:
            words.append(rng.choice(SEARCH_WORDS))
        elif roll < 0.75:
            words.append(_seq(rng) + b" ")
        elif roll < 0.9:
            words.append(rng.choice([b"OR ", b"NOT ", b"(", b") ", b"NEW ", b"OLDER 5 "]))
        else:
            words.append(rng.choice(NOISE))
    return [b"".join(words)]


def _mime_input(rng: random.Random) -> bytes:
    if rng.random() < 0.8:
        return mutate_message(rng, rng.choice(MESSAGES))
    return b"".join(rng.choice([*MIME_PIECES, b"a", b"From: x"]) for _ in range(rng.randint(0, 80)))


def _proxy_input(rng: random.Random) -> bytes:
    data = rng.choice(PROXY_HEADERS)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(data))
        if rng.random() < 0.5:
            insert = rng.choice(PROXY_PIECES)
        else:
            insert = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
        data = data[:at] + insert + data[at + rng.randint(0, 3) :]
    return data


def _timed(check: Callable[[], object]) -> tuple[float, str | None]:
    """The CPU time a check took, and what failed (None if nothing did)."""
    t0 = time.thread_time()
    try:
        check()
    except Exception as exc:  # a crash found: reported, never raised
        return time.thread_time() - t0, f"{type(exc).__name__}: {exc}"
    return time.thread_time() - t0, None


# ---------------------------------------------------------------------------------------------
# Over the wire: a logged-in IMAP session and a logged-in SMTP session on the running server


class _Wire:
    """A line-based TLS client; reconnects (and logs in) after the server hung up."""

    def __init__(self, port: int, login: Callable[[_Wire], None]) -> None:
        self.port = port
        self._login = login
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def connect(self) -> None:
        raw = socket.create_connection((HOST, self.port), timeout=HANG_WIRE * 6)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = client_tls().wrap_socket(raw)
        self.buf = bytearray()
        self._login(self)

    def line(self) -> bytes:
        assert self.sock is not None
        while (nl := self.buf.find(b"\r\n")) < 0:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buf += data
        out = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return out

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# IMAP commands that change what the connection is (TLS, compression), wait for more from the
# client (IDLE, AUTHENTICATE) or end it: not sent over the wire.
_WIRE_SKIP = re.compile(rb"(?i)\b(IDLE|AUTHENTICATE|LOGOUT|COMPRESS|STARTTLS|APPEND|LOGIN)\b")
_SMTP_SEEDS = [
    b"EHLO client.example",
    b"MAIL FROM:<%(me)s> SIZE=100 BODY=8BITMIME",
    b"RCPT TO:<%(me)s>",
    b"RCPT TO:<nobody@example.invalid>",
    b"RSET",
    b"NOOP",
    b"VRFY <%(me)s>",
    b"HELP MAIL",
    b"AUTH PLAIN AGFAYgBj",
    b"MAIL FROM:<j\xc3\xb6rg@example.test> SMTPUTF8",
]
_ENHANCED = re.compile(rb"^([45])\d\d[ -]\1\.\d{1,3}\.\d{1,3}( |$)")


def _imap_wire(wire: _Wire, tag: bytes, chunks: list[bytes]) -> str | None:
    """Send one mutated command as a single line; its answer must be a tagged reply (or a BYE
    and a close) that is not an internal error."""
    line = b" ".join(chunks[::2]).replace(b"\r", b"").replace(b"\n", b"").replace(b"{", b"(")
    rest = line.split(b" ", 1)[1] if b" " in line else line
    if _WIRE_SKIP.search(rest):
        rest = b"NOOP"
    wire.send(tag + b" " + rest + b"\r\n")
    while True:
        try:
            reply = wire.line()
        except ConnectionError:
            return f"connection dropped without BYE after {rest!r:.100}"
        if b"SERVERBUG" in reply:
            return f"internal error: {reply!r:.200}"
        if reply.startswith(tag + b" ") or reply.startswith(b"* BAD"):
            return None
        if reply.startswith(b"* BYE"):
            wire.close()
            return None


def _smtp_line(rng: random.Random, me: bytes) -> bytes:
    line = bytearray(rng.choice(_SMTP_SEEDS) % {b"me": me})
    for _ in range(rng.randint(0, 3)):
        at = rng.randint(0, len(line))
        line[at : at + rng.randint(0, 4)] = rng.choice(
            [bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 3))), b"<", b">", b":", b" "]
        )
    return bytes(line).replace(b"\r", b"").replace(b"\n", b"")


def _smtp_wire(wire: _Wire, line: bytes) -> str | None:
    """Send one line; every line of its reply has a code, every failure an enhanced code, and
    the server hangs up only after a 221 or 421 or its last 502."""
    wire.send(line + b"\r\n")
    while True:
        try:
            reply = wire.line()
        except ConnectionError:
            return f"connection dropped after {line!r:.100}"
        if not re.match(rb"^[2-5]\d\d[ -]", reply):
            return f"not an SMTP reply: {reply!r:.200}"
        if reply[:1] in b"45" and not _ENHANCED.match(reply):
            return f"no enhanced status code: {reply!r:.200}"
        if reply.startswith(b"451 4.3.0"):
            return f"internal error: {reply!r:.200}"
        if reply[3:4] == b" ":
            break
    if reply.startswith(b"354"):  # DATA was accepted: end the empty message
        return _smtp_wire(wire, b".")
    if reply.startswith((b"221", b"421", b"502")):
        wire.close()
    return None


def _imap_login(account: Account) -> Callable[[_Wire], None]:
    def login(wire: _Wire) -> None:
        wire.line()  # greeting
        wire.send(
            b'l LOGIN "%s" "%s"\r\nm SELECT INBOX\r\n'
            % (account.address.encode(), account.key.encode())
        )
        while not wire.line().startswith(b"m "):
            pass

    return login


def _smtp_login(account: Account) -> Callable[[_Wire], None]:
    import base64

    token = base64.b64encode(f"\0{account.address}\0{account.key}".encode())

    def login(wire: _Wire) -> None:
        while wire.line()[3:4] != b" ":  # greeting
            pass
        for command in (b"EHLO client.example", b"AUTH PLAIN " + token):
            wire.send(command + b"\r\n")
            while (reply := wire.line())[3:4] != b" ":
                pass
            if reply[:1] != b"2":
                raise BenchError(f"fuzz: SMTP login failed: {reply!r}")

    return login


# ---------------------------------------------------------------------------------------------
# The run


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_fuzz(
    server: Target, account: Account, total: int, seed: int, summary: Summary
) -> Section:
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    # aiosmtpd logs every malformed PROXY header it reads: here that is nearly every one.
    logging.getLogger("mail.debug").setLevel(logging.CRITICAL)
    in_process: list[tuple[str, float, Callable[[], tuple[object, Callable[[], object]]]]] = [
        ("IMAP command parser", 0.45, lambda: _pair(_imap_input(rng), check_request)),
        ("IMAP search grammar", 0.15, lambda: _pair(_search_input(rng), check_request)),
        ("MIME ENVELOPE/BODYSTRUCTURE", 0.25, lambda: _pair(_mime_input(rng), check_message)),
        (
            "PROXY header parser",
            0.15,
            lambda: _pair(_proxy_input(rng), lambda d: loop.run_until_complete(check_proxy(d))),
        ),
    ]
    tallies = {name: Tally() for name, _, _ in in_process}
    tallies["IMAP over TLS"] = Tally()
    tallies["SMTP over TLS"] = Tally()
    imap = _Wire(server.ports["imaps"], _imap_login(account))
    smtp = _Wire(server.ports["submissions"], _smtp_login(account))
    me = account.address.encode()
    names = [name for name, _, _ in in_process]
    weights = [weight for _, weight, _ in in_process]
    makers = {name: make for name, _, make in in_process}
    server_before = server.memory_kib()
    rss_before = _rss_kib()
    progress(f"fuzz: {total} inputs, seed {seed}")
    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        for i in range(total):
            if rng.random() < WIRE_SHARE:
                if rng.random() < 0.5:
                    chunks = _imap_input(rng)
                    _send(
                        tallies["IMAP over TLS"],
                        imap,
                        functools.partial(_imap_wire, imap, b"z%d" % i, chunks),
                        chunks,
                    )
                else:
                    line = _smtp_line(rng, me)
                    _send(
                        tallies["SMTP over TLS"],
                        smtp,
                        functools.partial(_smtp_wire, smtp, line),
                        line,
                    )
            else:
                name = rng.choices(names, weights)[0]
                data, check = makers[name]()
                spent, failure = _timed(check)
                if failure is None and spent > HANG_MS / 1000:
                    # A pause of the process (a garbage collection) is not the input's: a hang
                    # is an input that is slow again when run again.
                    spent = min(spent, _timed(check)[0])
                tallies[name].record(spent, HANG_MS / 1000, failure, data)
            if (i + 1) % REPORT_EVERY == 0:
                rate = (i + 1) / (time.perf_counter() - started)
                bad = sum(t.crashes + t.hangs for t in tallies.values())
                progress(f"fuzz: {i + 1} inputs, {rate:.0f}/s, {bad} crashes or hangs")
    finally:
        imap.close()
        smtp.close()
        loop.close()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    server_after = server.memory_kib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    crashes = sum(t.crashes for t in tallies.values())
    hangs = sum(t.hangs for t in tallies.values())
    section = Section(
        f"Fuzzing: {total} inputs (seed {seed}), mutations of real commands, messages and "
        f"headers; a hang is over {HANG_MS} ms of CPU in-process, {HANG_WIRE:.0f} s over TLS"
    )
    for name, tally in tallies.items():
        unit = "CPU" if name in makers else "wall"
        section.add(
            f"{name}: inputs / crashes / hangs",
            f"{tally.inputs} / {tally.crashes} / {tally.hangs}",
            f"slowest {tally.slowest * 1000:.1f} ms {unit}",
        )
    section.add("all: inputs / crashes / hangs", f"{total} / {crashes} / {hangs}")
    section.add("inputs/s", f"{total / wall:.0f}", f"over {wall:.0f} s ({cpu:.0f} s of CPU here)")
    section.add(
        "this process: RSS before / after / peak",
        f"{rss_before // 1024} / {_rss_kib() // 1024} / {peak // 1024}",
        "MiB",
    )
    section.add(
        "server: RSS before / after",
        f"{server_before['Rss'] // 1024} / {server_after['Rss'] // 1024}",
        "MiB",
    )
    summary.add(label(total), f"{crashes} / {hangs}", "0 / 0")
    summary.add("fuzz inputs/s", f"{total / wall:.0f}")
    examples = [f"{name}: {e}" for name, t in tallies.items() for e in t.examples]
    for example in examples:
        section.add("  found", "", example)
    if examples:
        section.print()
        raise BenchError(f"fuzz: {crashes} crashes, {hangs} hangs; first: {examples[0]}")
    return section


def _pair(data: object, check: Callable[[object], object]) -> tuple[object, Callable[[], object]]:
    return data, lambda: check(data)


def _send(tally: Tally, wire: _Wire, exchange: Callable[[], str | None], data: object) -> None:
    """One input over the wire: (re)connect, send, judge the answer's soundness and time."""
    if wire.sock is None:
        wire.connect()
    t0 = time.perf_counter()
    try:
        failure = exchange()
    except TimeoutError:
        failure = f"no answer in {HANG_WIRE * 6:.0f} s"
    tally.record(time.perf_counter() - t0, HANG_WIRE, failure, data)
    if failure is not None:
        wire.close()


def _run(bench: Bench) -> Section:
    # The agent's inbox: mutated commands may create mailboxes and flag or move its mail.
    counts = bench.counts
    return bench_fuzz(
        bench.servers[0], bench.agent, counts.fuzz_inputs, counts.seed or 15, bench.summary
    )


def label(inputs: int) -> str:
    return f"fuzz: {inputs} inputs, crashes / hangs"


PHASE = Phase(
    "fuzz",
    _run,
    lambda counts, nodes: [label(counts.fuzz_inputs), "fuzz inputs/s"],
    default=False,
)


def _atheris(argv: list[str]) -> None:
    """Coverage-guided fuzzing of one in-process target with atheris (libFuzzer): a failed
    check is a crash it reports with the input, and -timeout=N seconds makes a hang one."""
    import atheris  # type: ignore[import-not-found]

    loop = asyncio.new_event_loop()
    logging.getLogger("mail.debug").setLevel(logging.CRITICAL)

    def imap(data: bytes) -> None:
        chunks = data.split(b"\r\n")  # [line, literal, line, ...] when that framing fits
        check_request(chunks if len(chunks) % 2 else [data])

    targets: dict[str, Callable[[bytes], object]] = {
        "imap": imap,
        "mime": check_message,
        "proxy": lambda data: loop.run_until_complete(check_proxy(data)),
    }
    if len(argv) < 2 or argv[1] not in targets:
        raise SystemExit(f"usage: {argv[0]} {{{','.join(targets)}}} [libFuzzer flags]")
    seeds: dict[str, list[bytes]] = {
        "imap": [b"\r\n".join(chunks) for chunks in VALID_COMMANDS],
        "mime": MESSAGES,
        "proxy": PROXY_HEADERS,
    }
    # The seeds of the mutational loop start the corpus, in a directory of its own unless
    # the flags name one.
    flags = argv[2:]
    if not any(not flag.startswith("-") for flag in flags):
        corpus = Path(tempfile.mkdtemp(prefix=f"mailgate-fuzz-{argv[1]}-"))
        for n, seed in enumerate(seeds[argv[1]]):
            (corpus / f"seed{n}").write_bytes(seed)
        flags.append(str(corpus))
    atheris.instrument_all()
    atheris.Setup([argv[0], *flags], targets[argv[1]])
    atheris.Fuzz()


if __name__ == "__main__":
    _atheris(sys.argv)
