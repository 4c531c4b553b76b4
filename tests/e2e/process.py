"""Helpers for tests that run the real `mailgate` console script as a subprocess: a clean
environment, a config file for a temp directory (and, on PostgreSQL, a fresh database), and a
`mailgate serve` process whose listening ports are read off its own start-up lines."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import Loop, postgres

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


@contextlib.contextmanager
def config_file(directory: Path, backend: str, *, password: str = "") -> Iterator[Path]:
    """A mailgate.toml for `directory` on `backend`: free ports, its own data (and database).

    `password` goes into the PostgreSQL URL (the test server trusts loopback and ignores it),
    to see that it is never shown.
    """
    database = ""
    name = None
    pg = postgres()
    if backend == "postgres":
        assert pg is not None
        name = f"mailgate_cli_{uuid.uuid4().hex[:12]}"
        Loop.get().run(pg.create(name))
        database = pg.database_url(name)
        if password:
            database = database.replace("@", f":{password}@", 1)
    path = directory / "mailgate.toml"
    path.write_text(
        "[server]\n"
        'hostname = "mail.example.test"\n'
        f'data_dir = "{directory / "data"}"\n'
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


class Serve:
    """`mailgate serve` in a subprocess; `ports` are those it printed, read before `ready`."""

    def __init__(
        self, config: Path, cwd: Path, timeout: float = 60, *, as_json: bool = False
    ) -> None:
        self.proc = subprocess.Popen(
            [MAILGATE, "serve", "--config", str(config), *(["--json"] if as_json else [])],
            cwd=cwd,
            env=clean_env(),
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
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                self.proc.wait(timeout=10)
                raise AssertionError(f"serve exited before ready: {self.stdout} {self._stderr}")
            if m := _LISTENING.match(line):
                self.ports[m.group(1)] = int(m.group(2))
            if line == "ready":
                return
            if as_json and line.startswith("{"):
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
            raise AssertionError(f"no line from serve in time; so far {self.stdout}")
        try:
            line = self._lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(f"no line from serve in time; so far {self.stdout}") from None
        if line is not None:
            self.stdout.append(line)
        return line

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
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
