"""Fixtures for store tests: the real Store on a fresh database of each backend, no server.

Every test that takes `store` (or `store_url` / `open_store`) runs once on SQLite (a new file
under tmp_path) and once on PostgreSQL (a new database, dropped afterwards); the PostgreSQL runs
are skipped, with the reason, when MAILGATE_TEST_DATABASE_URL is unset. The store is asyncio
code, so every coroutine runs on the one shared loop (`run`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mailgate.store.api import Store
from mailgate.store.records import Inbox, Mailbox
from tests.harness import DOMAIN, Loop, migrated_sqlite, postgres

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run a store coroutine on the shared loop and return its result."""
    return Loop.get().run(coro, timeout)


def message(n: int = 0, subject: str | None = None, body: str = "") -> bytes:
    """A small CRLF message; different `n` give different bytes (and so different blobs)."""
    subject = subject if subject is not None else f"Message {n}"
    return (
        f"From: sender@{DOMAIN}\r\n"
        f"To: rcpt@{DOMAIN}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <m{n}.{uuid.uuid4().hex}@{DOMAIN}>\r\n"
        f"\r\n"
        f"{body or f'Body of message {n}.'}\r\n"
    ).encode()


def address(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{DOMAIN}"


@contextlib.contextmanager
def database(backend: str, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    """The URL of a new database of this backend, removed afterwards: empty, or (`migrated`)
    with the newest schema and no data."""
    if backend == "sqlite":
        path = tmp_path / "store.db"
        if migrated:
            migrated_sqlite(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    pg = postgres()
    assert pg is not None
    name = f"mailgate_store_{uuid.uuid4().hex[:12]}"
    run(pg.create(name, migrated=migrated))
    try:
        yield pg.database_url(name)
    finally:
        run(pg.drop(name))


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new database of this backend with the newest schema, removed after the
    test (tests/store/test_migrations.py: an empty one)."""
    with database(backend, tmp_path, migrated=True) as url:
        yield url


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Store]]:
    """Open another Store on the test's database (a second "node"); all are closed after."""
    opened: list[Store] = []

    def make(**kwargs: Any) -> Store:
        s = run(Store.open(store_url, **kwargs))
        opened.append(s)
        return s

    yield make
    for s in reversed(opened):
        run(s.close())


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store()


@pytest.fixture
def inbox(store: Store) -> Inbox:
    return run(store.create_inbox(address()))


@pytest.fixture
def mailbox(store: Store, inbox: Inbox) -> Mailbox:
    """The inbox's INBOX."""
    return run(store.get_mailbox(inbox.id, "INBOX"))


def rows(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Raw rows from the database, to check what the API cannot show (blob sharing, GC)."""
    from sqlalchemy import text

    async def query() -> list[tuple[Any, ...]]:
        async with store.db.reader.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [tuple(r) for r in result]

    return run(query())


def count(store: Store, table: str) -> int:
    return int(rows(store, f"SELECT count(*) FROM {table}")[0][0])


def downgrade(store: Store, revision: str) -> None:
    """Take the store's database back to an older schema revision (to test an upgrade on data
    stored before it). As Database.migrate does, on SQLite with foreign keys off, so that a
    batch rebuild of a parent table cannot cascade-delete its children."""
    from alembic import command
    from alembic.config import Config

    from mailgate.store.database import MIGRATIONS, _sqlite_engine

    def down(sync_conn: Any) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, revision)

    async def go() -> None:
        engine = (
            _sqlite_engine(store.db.url, immediate=True, pool_size=1, foreign_keys=False)
            if store.db.is_sqlite
            else store.db.writer
        )
        try:
            async with engine.begin() as conn:
                await conn.run_sync(down)
        finally:
            if engine is not store.db.writer:
                await engine.dispose()

    run(go())
