"""mailgate as subprocesses: `mailgate serve` (its CPU and memory read from /proc), the
one-shot commands (db upgrade, inbox create), the generated config and the fresh PostgreSQL
database of a run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common import HOST, READY_TIMEOUT, Account, BenchError
from meters import die_with_parent, memory_kib, open_fds, process_cpu_clock, stat_cpu_seconds

# The `mailgate` command of this interpreter's installation (the project venv's).
MAILGATE = (sys.executable, "-m", "mailgate.cli")
SERVER_HOSTNAME = "localhost"  # [server] hostname: the authserv-id of Authentication-Results


class Server:
    """One `mailgate serve` subprocess, in its own session so that ^C reaches only us."""

    queues = False  # its 250 after DATA means the message is in the recipient's mailbox

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
                preexec_fn=die_with_parent,
            )
        self._clock = process_cpu_clock(self.proc.pid)

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

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

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
        return stat_cpu_seconds(self.pid)

    def memory_kib(self) -> dict[str, int]:
        """Rss, Pss and Anonymous (KiB) from smaps_rollup."""
        return memory_kib(self.pid)

    def open_fds(self) -> int:
        return open_fds(self.pid)


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


def write_config(path: Path, data_dir: Path, database_url: str, extra: dict[str, Any]) -> None:
    settings: dict[str, dict[str, Any]] = {
        # One process unless a phase is about workers (bench/workers.py).
        "server": {
            "hostname": SERVER_HOSTNAME,
            "bind": HOST,
            "data_dir": str(data_dir),
            "workers": 1,
        },
        "database": {"url": database_url},
        "imap": {"port": 0, "tls_port": 0},
        "smtp": {"submission_port": 0, "tls_port": 0, "mx_port": 0},
        "api": {"port": 0},
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


def server_env() -> dict[str, str]:
    # MAILGATE_* variables would override the generated config (ports, database): drop them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    # This checkout's mailgate, not whichever one the interpreter's editable install points at
    # (another worktree's): the servers run in a temporary directory.
    checkout = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, env.get("PYTHONPATH")]))
    # The load generator's senders send thousands an hour. An environment variable, not the
    # config file: a mailgate that has no [limits] (a baseline checkout) ignores it.
    env["MAILGATE_LIMITS_MESSAGES_PER_HOUR"] = "0"
    return env


def mailgate(config: Path, env: dict[str, str], *args: str) -> bytes:
    """Run a one-shot `mailgate` command on `config`; its stdout."""
    done = subprocess.run(
        [*MAILGATE, *args, "--config", str(config)],
        capture_output=True,
        cwd=config.parent,  # `-m` puts the cwd first on sys.path: no checkout there
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        what = " ".join(arg for arg in args if not arg.startswith("--"))
        raise BenchError(f"{what} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def db_upgrade(config: Path, env: dict[str, str]) -> None:
    """Apply the migrations once, before several nodes start on the same database."""
    mailgate(config, env, "db", "upgrade")


def create_inbox(config: Path, env: dict[str, str], address: str) -> Account:
    data = json.loads(mailgate(config, env, "inbox", "create", address, "--json"))
    return Account(data["inbox"]["address"], data["api_key"])
