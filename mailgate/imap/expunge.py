"""EXPUNGE and UID EXPUNGE (RFC 4315 UIDPLUS)."""

from __future__ import annotations

from mailgate.imap.errors import no
from mailgate.imap.ext import context
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request, UidExpunge


@command("EXPUNGE", State.SELECTED)
async def expunge(s: Session, request: Request) -> str:
    selected = s.selected
    assert selected is not None
    if selected.readonly:
        raise no("The mailbox is open read-only (EXAMINE)", "CANNOT")
    if request.uid:
        args = request.args
        assert isinstance(args, UidExpunge)
        ranges = selected.uid_ranges(args.sequence, by_uid=True)
    else:
        # Only what this session has been told about: a message that arrived since is kept.
        ranges = [(1, selected.last_uid)]
    if ranges:
        gone = await s.store.expunge(selected.mailbox_id, ranges)
        # REMOVEFROM first, while the messages still have their numbers (RFC 5267 §4.3).
        for line in context.forget(s, gone):
            s.untagged(line)
    return "EXPUNGE completed"
