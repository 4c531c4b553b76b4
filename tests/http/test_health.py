"""GET /healthz: 200 while the store answers, 503 when it does not, and 200 again once it is
back. The database really goes away: on PostgreSQL the server reaches it through a TCP relay
that the test stops (the database going down, as the node sees it); on SQLite the database file
is cut to nothing under the running server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from mailgate.config import with_overrides
from tests.e2e.world import eventually
from tests.harness import Loop, Server, settings_for
from tests.http.metrics import parse


def health(server: Server) -> httpx.Response:
    return httpx.get(f"{server.api_url}/healthz", timeout=30)


def test_healthz_answers_200_while_the_store_answers(server: Server) -> None:
    response = health(server)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "ok"}
    assert response.headers["cache-control"] == "no-store"
    head = httpx.head(f"{server.api_url}/healthz", timeout=30)  # probes that only look
    assert head.status_code == 200
    assert "/healthz" not in httpx.get(f"{server.api_url}/openapi.json", timeout=30).text


def test_healthz_answers_503_when_the_sqlite_file_is_gone_bad(
    backend: str, make_server: Callable[..., Server]
) -> None:
    if backend != "sqlite":
        pytest.skip("the SQLite database file")
    server = make_server()
    assert health(server).status_code == 200
    database = Path(server.settings.server.data_dir) / "mailgate.db"
    os.truncate(database, 0)  # a disk that lost the file's pages, as the server sees it

    response = health(server)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.headers["retry-after"]
    # A scrape still answers; the queue, which only the store knows, is left out of it.
    metrics = parse(httpx.get(f"{server.api_url}/metrics", timeout=30).text)
    assert "mailgate_outbound_queue_depth" not in metrics.families
    assert metrics.value("mailgate_store_errors_total", error="StoreError") >= 1


class Relay:
    """A TCP relay on 127.0.0.1 to PostgreSQL; stopping it is the database going away for the
    one server that reaches it through the relay (and no one else's)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Relay on self.port (a free one the first time); nothing to do while relaying."""
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@pytest.fixture
def relayed(backend: str, tmp_path: Path) -> Iterator[tuple[Server, Relay]]:
    """A server whose PostgreSQL database is behind a Relay."""
    if backend != "postgres":
        pytest.skip("PostgreSQL, reached over TCP")
    settings, database = settings_for(tmp_path, backend)
    url = urlsplit(settings.database.url)
    relay = Relay((url.hostname or "127.0.0.1", url.port or 5432))
    loop = Loop.get()
    loop.run(relay.start())
    netloc = url.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{relay.port}"
    settings = with_overrides(settings, database={"url": urlunsplit(url._replace(netloc=netloc))})
    server = Server(settings, backend, database)
    try:
        yield server, relay
    finally:
        loop.run(relay.start())  # the database back, for a clean stop
        server.stop()
        loop.run(relay.stop())


def test_healthz_answers_503_while_postgresql_is_unreachable_and_200_once_back(
    relayed: tuple[Server, Relay],
) -> None:
    server, relay = relayed
    loop = Loop.get()
    assert health(server).status_code == 200

    loop.run(relay.stop())
    response = health(server)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "store": "not answering"}

    loop.run(relay.start())  # the same port: the database is back
    eventually(lambda: health(server).status_code == 200, 20, "healthz to answer 200 again")
