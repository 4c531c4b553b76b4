"""COPY, answering with COPYUID (RFC 4315 UIDPLUS)."""

from __future__ import annotations

from mailgate.imap.errors import from_store
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import CopyMove, Request
from mailgate.imap.wire import uid_set
from mailgate.store.errors import MailboxNotFound
from mailgate.store.records import CopyResult, Mailbox


async def destination(s: Session, name: str) -> Mailbox:
    assert s.principal is not None
    try:
        return await s.store.get_mailbox(s.principal.inbox.id, name)
    except MailboxNotFound as exc:
        raise from_store(exc, destination=True) from None


def copyuid(result: CopyResult) -> str:
    return (
        f"[COPYUID {result.uidvalidity} {uid_set(result.source_uids).decode()} "
        f"{uid_set(result.dest_uids).decode()}]"
    )


@command("COPY", State.SELECTED)
async def copy(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, CopyMove)
    selected = s.selected
    assert selected is not None
    ranges = selected.uid_ranges(args.sequence, request.uid)
    dest = await destination(s, args.mailbox)
    if not ranges:
        return "COPY completed"
    result = await s.store.copy(selected.mailbox_id, ranges, dest.id)
    if not result.source_uids:
        return "COPY completed"
    return f"{copyuid(result)} COPY completed"
