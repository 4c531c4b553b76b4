"""SELECT, EXAMINE, CLOSE and CHECK: entering and leaving a mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.commands import LOGGED_IN, State, command
from mailgate.imap.parser import Request, Select
from mailgate.imap.selected import SelectedMailbox
from mailgate.store.events import MailboxChanged

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


async def _open(s: IMAPServer, request: Request, readonly: bool) -> str:
    args = request.args
    assert isinstance(args, Select)
    assert s.principal is not None
    # RFC 3501 §6.3.1: a SELECT first leaves the selected mailbox, even if it then fails.
    s.unselect()
    if args.condstore:
        s.condstore = True
    box = await s.store.get_mailbox(s.principal.inbox.id, args.mailbox)
    # Listen before taking the snapshot, so a change committed meanwhile is not missed.
    missed: list[MailboxChanged] = []
    subscription = s.store.bus.subscribe(box.id, missed.append)
    try:
        snapshot = await s.store.snapshot(box.id)
    finally:
        subscription.close()
    selected = SelectedMailbox(snapshot, box.name, readonly)
    selected.dirty = any(not e.modseq or e.modseq > snapshot.mailbox.highestmodseq for e in missed)
    s.select(selected)
    for line in selected.flags_lines():
        s.untagged(line)
    s.untagged(b"%d EXISTS" % selected.exists)
    s.untagged(b"0 RECENT")
    if snapshot.first_unseen is not None:
        s.untagged(b"OK [UNSEEN %d] First unseen message" % snapshot.first_unseen)
    s.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % selected.uidvalidity)
    s.untagged(b"OK [UIDNEXT %d] Predicted next UID" % snapshot.mailbox.uidnext)
    if s.condstore:
        s.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % snapshot.mailbox.highestmodseq)
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return f"[{mode}] {request.name} completed"


@command("SELECT", LOGGED_IN)
async def select(s: IMAPServer, request: Request) -> str:
    return await _open(s, request, readonly=False)


@command("EXAMINE", LOGGED_IN)
async def examine(s: IMAPServer, request: Request) -> str:
    return await _open(s, request, readonly=True)


@command("CLOSE", State.SELECTED)
async def close(s: IMAPServer, request: Request) -> str:
    selected = s.selected
    assert selected is not None
    s.unselect()
    if not selected.readonly:
        # RFC 3501 §6.4.2: expunge silently, but only what this session could see.
        await s.store.expunge(selected.mailbox_id, [(1, selected.last_uid)])
    return "CLOSE completed"


@command("CHECK", State.SELECTED)
async def check(s: IMAPServer, request: Request) -> str:
    # Every change is committed when it is acknowledged; there is nothing to checkpoint.
    return "CHECK completed"
