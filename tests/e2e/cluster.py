"""Several real `mailgate serve` processes on one PostgreSQL database, for the scale-out tests.

The nodes can reach PostgreSQL through a TCP proxy on loopback that the test can cut (close
every connection and refuse new ones) and restore: a database outage, as a node sees it,
without touching the machine's PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.e2e.process import Serve, run
from tests.harness import Account, Loop, Postgres


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target address until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut
            if refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._open -= {source, sink}

    def cut(self) -> None:
        """Every open connection dies; new ones are refused until restore()."""
        with self._lock:
            self._cut = True
            victims = list(self._open)
        for s in victims:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    @classmethod
    def before(cls, url: str) -> CuttableProxy:
        """A proxy to the database server of a SQLAlchemy URL (`via` gives the URL to use)."""
        parts = urlsplit(url)
        return cls((parts.hostname or "127.0.0.1", parts.port or 5432))

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@dataclass
class Cluster:
    directory: Path
    database_url: str
    nodes: list[Serve] = field(default_factory=list)
    configs: list[Path] = field(default_factory=list)

    def account(self, prefix: str = "user") -> Account:
        address = f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"
        result = run(
            "inbox",
            "create",
            address,
            "--json",
            "--config",
            str(self.configs[0]),
            cwd=self.directory,
        )
        assert result.returncode == 0, result.stderr
        return Account(address, json.loads(result.stdout)["api_key"])


def _write_config(directory: Path, database_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mailgate.toml"
    path.write_text(
        "[server]\n"
        'hostname = "mail.example.test"\n'
        f'data_dir = "{directory / "data"}"\n'
        "workers = 1\n"
        "[database]\n"
        f'url = "{database_url}"\n'
        "pool_timeout = 3.0\n"
        "[imap]\nport = 0\ntls_port = 0\n"
        "[smtp]\nsubmission_port = 0\ntls_port = 0\nmx_port = 0\n"
        "[api]\nport = 0\n"
        "[auth]\nmax_failures = 100000\nfailure_delay = 0.0\n"
    )
    return path


def via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the proxy's on loopback."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))


@contextlib.contextmanager
def cluster(
    directory: Path, pg: Postgres, nodes: int = 2, *, proxy: CuttableProxy | None = None
) -> Iterator[Cluster]:
    """`nodes` serve processes sharing one fresh database (reached through `proxy` if given)."""
    name = f"mailgate_nodes_{uuid.uuid4().hex[:12]}"
    Loop.get().run(pg.create(name, migrated=False))  # `db upgrade` below migrates it
    url = pg.database_url(name)
    node_url = via(url, proxy.port) if proxy is not None else url
    result = Cluster(directory, url)
    try:
        for i in range(nodes):
            result.configs.append(_write_config(directory / f"node{i}", node_url))
        # Migrate once up front, as `mailgate db upgrade` would before a rolling start.
        migrated = run("db", "upgrade", "--config", str(result.configs[0]), cwd=directory)
        assert migrated.returncode == 0, migrated.stderr
        for config in result.configs:
            result.nodes.append(Serve(config, directory))
        yield result
    finally:
        for node in result.nodes:
            node.stop()
        Loop.get().run(pg.drop(name))
