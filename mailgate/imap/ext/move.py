"""MOVE (RFC 6851): copy and expunge in one step, with COPYUID before the EXPUNGEs (or
VANISHED, with QRESYNC)."""

from __future__ import annotations

from mailgate.imap.copy import copyuid, destination
from mailgate.imap.errors import no
from mailgate.imap.ext import context
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import CopyMove, Request


@command("MOVE", State.SELECTED)
async def move(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, CopyMove)
    selected = s.selected
    assert selected is not None
    if selected.readonly:
        raise no("The mailbox is open read-only (EXAMINE)", "CANNOT")
    ranges = selected.uid_ranges(args.sequence, request.uid)
    dest = await destination(s, args.mailbox)
    if not ranges:
        return "MOVE completed"
    result = await s.store.move(selected.mailbox_id, ranges, dest.id)
    if result.source_uids:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK, sent before the EXPUNGEs.
        s.untagged(f"OK {copyuid(result)} Moved".encode())
        # REMOVEFROM first, while the messages still have their numbers (RFC 5267 §4.3).
        for line in context.forget(s, result.source_uids):
            s.untagged(line)
    return "MOVE completed"
