"""Engines, transactions and migrations: the part of the store that knows which database it is on.

SQLite (embedded default): WAL journal so readers never wait for the writer, synchronous=FULL so
a commit is on disk before we answer 250/OK, and one writer connection taking the write lock at
BEGIN (BEGIN IMMEDIATE) so concurrent writers queue instead of failing to upgrade a read lock.

PostgreSQL: one pool for both; write transactions serialise per mailbox on the mailbox row lock
they take first, and deadlocks or serialisation failures are retried here, never surfaced.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mailgate.store.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same on every node.
_MIGRATION_LOCK_ID = 0x6D61696C67617465

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = {"40001", "40P01"}
_RETRIES = 8


class Database:
    """Holds the engines and runs transactions with the retry and error policy above."""

    def __init__(self, url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.reader = _sqlite_engine(url, immediate=False, pool_size=pool_size)
            self.writer = _sqlite_engine(url, immediate=True, pool_size=1)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self.reader = self.writer = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
            )
            self._write_lock = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read transaction; `snapshot` asks for one consistent view across statements."""
        try:
            async with self.reader.connect() as conn:
                if snapshot and not self.is_sqlite:
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
        except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
            raise Unavailable(_describe(exc)) from exc

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in a write transaction, retrying it whole when the database asks us to."""
        for attempt in range(_RETRIES):
            try:
                if self._write_lock is not None:
                    async with self._write_lock:
                        return await self._write_once(work)
                return await self._write_once(work)
            except DBAPIError as exc:
                if not _retryable(exc) or attempt == _RETRIES - 1:
                    if isinstance(exc, OperationalError | InterfaceError):
                        raise Unavailable(_describe(exc)) from exc
                    if _retryable(exc):
                        raise Conflict("too many concurrent changes, try again") from exc
                    raise
                await asyncio.sleep(random.uniform(0.001, 0.005) * (2**attempt))
            except (PoolTimeout, OSError) as exc:
                raise Unavailable(_describe(exc)) from exc
        raise AssertionError("unreachable")

    async def _write_once(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.writer.begin() as conn:
            return await work(conn)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (safe when several nodes start at once)."""
        try:
            async with self.writer.begin() as conn:
                if not self.is_sqlite:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                await conn.run_sync(_upgrade)
        except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
            raise Unavailable(_describe(exc)) from exc


def _upgrade(sync_conn: Any) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's implicit transactions would defeat it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
        ):
            cursor.execute(pragma)
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    # asyncpg wraps its own exception classes; the SQLSTATE sits on the cause.
    cause = getattr(orig, "__cause__", None)
    if getattr(cause, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    # SQLite: another process (e.g. the CLI) held the lock past busy_timeout.
    return "database is locked" in str(orig)


def _describe(exc: BaseException) -> str:
    return f"database unavailable ({type(exc).__name__})"
