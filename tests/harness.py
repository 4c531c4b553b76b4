"""Real mailgate servers for tests: the App on ephemeral loopback ports, in this process.

One background thread runs an asyncio loop with Twisted's asyncio reactor installed (once per
process, as `mailgate serve` does). Test code stays synchronous and talks to the servers with
real clients (imaplib, smtplib, raw TLS sockets); store calls hop onto the loop thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import imaplib
import os
import shutil
import smtplib
import ssl
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mailgate.app import App, install_reactor
from mailgate.config import Settings, with_overrides
from mailgate.provision import create_inbox, issue_key
from mailgate.store.api import Store
from mailgate.tls import ensure_certificate

T = TypeVar("T")

PG_URL_ENV = "MAILGATE_TEST_DATABASE_URL"
DOMAIN = "example.test"
HOSTNAME = "mail.example.test"  # test servers' [server] hostname


class Loop:
    """The process-wide server loop (the asyncio reactor can be installed only once)."""

    _instance: Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            install_reactor(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="mailgate-loop", daemon=True)
        self.thread.start()
        if not ready.wait(30):
            raise RuntimeError("the server loop did not start")

    @classmethod
    def get(cls) -> Loop:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def client_tls() -> ssl.SSLContext:
    """Clients trust the test server's self-signed certificate without checking it."""
    # create_default_context() without the system's CA certificates: they are never used here,
    # and loading them into each new context was a tenth of the test suite's CPU time.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class Account:
    address: str
    key: str


def unique_address(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@{DOMAIN}"


class Postgres:
    """One fresh database per server on the PostgreSQL named by MAILGATE_TEST_DATABASE_URL."""

    # This process's migrated, empty database (by server URL) that `create` copies.
    _templates: dict[str, str] = {}

    def __init__(self, url: str) -> None:
        self.url = url

    def _admin_dsn(self) -> str:
        parts = urlsplit(self.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        return urlunsplit(parts)

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    async def create(self, name: str, *, migrated: bool = True) -> None:
        """A new database `name`: with `migrated`, a copy of one the migrations brought to the
        newest schema (they run once per test process, not once per database: the
        migration tests start from empty ones)."""
        import asyncpg

        template = await self._template() if migrated else None
        conn = await asyncpg.connect(self._admin_dsn())
        try:
            copy = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            await conn.close()

    async def _template(self) -> str:
        name = self._templates.get(self.url)
        if name is None:
            name = f"mailgate_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            await self.create(name, migrated=False)
            store = await Store.open(self.database_url(name))
            await store.close()  # a template must have no connections when it is copied
            self._templates[self.url] = name
            atexit.register(asyncio.run, self.drop(name))
        return name

    async def drop(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@functools.cache
def _sqlite_template() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="mailgate-template-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "mailgate.db"

    async def migrate() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        await store.close()

    Loop.get().run(migrate())
    return path


@functools.cache
def _certificate_template(hostname: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="mailgate-certs-"))
    atexit.register(shutil.rmtree, directory, True)
    settings = with_overrides(Settings(), server={"hostname": hostname, "data_dir": str(directory)})
    return ensure_certificate(settings).cert_path.parent


def certificate_copy(data_dir: Path, hostname: str) -> None:
    """Unless it has one: a copy, in `data_dir`, of a self-signed certificate for `hostname`
    made once per test process (an RSA key for each server started was 1.5% of the suite's
    CPU). The server generates its own where a test says where the data goes
    otherwise, as in tests/unit/test_tls.py and the `mailgate serve` tests."""
    certs = data_dir / "certs"
    if not certs.exists():
        shutil.copytree(_certificate_template(hostname), certs)


def migrated_sqlite(path: Path) -> None:
    """Unless `path` exists: an SQLite database there, migrated to the newest schema and empty
    (a copy: the migrations run once per test process)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_sqlite_template(), path)


def postgres() -> Postgres | None:
    url = os.environ.get(PG_URL_ENV)
    return Postgres(url) if url else None


class Server:
    """A running mailgate App; stop() is idempotent."""

    def __init__(self, settings: Settings, backend: str, database: str | None = None) -> None:
        self.loop = Loop.get()
        self.settings = settings
        self.backend = backend
        self._database = database
        self.app = App(settings)
        try:
            self.loop.run(self.app.start())
        except BaseException:
            self._drop_database()
            raise
        self.running = True

    @property
    def store(self) -> Store:
        assert self.app.store is not None
        return self.app.store

    def port(self, name: str) -> int:
        return self.app.port(name)

    @property
    def host(self) -> str:
        """The loopback address it listens on (tests may give servers their own)."""
        return self.settings.server.bind

    @property
    def imaps(self) -> int:
        return self.port("imaps")

    @property
    def imap(self) -> int:
        return self.port("imap")

    @property
    def smtps(self) -> int:
        return self.port("submissions")

    @property
    def submission(self) -> int:
        return self.port("submission")

    @property
    def api_url(self) -> str:
        """The HTTP API's base URL, for the agentmail SDK's environment."""
        scheme = "https" if self.settings.api.tls else "http"
        return f"{scheme}://{self.host}:{self.port('api')}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a store coroutine on the server's loop."""
        return self.loop.run(coro, timeout)

    def wake_outbound(self) -> None:
        """Have the delivery worker look at its queue now, not at its next poll."""
        worker = self.app.outbound
        assert worker is not None
        self.loop.loop.call_soon_threadsafe(worker.wake)

    def retry_outbound(self) -> int:
        """Every queued recipient due now (`mailgate queue retry --all`), and the worker told."""
        count = self.call(self.store.retry_outbound())
        self.wake_outbound()
        return count

    def account(self, address: str | None = None, pod: str = "default") -> Account:
        """A new inbox with an inbox-scoped key."""
        address = address or unique_address()

        async def make() -> Account:
            inbox = await create_inbox(self.store, address, pod)
            _, token = await issue_key(self.store, inbox=inbox.address)
            return Account(inbox.address, token)

        return self.call(make())

    def pod_key(self, pod: str) -> str:
        async def make() -> str:
            _, token = await issue_key(self.store, pod=pod)
            return token

        return self.call(make())

    def inbox_key(self, address: str) -> str:
        async def make() -> str:
            _, token = await issue_key(self.store, inbox=address)
            return token

        return self.call(make())

    def org_key(self) -> str:
        """A key for every pod (`mailgate key create --org`)."""

        async def make() -> str:
            _, token = await issue_key(self.store, organization=True)
            return token

        return self.call(make())

    def imap_client(self, account: Account | None = None) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(self.host, self.imaps, ssl_context=client_tls(), timeout=30)
        if account is not None:
            client.login(account.address, account.key)
        return client

    def smtp_client(self, account: Account | None = None) -> smtplib.SMTP_SSL:
        client = smtplib.SMTP_SSL(self.host, self.smtps, context=client_tls(), timeout=30)
        if account is not None:
            client.login(account.address, account.key)
        return client

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        self.loop.run(self.app.stop())
        self._drop_database()

    def _drop_database(self) -> None:
        pg = postgres()
        if self._database and pg is not None:
            self.loop.run(pg.drop(self._database))


def settings_for(
    tmp: Path, backend: str, **sections: dict[str, Any]
) -> tuple[Settings, str | None]:
    """Settings for a test server: loopback, ephemeral ports, its own data directory."""
    database = None
    db_url = ""
    if backend == "postgres":
        pg = postgres()
        assert pg is not None
        database = f"mailgate_test_{uuid.uuid4().hex[:12]}"
        Loop.get().run(pg.create(database))
        db_url = pg.database_url(database)
    else:
        migrated_sqlite(tmp / "mailgate.db")
    certificate_copy(tmp, HOSTNAME)
    base = with_overrides(
        Settings(),
        server={"hostname": HOSTNAME, "bind": "127.0.0.1", "data_dir": str(tmp)},
        database={"url": db_url},
        imap={"port": 0, "tls_port": 0},
        # Shared servers see many deliberate failures from 127.0.0.1; throttling has its own tests.
        auth={"max_failures": 100000, "failure_delay": 0.0},
        smtp={"submission_port": 0, "tls_port": 0, "mx_port": 0},
        api={"port": 0},
        # No DNS server answers there: mail queued for other domains fails fast and waits for
        # a retry, instead of asking the machine's resolver. Tests that send to the world run
        # their own DNS server (tests/dnsserver.py).
        dns={"nameservers": ("127.0.0.1:9",), "timeout": 1.0},
    )
    return with_overrides(base, **sections), database


@contextlib.contextmanager
def running_server(tmp: Path, backend: str, **sections: dict[str, Any]) -> Iterator[Server]:
    settings, database = settings_for(tmp, backend, **sections)
    server = Server(settings, backend, database)
    try:
        yield server
    finally:
        server.stop()
