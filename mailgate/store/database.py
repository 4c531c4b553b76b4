"""Engines, transactions and migrations: the part of the store that knows which database it is on.

SQLite (embedded default): WAL journal so readers never wait for the writer, synchronous=FULL so
a commit is on disk before we answer 250/OK, and one writer connection taking the write lock at
BEGIN (BEGIN IMMEDIATE) so concurrent writers queue instead of failing to upgrade a read lock.
That writer lives in a thread of its own and runs each write transaction there whole, on the
synchronous driver: with aiosqlite every statement, cursor and fetch would be a hand-off to its
thread and back through the (busy) event loop, some forty per delivery, and writers queue
behind the slowest of them. Reads run the same way on a pool of reader threads: a read that is
one function (run_read) in one hand-off, any other one hand-off per statement.

Group commit (SQLite): a commit costs an fsync of the WAL (several milliseconds) whatever it holds,
so the writes that queued while the writer was busy commit together, up to GROUP_COMMIT_MAX of them
(and GROUP_COMMIT_BYTES of messages) in one transaction, each in a SAVEPOINT of its own: one that
fails (over quota, a constraint, a bug) rolls back alone and raises to its own caller, the others
commit. Nobody learns their result, and no `after` runs, before the shared COMMIT has succeeded; if
it fails, every write in it fails with it (and is retried or raised as any failed write is). A
write that finds the writer idle goes at once, alone: nothing waits for company. The writes of a
batch run in the order they were queued and see each other's changes, so UIDs stay strictly
ascending, and their results (and so their events) are delivered in that order.

PostgreSQL: one pool for both; write transactions serialise per mailbox on the mailbox row lock
they take first, and deadlocks or serialisation failures are retried here, never surfaced. So are
integrity errors: there they mean another node committed first between our check and our write
(the same inbox created twice, a blob collected while we reused it), and a retry re-runs the
checks and gets the right answer (InboxExists, a fresh blob…).

No SQLAlchemy error leaves this module: what is left after the retries becomes a StoreError.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailgate.store.errors import Conflict, StoreError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same on every node.
_MIGRATION_LOCK_ID = 0x6D61696C67617465

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = {"40001", "40P01"}
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
IDLE_IN_TRANSACTION_MS = 60_000
_RETRIES = 8
# Most writes one SQLite transaction holds (group commit): enough to spread the fsync over a
# busy server's queue, few enough that the last in a batch waits little for the others.
GROUP_COMMIT_MAX = 32
# ...and at most about this many bytes of messages (a write's `size`), so that a small message
# queued with big ones does not wait for all of them to be written: the first write of a batch
# goes whatever its size.
GROUP_COMMIT_BYTES = 8 << 20
# Page cache per pooled reader (SQLite's default is 2000 KiB): every reader that a burst of
# reads opened keeps its cache for good, and the file's pages are in the OS's cache anyway.
READER_CACHE_KIB = 512


class Conn(Protocol):
    """What a write transaction's work may do with its connection (AsyncConnection's subset)."""

    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...

    async def scalars(self, statement: Any, parameters: Any = None) -> Any: ...


Work = Callable[[Conn], Awaitable[T]]
# A write waiting for the SQLite writer: its work, its size, and where its outcome goes.
_Queued = tuple[Work[Any], int, asyncio.Future[Any]]


class _InlineConn:
    """Conn over a synchronous Connection: each await completes at once, in the calling thread,
    so the store's async work functions run to the end inside the SQLite writer thread."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.scalar(statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.scalars(statement, parameters)


def run_inline(conn: Connection, work: Work[T]) -> T:
    """Run a store work function on a synchronous connection, to its end (the SQLite writer
    thread does; so do migrations, which run on a synchronous connection too)."""
    return _drive(work(_InlineConn(conn)))  # type: ignore[arg-type]


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every await inside completes at once)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a write transaction awaited something other than the database")


class _SQLiteReads:
    """SQLite's read transactions, each statement run whole (execute and fetch) in a reader
    thread: one hand-off to a thread and back per statement, where aiosqlite makes about four
    (cursor, execute, fetch, close), each a wake-up of its thread and of the event loop, and
    under load each a wait for a CPU. At most `size` transactions at once, each with at most
    one job in a thread, so the `size` threads never queue and checkouts never wait."""

    def __init__(self, url: str, size: int) -> None:
        self.engine = create_engine(
            make_url(url).set(drivername="sqlite"),
            pool_size=size,
            max_overflow=0,
            connect_args={"check_same_thread": False},  # a transaction moves between threads
        )
        _configure_sqlite(
            self.engine, immediate=False, foreign_keys=True, cache_kib=READER_CACHE_KIB
        )
        self.threads = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="mailgate-sqlite-reader"
        )
        self.slots = asyncio.Semaphore(size)
        self.size = size

    def run(self, work: Work[T]) -> T:
        """In a reader thread: `work` whole, in a transaction of its own."""
        with self.engine.connect() as conn, conn.begin():
            return run_inline(conn, work)

    async def close(self) -> None:
        for _ in range(self.size):  # every transaction has given its connection back
            await self.slots.acquire()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.threads, self.engine.dispose)
        self.threads.shutdown(wait=True)


class _ReadConn:
    """Conn for one SQLite read transaction (see _SQLiteReads): the first statement checks a
    connection out and begins; `finish` rolls back and gives it back after the last one,
    without the caller waiting for that."""

    __slots__ = ("_conn", "_last", "_loop", "_reads")

    def __init__(self, reads: _SQLiteReads) -> None:
        self._reads = reads
        self._loop = asyncio.get_running_loop()
        self._conn: Connection | None = None
        self._last: concurrent.futures.Future[Any] | None = None

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        frozen = await self._run(lambda conn: conn.execute(statement, parameters).freeze())
        return frozen()

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await self._run(lambda conn: conn.scalar(statement, parameters))

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalars()

    async def _run(self, job: Callable[[Connection], T]) -> T:
        def in_thread() -> T:
            if self._conn is None:
                self._conn = self._reads.engine.connect()
                self._conn.begin()
            return job(self._conn)

        self._last = self._reads.threads.submit(in_thread)
        return await asyncio.wrap_future(self._last)

    def finish(self) -> None:
        """Give the connection back once the last statement is done (even one whose caller
        was cancelled is still running in its thread), then free the slot."""
        reads, loop = self._reads, self._loop

        def close() -> None:
            try:
                if self._conn is not None:
                    self._conn.close()  # rolls back
            finally:
                loop.call_soon_threadsafe(reads.slots.release)

        if self._last is None:
            reads.slots.release()
        else:
            self._last.add_done_callback(lambda _: reads.threads.submit(close))


class Database:
    """Holds the engines and runs transactions with the retry and error policy above."""

    def __init__(self, url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> None:
        self.url = url
        # What the store may remember of this database because it never changes (an inbox's
        # address and pod, for one id), by kind.
        self.facts: dict[str, dict[Any, Any]] = {}
        self._writes: set[asyncio.Future[Any]] = set()
        # Write transactions committed, and the writes they held (more than one a commit on
        # SQLite under load: group commit); /metrics shows both.
        self.commits = 0
        self.committed_writes = 0
        # SQLite: writes waiting for the writer thread, and whether it is draining them.
        self._queued: collections.deque[_Queued] = collections.deque()
        self._queue_lock = threading.Lock()
        self._draining = False
        try:
            parsed = make_url(url)
            self.dialect = parsed.get_backend_name()
            parsed.get_dialect()  # the driver is installed
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            # Not the URL itself: it may hold a password.
            raise Unavailable(f"unusable database URL ({type(exc).__name__})") from None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                try:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                    # Created readable by this user only (it holds DKIM private keys and
                    # mail); SQLite gives its journal files the database file's mode.
                    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
                except OSError as exc:
                    where = Path(database).parent
                    raise Unavailable(f"cannot create {where}: {exc.strerror}") from None
                _use_wal(database)
            # The async engine, for raw access from outside the store's transactions (the
            # tests'); it connects only when used: the store reads through _SQLiteReads.
            self.reader = _sqlite_engine(
                url, immediate=False, pool_size=pool_size, cache_kib=READER_CACHE_KIB
            )
            self._sqlite_writer: Engine | None = _sqlite_sync_engine(url)
            self._writer_thread: ThreadPoolExecutor | None = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="mailgate-sqlite-writer"
            )
            self.writer = self.reader
            self._sqlite_reads: _SQLiteReads | None = _SQLiteReads(url, pool_size)
        else:
            self.reader = self.writer = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=pool_timeout,
                # No ping at checkout (a round trip before every transaction): a connection
                # found dead, say after PostgreSQL restarted, fails before anything was
                # committed, SQLAlchemy then drops every older pooled connection, and the
                # transaction runs again once on a fresh one (run_read, _write_once).
                connect_args={
                    # A database that stops answering (a partition, not a clean restart)
                    # must turn into "try again later", not a hung session.
                    "timeout": CONNECT_TIMEOUT,
                    "command_timeout": COMMAND_TIMEOUT,
                    # A node that hangs inside a transaction must not hold its row locks for
                    # good: PostgreSQL ends such sessions.
                    "server_settings": {
                        "application_name": "mailgate",
                        "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
                    },
                },
            )
            # A read that needs no snapshot runs without BEGIN and COMMIT (two round trips of
            # its three): under READ COMMITTED each statement sees what had committed when it
            # began either way.
            self._autocommit = self.reader.execution_options(isolation_level="AUTOCOMMIT")
            self._sqlite_writer = None
            self._writer_thread = None
            self._sqlite_reads = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def close(self) -> None:
        # Writes whose callers were cancelled finish first (see write()).
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._writer_thread is not None and self._sqlite_writer is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._writer_thread, self._sqlite_writer.dispose)
            self._writer_thread.shutdown(wait=True)
            self._writer_thread = None
        if self._sqlite_reads is not None:
            await self._sqlite_reads.close()
            self._sqlite_reads = None
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[Conn]:
        """A read transaction; `snapshot` asks for one consistent view across statements (an
        SQLite transaction always is one). A read that is one function of its connection goes
        faster through run_read."""
        with _translated():
            if self._sqlite_reads is not None:
                await self._sqlite_reads.slots.acquire()
                transaction = _ReadConn(self._sqlite_reads)
                try:
                    yield transaction
                finally:
                    transaction.finish()
                return
            if not snapshot:
                async with self._autocommit.connect() as conn:
                    yield conn
                return
            async with self.reader.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn

    async def run_read(self, work: Work[T], *, snapshot: bool = False) -> T:
        """Run `work` in a read transaction: on SQLite whole in a reader thread (one hand-off
        there and back, however many statements), as the writer runs writes; the hot reads (a
        session's catch-up, FETCH, SELECT, LOGIN) go this way."""
        reads = self._sqlite_reads
        if reads is None:
            try:
                async with self.read(snapshot=snapshot) as conn:
                    return await work(conn)
            except Unavailable as exc:
                if not _stale(exc):
                    raise
            # A connection that died in the pool (see pool_pre_ping above): once more.
            async with self.read(snapshot=snapshot) as conn:
                return await work(conn)
        loop = asyncio.get_running_loop()
        with _translated():
            await reads.slots.acquire()
            job = reads.threads.submit(reads.run, work)
            # The slot is free once the job is done, even if our caller was cancelled before.
            job.add_done_callback(lambda _: loop.call_soon_threadsafe(reads.slots.release))
            return await asyncio.wrap_future(job)

    async def write(
        self,
        work: Work[T],
        *,
        after: Callable[[T], None] | None = None,
        size: int = 0,
    ) -> T:
        """Run `work` in a write transaction, retrying it whole when the database asks us to,
        then `after(result)` (e.g. publish the change) once it has committed. `size`: about
        how many bytes it writes, if that is many (the messages it stores).

        A caller cancelled meanwhile (a client hanging up mid-DATA) does not cut the transaction
        short: it runs to its end on its own, `after` included. Cut short, aiosqlite closes the
        connection while a statement is still open, so the write lock stays held and every later
        write waits for it; and a commit whose outcome nobody learns could not be announced.
        """
        task = asyncio.ensure_future(self._write_retrying(work, after, size))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _write_retrying(
        self,
        work: Work[T],
        after: Callable[[T], None] | None,
        size: int,
    ) -> T:
        result = await self._write_with_retries(work, size)
        if after is not None:
            after(result)
        return result

    async def _write_with_retries(self, work: Work[T], size: int) -> T:
        for attempt in range(_RETRIES):
            try:
                return await self._write_once(work, size)
            except DBAPIError as exc:
                retryable = _retryable(exc) or (
                    isinstance(exc, IntegrityError) and not self.is_sqlite
                )
                if not retryable or attempt == _RETRIES - 1:
                    if _lost_database(exc):
                        raise Unavailable(_describe(exc)) from exc
                    if retryable:
                        raise Conflict("too many concurrent changes, try again") from exc
                    raise _store_error(exc) from exc
                await asyncio.sleep(random.uniform(0.001, 0.005) * (2**attempt))
            except _LostBeforeCommit as exc:
                # Nothing was committed: run it again on a fresh connection, once.
                if attempt > 0:
                    raise Unavailable(_describe(exc.__cause__ or exc)) from exc
            except (PoolTimeout, OSError) as exc:
                raise Unavailable(_describe(exc)) from exc
            except OverflowError as exc:  # SQLite: an integer beyond 64 bits
                raise StoreError("number out of range") from exc
        raise AssertionError("unreachable")

    async def _write_once(self, work: Work[T], size: int) -> T:
        if self._writer_thread is not None:
            return await self._queue_write(work, size)
        async with self.writer.begin() as conn:
            try:
                result = await work(conn)
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise _LostBeforeCommit from exc
                raise
        self.commits += 1
        self.committed_writes += 1
        return result

    def _queue_write(self, work: Work[T], size: int) -> asyncio.Future[T]:
        """SQLite: queue `work` for the writer thread, which commits it with whatever else is
        queued when it gets there (see the module's docstring)."""
        assert self._writer_thread is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queued.append((work, size, future))
            if self._draining:
                return future
            self._draining = True
        self._writer_thread.submit(self._drain, loop)
        return future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the writer thread: commit what is queued, a batch at a time, until nothing is."""
        while True:
            with self._queue_lock:
                if not self._queued:
                    self._draining = False
                    return
                batch = [self._queued.popleft()]
                size = batch[0][1]
                while (
                    self._queued
                    and len(batch) < GROUP_COMMIT_MAX
                    and size + self._queued[0][1] <= GROUP_COMMIT_BYTES
                ):
                    batch.append(self._queued.popleft())
                    size += batch[-1][1]
            try:
                outcomes = self._commit_batch([work for work, _, _ in batch])
            except BaseException as exc:  # a bug of ours: the callers must not hang on it
                outcomes = [(False, exc)] * len(batch)
            loop.call_soon_threadsafe(_settle, [future for _, _, future in batch], outcomes)

    def _commit_batch(self, works: list[Work[Any]]) -> list[tuple[bool, Any]]:
        """Run `works` in one transaction, each in a savepoint of its own when there are
        several, and commit: per work (True, its result) or (False, its exception)."""
        assert self._sqlite_writer is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._sqlite_writer.connect() as conn, conn.begin() as transaction:
                if len(works) == 1:
                    outcomes.append((True, run_inline(conn, works[0])))
                else:
                    for work in works:
                        savepoint = conn.begin_nested()
                        try:
                            result = run_inline(conn, work)
                        except Exception as exc:
                            savepoint.rollback()
                            self._forget_facts()
                            outcomes.append((False, exc))
                        else:
                            savepoint.commit()
                            outcomes.append((True, result))
                    if not any(ok for ok, _ in outcomes):
                        # Nothing to keep: end as a lone failed write does, without a COMMIT
                        # (which on a damaged file waits out the busy timeout, and more).
                        transaction.rollback()
        except Exception as exc:
            # BEGIN, a savepoint's rollback or the COMMIT failed: nothing of the batch is on
            # disk, and each write that had not failed on its own fails with the batch.
            self._forget_facts()
            return [(False, exc) if ok else (ok, value) for ok, value in outcomes] + [
                (False, exc)
            ] * (len(works) - len(outcomes))
        committed = sum(ok for ok, _ in outcomes)
        if committed:
            self.commits += 1
            self.committed_writes += committed
        return outcomes

    def _forget_facts(self) -> None:
        """After a rollback: what was learnt of rows it undid is no fact. SQLite hands a rolled
        back row's id out again (the AUTOINCREMENT counter rolls back with it), so an inbox
        created, named in an event and undone must not leave its name to the next inbox with
        its id. A new dict, so that a reader using the old one finishes with it."""
        self.facts = {}

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (safe when several nodes start at once)."""
        # SQLite rebuilds a table to alter it (batch mode): with foreign keys on, dropping the
        # old copy of a parent table would cascade-delete every child row. So migrations run
        # on a connection with them off, and the result is checked before it commits.
        engine = (
            _sqlite_engine(self.url, immediate=True, pool_size=1, foreign_keys=False)
            if self.is_sqlite
            else self.writer
        )
        try:
            async with engine.begin() as conn:
                if self.is_sqlite:
                    await conn.run_sync(_upgrade)
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).first()
                    if broken is not None:
                        raise StoreError(f"migration broke a foreign key: {tuple(broken)}")
                else:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                    await conn.run_sync(_upgrade)
        except DBAPIError as exc:
            raise _store_error(exc) from exc
        except (PoolTimeout, OSError) as exc:
            raise Unavailable(_describe(exc)) from exc
        finally:
            if engine is not self.writer:
                await engine.dispose()


class _LostBeforeCommit(Exception):
    """A write's connection was found dead before its COMMIT was sent: nothing committed."""


def _stale(exc: Unavailable) -> bool:
    """A read failed because its pooled connection had died (not because the database is
    down: connecting again would fail with OSError, not this)."""
    cause = exc.__cause__
    return isinstance(cause, DBAPIError) and cause.connection_invalidated


def _settle(futures: list[asyncio.Future[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    """On the loop: answer a batch's writes, in the order they ran (so their `after` callbacks,
    which publish their events, run in commit order too)."""
    for future, (ok, value) in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Database errors as StoreErrors (see the module's docstring)."""
    try:
        yield
    except DBAPIError as exc:
        raise _store_error(exc) from exc
    except (PoolTimeout, OSError) as exc:
        raise Unavailable(_describe(exc)) from exc
    except OverflowError as exc:  # SQLite: an integer beyond 64 bits
        raise StoreError("number out of range") from exc


def _upgrade(sync_conn: Any) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


def _sqlite_engine(
    url: str,
    *,
    immediate: bool,
    pool_size: int,
    foreign_keys: bool = True,
    cache_kib: int = 2000,
) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
    _configure_sqlite(
        engine.sync_engine, immediate=immediate, foreign_keys=foreign_keys, cache_kib=cache_kib
    )
    return engine


def _sqlite_sync_engine(url: str) -> Engine:
    """The writer: one connection on the synchronous driver, used only by the writer thread."""
    engine = create_engine(make_url(url).set(drivername="sqlite"), pool_size=1, max_overflow=0)
    _configure_sqlite(engine, immediate=True, foreign_keys=True)
    return engine


def _configure_sqlite(
    engine: Engine, *, immediate: bool, foreign_keys: bool, cache_kib: int = 2000
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's implicit transactions would defeat it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # WAL is the database file's own setting, made once when it is opened (_use_wal).
        for pragma in (
            "PRAGMA busy_timeout=30000",
            "PRAGMA synchronous=FULL",
            f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
            f"PRAGMA cache_size=-{cache_kib}",
        ):
            cursor.execute(pragma)
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def _use_wal(database: str) -> None:
    """Put the database file in WAL mode (it stays so). Done once, before any pool connects:
    connections switching a new file at the same moment get "database is locked" at once,
    without waiting, so the rare race with another process (the CLI) is retried here."""
    for attempt in range(50):
        try:
            with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.DatabaseError as exc:  # locked, not a database, unreadable…
            if "locked" not in str(exc) or attempt == 49:
                raise Unavailable(f"cannot open the database {database}: {exc}") from None
            time.sleep(0.02)


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


def _lost_database(exc: DBAPIError) -> bool:
    """The database went away (down, restarted, unreachable), rather than refused our SQL."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def _store_error(exc: DBAPIError) -> StoreError:
    if _lost_database(exc):
        return Unavailable(_describe(exc))
    # Anything else is a bug of ours (the store validates what it writes): log it in full,
    # give the caller an error it maps to a reply, never the SQL text.
    log.error("unexpected database error", exc_info=exc)
    return StoreError(f"internal store error ({type(exc.orig).__name__})")


def _describe(exc: BaseException) -> str:
    return f"database unavailable ({type(exc).__name__})"
