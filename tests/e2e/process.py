"""Helpers for tests that run the real `mailgate` console script as a subprocess: a clean
environment, a config file for a temp directory (and, on PostgreSQL, a fresh database), and a
`mailgate serve` process whose listening ports are read off its own start-up lines."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import make_message
from tests.harness import Account, Loop, client_tls, postgres

MAILGATE = str(Path(sys.executable).parent / "mailgate")
# The checkout these tests belong to. The console script runs with the temporary directory as
# its working directory, where the interpreter's editable install would import whichever
# checkout it was installed from (another worktree's code, maybe): PYTHONPATH puts this one first.
CHECKOUT = Path(__file__).resolve().parents[2]


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any MAILGATE_* setting, importing this checkout's
    mailgate, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAILGATE, *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mailgate ARGS` run by this process's `mailgate.cli.main`, as the console script runs
    it (no MAILGATE_* variables, `cwd` the working directory), but without starting an
    interpreter and importing mailgate for each command: a second of CPU apiece, which was a
    fifth of the test suite's. Commands that serve, or that a test gives an environment of
    its own, run as real subprocesses (`run`)."""
    from mailgate.cli import main

    out, err = io.StringIO(), io.StringIO()
    hidden = {k: v for k, v in os.environ.items() if k.startswith("MAILGATE_")}
    for name in hidden:
        del os.environ[name]
    try:
        with (
            contextlib.chdir(cwd),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.update(hidden)
    return subprocess.CompletedProcess([MAILGATE, *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def config_file(
    directory: Path, backend: str, *, password: str = "", workers: int = 1
) -> Iterator[Path]:
    """A mailgate.toml for `directory` on `backend`: free ports, its own data (and database).

    `password` goes into the PostgreSQL URL (the test server trusts loopback and ignores it),
    to see that it is never shown. `workers`: one process unless a test is about workers.
    """
    database = ""
    name = None
    pg = postgres()
    if backend == "postgres":
        assert pg is not None
        name = f"mailgate_cli_{uuid.uuid4().hex[:12]}"
        Loop.get().run(pg.create(name, migrated=False))  # as a new install: empty
        database = pg.database_url(name)
        if password:
            database = database.replace("@", f":{password}@", 1)
    path = directory / "mailgate.toml"
    path.write_text(
        "[server]\n"
        'hostname = "mail.example.test"\n'
        f'data_dir = "{directory / "data"}"\n'
        f"workers = {workers}\n"
        "[database]\n"
        f'url = "{database}"\n'
        "[imap]\nport = 0\ntls_port = 0\n"
        "[smtp]\nsubmission_port = 0\ntls_port = 0\nmx_port = 0\n"
        "[api]\nport = 0\n"
    )
    try:
        yield path
    finally:
        if name is not None and pg is not None:
            Loop.get().run(pg.drop(name))


# "listening  imaps  127.0.0.1:993 (TLS)", or for the API "(http://host:port, docs at /docs)".
_LISTENING = re.compile(r"^\s+listening\s+(\S+)\s+\S+:(\d+) \((TLS|STARTTLS|https?://.*)\)$")


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


# A process that imports what `mailgate serve` needs once, then forks a server for each line on
# its stdin (the child prints its pid first); at the end of its stdin it kills its children.
# A restart then costs what the server does to start, not the imports: on a busy machine those
# are most of it, and nothing to do with what a restart has to recover.
_FORKING = """
import os, signal, sys
import alembic.command, mailgate.app, mailgate.cli

def reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

signal.signal(signal.SIGCHLD, reap)
children = []
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        print(f"child {os.getpid()}", flush=True)
        code = mailgate.cli.main(sys.argv[1:])
        sys.stdout.flush()
        os._exit(code)
    children.append(pid)
for pid in children:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class Serve:
    """`mailgate serve` in a subprocess; `ports` are those it printed, read before `ready`.

    `forking`: the subprocess imports mailgate and waits; each fork() starts a server as its
    child (the one kill() kills), so a server can be killed and started again quickly."""

    def __init__(
        self,
        config: Path,
        cwd: Path,
        timeout: float = 60,
        *,
        as_json: bool = False,
        forking: bool = False,
    ) -> None:
        args = ["serve", "--config", str(config), *(["--json"] if as_json else [])]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FORKING, *args] if forking else [MAILGATE, *args],
            cwd=cwd,
            env=clean_env(),
            stdin=subprocess.PIPE if forking else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.ports: dict[str, int] = {}
        self.ready: dict[str, Any] = {}  # with as_json, what the ready line said
        self.child: int | None = None  # forking: the server running now
        self._as_json = as_json
        if not forking:
            try:
                self._wait_ready(timeout)
            except BaseException:
                self.kill()  # a server that was slow to start must not outlive the test
                raise

    @property
    def log(self) -> str:
        """What it (and, forking, every server it forked) wrote to stderr so far."""
        return "".join(self._stderr)

    def fork(self, timeout: float = 60) -> None:
        """Forking: start a server; returns once it is ready."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self._wait_ready(timeout)

    def kill_child(self, timeout: float = 30) -> None:
        """Forking: SIGKILL the server running now, and wait (bounded) until it is gone."""
        assert self.child is not None
        child, self.child = self.child, None
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _alive(child):
            assert time.monotonic() < deadline, f"server {child} outlived SIGKILL"
            time.sleep(0.01)  # between polls of a bounded wait

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                self.proc.wait(timeout=10)
                raise AssertionError(f"serve exited before ready: {self.stdout} {self._stderr}")
            if line.startswith("child "):
                self.child = int(line.split()[1])
            if m := _LISTENING.match(line):
                self.ports[m.group(1)] = int(m.group(2))
            if line == "ready":
                return
            if self._as_json and line.startswith("{"):
                self.ready = json.loads(line)
                self.ports = {ln["name"]: ln["port"] for ln in self.ready["listeners"]}
                return

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _next_line(self, deadline: float) -> str | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(self._late())
        try:
            line = self._lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(self._late()) from None
        if line is not None:
            self.stdout.append(line)
        return line

    def _late(self) -> str:
        stderr = "".join(self._stderr[-30:])
        return f"no line from serve in time; so far {self.stdout[-15:]}; stderr ends:\n{stderr}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> Finished:
        """Send `sig` and wait (bounded) for the process to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("mailgate serve did not exit after the signal") from None
        for reader in self._readers:
            reader.join(timeout=10)
        while (line := self._lines.get_nowait()) is not None:
            self.stdout.append(line)
        return Finished(code, "\n".join(self.stdout) + "\n", "".join(self._stderr))

    def kill(self) -> None:
        if self.child is not None:
            self.kill_child()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _alive(pid: int) -> bool:
    """Running still (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def submit(node: Serve, account: Account, to: list[str], subject: str) -> str:
    """Submit over TLS; returns once the 250 came (the message is acknowledged)."""
    message = make_message(account.address, to, subject)
    with smtplib.SMTP_SSL(
        "127.0.0.1", node.ports["submissions"], context=client_tls(), timeout=30
    ) as smtp:
        smtp.login(account.address, account.key)
        smtp.sendmail(account.address, to, message)
    return subject
