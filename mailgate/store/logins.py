"""Failed logins, shared by every node (and every process) on one database: a guesser who
spreads its tries over N nodes gets no more of them than on one.

One row per (client address, login name) while it keeps failing: how many times in a row, and
when last. Written only when a login fails (a success is not a write: it clears the row only
where a failure was seen), so logins that work, and every API request, cost nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import login_failures

# Login names failing from one address that are counted at most: only "many" matters.
MAX_NAMES = 100


@dataclass(frozen=True, slots=True)
class Failures:
    """After a failure: that name's failures from the address in a row, the address's failures
    in the window (all names), and how many names failed from it (at most MAX_NAMES)."""

    in_a_row: int
    from_address: int
    names: int


class Logins(StoreBase):
    async def login_failed(self, client: str, name: str, now: int, window: int) -> Failures:
        """Count a failed login of `name` from `client` at `now` (Unix seconds); failures
        older than `window` seconds are forgotten."""
        since = now - window
        dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        table = login_failures.c

        async def work(conn: Conn) -> Failures:
            upsert = dialect_insert(login_failures).values(
                client=client, name=name, failures=1, last_at=now
            )
            upsert = upsert.on_conflict_do_update(
                index_elements=["client", "name"],
                set_={
                    # A streak older than the window is over: this failure starts a new one.
                    "failures": case((table.last_at < since, 1), else_=table.failures + 1),
                    "last_at": upsert.excluded.last_at,
                },
            )
            await conn.execute(upsert)
            in_a_row = await conn.scalar(
                select(table.failures).where(table.client == client, table.name == name)
            )
            recent = (
                select(table.failures)
                .where(table.client == client, table.last_at >= since)
                .limit(MAX_NAMES)
                .subquery()
            )
            totals = select(func.coalesce(func.sum(recent.c.failures), 0), func.count())
            total, names = (await conn.execute(totals.select_from(recent))).one()
            return Failures(int(in_a_row or 1), int(total), int(names))

        return await self.db.write(work)

    async def login_succeeded(self, client: str, name: str) -> None:
        """The name logged in from the address: its failures in a row are over."""

        async def work(conn: Conn) -> None:
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.client == client, login_failures.c.name == name
                )
            )

        await self.db.write(work)

    async def prune_login_failures(self, before: int) -> int:
        """Forget failures last seen before `before`; how many rows."""

        async def work(conn: Conn) -> int:
            result = await conn.execute(
                delete(login_failures).where(login_failures.c.last_at < before)
            )
            return int(result.rowcount or 0)

        return await self.db.write(work)
