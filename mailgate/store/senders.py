"""Allow and block lists of senders, per inbox or per pod: an entry is an address or a domain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, literal, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from mailgate.store import errors
from mailgate.store.base import StoreBase
from mailgate.store.database import Conn
from mailgate.store.models import inboxes, sender_rules
from mailgate.store.names import address as valid_address
from mailgate.store.names import optional_text, pod_name, sender_rule
from mailgate.store.records import SenderRule
from mailgate.store.rows import now, pod_row


class Senders(StoreBase):
    async def add_sender_rule(
        self,
        action: str,
        entry: str,
        *,
        inbox: str | None = None,
        pod: str | None = None,
        reason: str | None = None,
    ) -> SenderRule:
        """The rule, new or (with the reason it was first given) already there."""
        action, entry = sender_rule(action, entry)
        reason = optional_text(reason, "reason")

        async def work(conn: Conn) -> SenderRule:
            owner = await _rule_owner(conn, inbox, pod)
            this_rule = _rules_select(owner).where(
                sender_rules.c.action == action, sender_rules.c.entry == entry
            )
            existing = (await conn.execute(this_rule)).first()
            if existing is not None:
                return _sender_rule(existing)
            await conn.execute(
                insert(sender_rules).values(
                    pod_id=owner.pod_id,
                    inbox_id=owner.inbox_id,
                    action=action,
                    entry=entry,
                    created_at=now(),
                    reason=reason,
                )
            )
            return _sender_rule((await conn.execute(this_rule)).one())

        return await self.db.write(work)

    async def remove_sender_rule(
        self, action: str, entry: str, *, inbox: str | None = None, pod: str | None = None
    ) -> None:
        action, entry = sender_rule(action, entry)

        async def work(conn: Conn) -> None:
            owner = await _rule_owner(conn, inbox, pod)
            ids = list(
                await conn.scalars(
                    select(sender_rules.c.id).where(
                        _owner_clause(owner),
                        sender_rules.c.action == action,
                        sender_rules.c.entry == entry,
                    )
                )
            )
            if not ids:
                raise errors.NotFound(f"no {action} entry {entry}")
            await conn.execute(delete(sender_rules).where(sender_rules.c.id.in_(ids)))

        await self.db.write(work)

    async def list_sender_rules(
        self, *, inbox: str | None = None, pod: str | None = None
    ) -> list[SenderRule]:
        async with self.db.read() as conn:
            owner = await _rule_owner(conn, inbox, pod)
            rows = await conn.execute(
                _rules_select(owner).order_by(sender_rules.c.action, sender_rules.c.entry)
            )
            return [_sender_rule(r) for r in rows]

    async def sender_rules_for(self, inbox_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
        """(action, entry) rules that apply to each inbox: its own and its pod's."""
        wanted = sorted(set(inbox_ids))
        found: dict[int, list[tuple[str, str]]] = {i: [] for i in wanted}
        if not wanted:
            return found
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(inboxes.c.id, sender_rules.c.action, sender_rules.c.entry)
                .select_from(
                    inboxes.join(
                        sender_rules,
                        or_(
                            sender_rules.c.inbox_id == inboxes.c.id,
                            sender_rules.c.pod_id == inboxes.c.pod_id,
                        ),
                    )
                )
                .where(inboxes.c.id.in_(wanted))
            )
            for inbox_id, action, entry in rows:
                found[inbox_id].append((action, entry))
        return found


@dataclass(frozen=True, slots=True)
class _Owner:
    """Whose allow/block list: one inbox, or a whole pod."""

    scope: str
    name: str
    inbox_id: int | None
    pod_id: int | None


async def _rule_owner(conn: Conn, inbox: str | None, pod: str | None) -> _Owner:
    if (inbox is None) == (pod is None):
        raise ValueError("a list belongs to exactly one of inbox or pod")
    if inbox is not None:
        address = valid_address(inbox)
        inbox_id = await conn.scalar(select(inboxes.c.id).where(inboxes.c.address == address))
        if inbox_id is None:
            raise errors.InboxNotFound(f"no inbox {address}")
        return _Owner("inbox", address, int(inbox_id), None)
    assert pod is not None
    row = await pod_row(conn, pod_name(pod))
    if row is None:
        raise errors.PodNotFound(f"no pod {pod}")
    return _Owner("pod", row.name, None, int(row.id))


def _owner_clause(owner: _Owner) -> ColumnElement[bool]:
    if owner.inbox_id is not None:
        return sender_rules.c.inbox_id == owner.inbox_id
    return sender_rules.c.pod_id == owner.pod_id


def _rules_select(owner: _Owner) -> Any:
    return select(
        sender_rules,
        literal(owner.scope).label("scope"),
        literal(owner.name).label("owner"),
    ).where(_owner_clause(owner))


def _sender_rule(row: Row[Any]) -> SenderRule:
    return SenderRule(
        id=row.id,
        scope=row.scope,
        owner=row.owner,
        action=row.action,
        entry=row.entry,
        created_at=row.created_at,
        reason=row.reason,
    )
