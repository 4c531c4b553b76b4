"""Domains we host mail for, with the DKIM keys that sign their outgoing mail."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.events import Change
from mailgate.store.models import dkim_keys, domains, inboxes
from mailgate.store.names import domain_name, storable
from mailgate.store.outbox import Pending, record
from mailgate.store.records import DOMAIN_VERIFIED, Domain, DomainKey
from mailgate.store.rows import now


class Domains(StoreBase):
    async def add_domain(
        self, name: str, *, spf: str, dmarc: str, keys: Sequence[DomainKey]
    ) -> Domain:
        name = domain_name(name)

        async def work(conn: Conn) -> Domain:
            if await conn.scalar(select(domains.c.id).where(domains.c.name == name)):
                raise errors.DomainExists(f"domain {name} already exists")
            domain_id = (
                await conn.execute(
                    insert(domains)
                    .values(name=name, spf=spf, dmarc=dmarc, created_at=now())
                    .returning(domains.c.id)
                )
            ).scalar_one()
            await _insert_keys(conn, domain_id, keys)
            return await _domain(conn, name)

        return await self.db.write(work)

    async def get_domain(self, name: str) -> Domain:
        async with self.db.read() as conn:
            return await _domain(conn, domain_name(name))

    async def list_domains(self) -> list[Domain]:
        async with self.db.read() as conn:
            names = list(await conn.scalars(select(domains.c.name).order_by(domains.c.name)))
            return [await _domain(conn, name) for name in names]

    async def delete_domain(self, name: str) -> None:
        name = domain_name(name)

        async def work(conn: Conn) -> None:
            row_id = await _locked_domain_id(conn, name)
            count = await conn.scalar(
                select(func.count())
                .select_from(inboxes)
                .where(inboxes.c.address.endswith("@" + name, autoescape=True))
            )
            if count:
                raise errors.CannotModify(f"domain {name} still has {count} inbox(es)")
            await conn.execute(delete(domains).where(domains.c.id == row_id))

        await self.db.write(work)

    async def add_dkim_keys(self, name: str, keys: Sequence[DomainKey]) -> Domain:
        """Add new keys; they sign from now on, and the older ones stop signing but stay
        published (rotation: old signatures in transit still verify)."""
        name = domain_name(name)

        async def work(conn: Conn) -> Domain:
            domain_id = await _locked_domain_id(conn, name)
            await conn.execute(
                update(dkim_keys).where(dkim_keys.c.domain_id == domain_id).values(active=False)
            )
            await _insert_keys(conn, domain_id, keys)
            return await _domain(conn, name)

        return await self.db.write(work)

    async def remove_dkim_key(self, name: str, selector: str) -> Domain:
        name = domain_name(name)

        async def work(conn: Conn) -> Domain:
            domain = await _domain(conn, name)
            key = next((k for k in domain.keys if k.selector == selector), None)
            if key is None:
                raise errors.NotFound(f"domain {name} has no DKIM selector {selector!r}")
            if key.active:
                raise errors.CannotModify(
                    f"selector {selector} still signs mail; rotate the keys first"
                )
            await conn.execute(
                delete(dkim_keys).where(
                    dkim_keys.c.domain_id == domain.id, dkim_keys.c.selector == selector
                )
            )
            return await _domain(conn, name)

        return await self.db.write(work)

    async def mark_domain_verified(self, name: str) -> bool:
        """Record that a check found the domain's records published; the first time (True), the
        domain.verified event is written with it."""
        name = domain_name(name)

        async def work(conn: Conn) -> tuple[bool, list[Change]]:
            changed = await conn.execute(
                update(domains)
                .where(domains.c.name == name, domains.c.verified_at.is_(None))
                .values(verified_at=now())
            )
            if not changed.rowcount:
                return False, []
            told = [Pending(DOMAIN_VERIFIED, detail={"domain": name})]
            return True, await record(conn, self.db, told)

        return await self._change(work)

    async def is_local_domain(self, name: str) -> bool:
        """Whether mail for `name` is ours: a domain we host, or the domain of an inbox."""
        if not storable(name):
            return False
        name = name.lower()
        async with self.db.read() as conn:
            if await conn.scalar(select(domains.c.id).where(domains.c.name == name)):
                return True
            return bool(
                await conn.scalar(
                    select(inboxes.c.id)
                    .where(inboxes.c.address.endswith("@" + name, autoescape=True))
                    .limit(1)
                )
            )


async def _insert_keys(conn: Conn, domain_id: int, keys: Sequence[DomainKey]) -> None:
    if keys:
        await conn.execute(
            insert(dkim_keys),
            [
                {
                    "domain_id": domain_id,
                    "selector": k.selector,
                    "algorithm": k.algorithm,
                    "private_key": k.private_key,
                    "public_key": k.public_key,
                    "active": k.active,
                    "created_at": k.created_at,
                }
                for k in keys
            ],
        )


async def _locked_domain_id(conn: Conn, name: str) -> int:
    """The domain's row id, locked for the rest of the transaction; DomainNotFound if none."""
    row_id = await conn.scalar(select(domains.c.id).where(domains.c.name == name).with_for_update())
    if row_id is None:
        raise errors.DomainNotFound(f"no domain {name}")
    return int(row_id)


async def _domain(conn: Conn, name: str) -> Domain:
    row = (await conn.execute(select(domains).where(domains.c.name == name))).first()
    if row is None:
        raise errors.DomainNotFound(f"no domain {name}")
    keys = await conn.execute(
        select(dkim_keys).where(dkim_keys.c.domain_id == row.id).order_by(dkim_keys.c.id)
    )
    return Domain(
        id=row.id,
        name=row.name,
        spf=row.spf,
        dmarc=row.dmarc,
        created_at=row.created_at,
        verified_at=row.verified_at,
        keys=tuple(
            DomainKey(
                selector=k.selector,
                algorithm=k.algorithm,
                private_key=k.private_key,
                public_key=k.public_key,
                active=bool(k.active),
                created_at=k.created_at,
            )
            for k in keys
        ),
    )
