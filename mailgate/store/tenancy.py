"""Tenancy: pods, the inboxes they hold (each created with its built-in mailboxes), and the API
keys that open them."""

from __future__ import annotations

import secrets as secrets_module
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Row

from mailgate.mime.addresses import InvalidAddress, normalize_address
from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.events import Change, MailboxDeleted
from mailgate.store.models import (
    api_keys,
    entries,
    expunged,
    inboxes,
    mailboxes,
    pods,
    secrets,
    send_receipts,
    subscriptions,
)
from mailgate.store.names import address as valid_address
from mailgate.store.names import key_label, optional_text, pod_name, storable, valid_key_id
from mailgate.store.records import BUILTIN_MAILBOXES, UNSET, ApiKey, Inbox, Pod, Unset
from mailgate.store.rows import (
    collect_garbage,
    inbox_record,
    inbox_select,
    insert_mailbox,
    insert_pod,
    now,
    pod_record,
    pod_row,
)

DEFAULT_POD = "default"


class Tenancy(StoreBase):
    # ---------------------------------------------------------------- pods

    async def create_pod(self, name: str, *, client_id: str | None = None) -> Pod:
        """A new pod; with a `client_id` that a pod already has, that pod (creating twice with
        one client id is creating once)."""
        name = pod_name(name)
        client_id = optional_text(client_id, "client id")

        async def work(conn: Conn) -> Pod:
            if client_id is not None:
                same = await conn.execute(select(pods).where(pods.c.client_id == client_id))
                if (row := same.first()) is not None:
                    return pod_record(row)
            if await pod_row(conn, name) is not None:
                raise errors.PodExists(f"pod {name} already exists")
            return await insert_pod(conn, name, client_id)

        return await self.db.write(work)

    async def list_pods(self) -> list[Pod]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(pods).order_by(pods.c.name))
            return [pod_record(r) for r in rows]

    async def get_pod(self, name: str) -> Pod:
        async with self.db.read() as conn:
            row = await pod_row(conn, pod_name(name))
        if row is None:
            raise errors.PodNotFound(f"no pod {name}")
        return pod_record(row)

    async def delete_pod(self, name: str) -> None:
        name = pod_name(name)

        async def work(conn: Conn) -> None:
            # Locked, so that an inbox created meanwhile on another node waits and then fails
            # (and retries into a new pod) instead of being cascade-deleted with this one.
            row = await pod_row(conn, name, lock=True)
            if row is None:
                raise errors.PodNotFound(f"no pod {name}")
            if name == DEFAULT_POD:
                raise errors.CannotModify(f"the {DEFAULT_POD} pod cannot be deleted")
            count = await conn.scalar(
                select(func.count()).select_from(inboxes).where(inboxes.c.pod_id == row.id)
            )
            if count:
                raise errors.CannotModify(f"pod {name} still has {count} inbox(es)")
            await conn.execute(delete(pods).where(pods.c.id == row.id))

        await self.db.write(work)

    # ---------------------------------------------------------------- inboxes

    async def create_inbox(
        self,
        address: str,
        pod: str = DEFAULT_POD,
        *,
        display_name: str | None = None,
        client_id: str | None = None,
        metadata: str | None = None,
    ) -> Inbox:
        """A new inbox with its built-in mailboxes (and its pod, if new); with a `client_id`
        that an inbox of that pod already has, that inbox. `metadata` is a JSON object."""
        address = valid_address(address)
        pod = pod_name(pod)
        display_name = optional_text(display_name, "display name")
        client_id = optional_text(client_id, "client id")

        async def work(conn: Conn) -> Inbox:
            if client_id is not None:
                same = await conn.execute(
                    inbox_select().where(inboxes.c.client_id == client_id, pods.c.name == pod)
                )
                if (found := same.first()) is not None:
                    return inbox_record(found)
            existing = await conn.scalar(select(inboxes.c.id).where(inboxes.c.address == address))
            if existing is not None:
                raise errors.InboxExists(f"inbox {address} already exists")
            row = await pod_row(conn, pod)
            owner = await insert_pod(conn, pod) if row is None else pod_record(row)
            created = now()
            inbox_id = (
                await conn.execute(
                    insert(inboxes)
                    .values(
                        pod_id=owner.id,
                        address=address,
                        created_at=created,
                        updated_at=created,
                        display_name=display_name,
                        client_id=client_id,
                        metadata=metadata,
                    )
                    .returning(inboxes.c.id)
                )
            ).scalar_one()
            for name, special_use in BUILTIN_MAILBOXES.items():
                await insert_mailbox(conn, inbox_id, name, special_use)
            return Inbox(
                inbox_id,
                owner.id,
                owner.name,
                address,
                created,
                display_name,
                client_id,
                metadata,
                created,
            )

        return await self.db.write(work)

    async def update_inbox(
        self,
        address: str,
        *,
        display_name: str | Unset | None = UNSET,
        metadata: str | Unset | None = UNSET,
    ) -> Inbox:
        """Change what is given (None clears it); `metadata` is the whole new JSON object."""
        address = valid_address(address)
        values: dict[str, Any] = {"updated_at": now()}
        if not isinstance(display_name, Unset):
            values["display_name"] = optional_text(display_name, "display name")
        if not isinstance(metadata, Unset):
            values["metadata"] = metadata

        async def work(conn: Conn) -> Inbox:
            result = await conn.execute(
                update(inboxes).where(inboxes.c.address == address).values(**values)
            )
            if result.rowcount == 0:
                raise errors.InboxNotFound(f"no inbox {address}")
            return inbox_record(
                (await conn.execute(inbox_select().where(inboxes.c.address == address))).one()
            )

        return await self.db.write(work)

    async def get_inbox(self, address: str) -> Inbox:
        try:
            address = normalize_address(address)
        except InvalidAddress:
            raise errors.InboxNotFound(f"no inbox {address}") from None
        found = await self.find_inboxes([address])
        if address not in found:
            raise errors.InboxNotFound(f"no inbox {address}")
        return found[address]

    async def find_inboxes(self, addresses: Iterable[str]) -> dict[str, Inbox]:
        """The hosted inboxes among `addresses` (already normalised), keyed by address."""
        wanted = sorted(a for a in set(addresses) if storable(a))
        if not wanted:
            return {}

        async def read(conn: Conn) -> dict[str, Inbox]:
            rows = await conn.execute(inbox_select().where(inboxes.c.address.in_(wanted)))
            return {r.address: inbox_record(r) for r in rows}

        return await self.db.run_read(read)

    async def list_inboxes(self, pod: str | None = None) -> list[Inbox]:
        query = inbox_select().order_by(inboxes.c.address)
        if pod is not None:
            if not storable(pod):
                return []
            query = query.where(pods.c.name == pod)
        async with self.db.read() as conn:
            return [inbox_record(r) for r in await conn.execute(query)]

    async def delete_inbox(self, address: str) -> None:
        address = valid_address(address)

        async def work(conn: Conn) -> tuple[None, list[Change]]:
            # Locked first: no mailbox can be created in it, nor message added, while it goes.
            inbox_id = await conn.scalar(
                select(inboxes.c.id).where(inboxes.c.address == address).with_for_update()
            )
            if inbox_id is None:
                raise errors.InboxNotFound(f"no inbox {address}")
            boxes = (
                await conn.execute(
                    select(mailboxes.c.id, mailboxes.c.name)
                    .where(mailboxes.c.inbox_id == inbox_id)
                    .order_by(mailboxes.c.id)
                    .with_for_update()
                )
            ).all()
            box_ids = [box.id for box in boxes]
            blob_ids = set(
                await conn.scalars(
                    select(entries.c.message_id).where(entries.c.mailbox_id.in_(box_ids))
                )
            )
            await conn.execute(delete(entries).where(entries.c.mailbox_id.in_(box_ids)))
            await conn.execute(delete(expunged).where(expunged.c.mailbox_id.in_(box_ids)))
            await conn.execute(delete(api_keys).where(api_keys.c.inbox_id == inbox_id))
            await conn.execute(delete(send_receipts).where(send_receipts.c.inbox_id == inbox_id))
            await conn.execute(delete(mailboxes).where(mailboxes.c.inbox_id == inbox_id))
            await conn.execute(delete(subscriptions).where(subscriptions.c.inbox_id == inbox_id))
            await conn.execute(delete(inboxes).where(inboxes.c.id == inbox_id))
            await collect_garbage(conn, blob_ids)
            return None, [MailboxDeleted(inbox_id, box.id, 0, box.name) for box in boxes]

        await self._change(work)

    # ---------------------------------------------------------------- secrets

    async def secret(self, name: str) -> bytes:
        """A random 32-byte secret shared by every node (made the first time it is asked for):
        what signs the API's page tokens and download links."""
        async with self.db.read() as conn:
            found = await _secret(conn, name)
        if found:
            return found

        async def work(conn: Conn) -> bytes:
            existing = await _secret(conn, name)
            if existing:
                return existing  # another node made it meanwhile
            value = secrets_module.token_bytes(32)
            await conn.execute(insert(secrets).values(name=name, value=value))
            return value

        return await self.db.write(work)

    # ---------------------------------------------------------------- API keys

    async def add_key(
        self,
        key_id: str,
        secret_hash: str,
        *,
        pod: str | None = None,
        inbox: str | None = None,
        organization: bool = False,
        label: str = "",
    ) -> ApiKey:
        """Record a key (auth.py makes the secret); scoped to one inbox, to a whole pod, or to
        the organization (every pod)."""
        if [pod is not None, inbox is not None, organization].count(True) != 1:
            raise ValueError("a key is scoped to exactly one of pod, inbox or organization")
        if not valid_key_id(key_id):
            raise errors.InvalidName(f"{key_id!r} is not a valid key id")
        label = key_label(label)

        async def work(conn: Conn) -> ApiKey:
            if await conn.scalar(select(api_keys.c.id).where(api_keys.c.id == key_id)):
                raise errors.AlreadyExists(f"key {key_id} already exists")
            inbox_id: int | None = None
            pod_id: int | None = None
            created = now()
            if inbox is not None:
                row = (
                    await conn.execute(
                        select(inboxes.c.id, inboxes.c.pod_id).where(
                            inboxes.c.address == valid_address(inbox)
                        )
                    )
                ).first()
                if row is None:
                    raise errors.InboxNotFound(f"no inbox {inbox}")
                inbox_id, pod_id = row.id, row.pod_id
            elif pod is not None:
                owner = await pod_row(conn, pod_name(pod))
                if owner is None:
                    raise errors.PodNotFound(f"no pod {pod}")
                pod_id = owner.id
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    pod_id=pod_id,
                    inbox_id=inbox_id,
                    secret_hash=secret_hash,
                    label=label,
                    created_at=created,
                    updated_at=created,
                )
            )
            return await _key(conn, key_id)

        return await self.db.write(work)

    async def get_key(self, key_id: str) -> ApiKey | None:
        if not valid_key_id(key_id):
            return None

        async def read(conn: Conn) -> ApiKey | None:
            row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).first()
            return None if row is None else _key_record(row)

        return await self.db.run_read(read)

    async def list_keys(self) -> list[ApiKey]:
        async with self.db.read() as conn:
            rows = await conn.execute(_key_select().order_by(api_keys.c.created_at, api_keys.c.id))
            return [_key_record(r) for r in rows]

    async def rename_key(self, key_id: str, label: str) -> ApiKey:
        """Give a key (revoked or not) another label; its scope and secret stay."""
        if not valid_key_id(key_id):
            raise errors.KeyNotFound(f"no key {key_id!r}")
        label = key_label(label)

        async def work(conn: Conn) -> ApiKey:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(label=label, updated_at=now())
            )
            if result.rowcount == 0:
                raise errors.KeyNotFound(f"no key {key_id}")
            return await _key(conn, key_id)

        return await self.db.write(work)

    async def revoke_key(self, key_id: str) -> ApiKey:
        if not valid_key_id(key_id):
            raise errors.KeyNotFound(f"no key {key_id!r}")

        async def work(conn: Conn) -> ApiKey:
            key = await _key(conn, key_id)
            if key.revoked_at is not None:
                return key
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now())
            )
            return await _key(conn, key_id)

        return await self.db.write(work)


def _key_select() -> Any:
    return select(
        api_keys.c.id,
        api_keys.c.pod_id,
        pods.c.name.label("pod"),
        api_keys.c.inbox_id,
        inboxes.c.address.label("inbox"),
        api_keys.c.label,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.secret_hash,
        api_keys.c.updated_at,
    ).select_from(
        api_keys.outerjoin(pods, pods.c.id == api_keys.c.pod_id).outerjoin(
            inboxes, inboxes.c.id == api_keys.c.inbox_id
        )
    )


async def _key(conn: Conn, key_id: str) -> ApiKey:
    row = (await conn.execute(_key_select().where(api_keys.c.id == key_id))).first()
    if row is None:
        raise errors.KeyNotFound(f"no key {key_id}")
    return _key_record(row)


def _key_record(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        pod_id=row.pod_id,
        pod=row.pod,
        inbox_id=row.inbox_id,
        inbox=row.inbox,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        secret_hash=row.secret_hash,
        updated_at=row.updated_at or row.created_at,
    )


async def _secret(conn: Conn, name: str) -> bytes:
    return bytes(await conn.scalar(select(secrets.c.value).where(secrets.c.name == name)) or b"")
