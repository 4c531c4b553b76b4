"""SELECT, EXAMINE and CLOSE: entering and leaving a mailbox, and resynchronizing on the way
in (QRESYNC, RFC 7162 §3.2.5). An IMAP4rev2 session (RFC 9051 §6.3.2) is told the mailbox's
LIST line instead of RECENT and UNSEEN, and takes no \\Recent."""

from __future__ import annotations

from mailgate.imap.errors import bad
from mailgate.imap.ext.objectid import mailbox_item
from mailgate.imap.interfaces import LOGGED_IN, Session, State
from mailgate.imap.mailbox_view import SelectedMailbox, open_view
from mailgate.imap.mailboxes import list_line
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Qresync, Request, Select
from mailgate.imap.wire import flags_fetch


async def _open(s: Session, request: Request, readonly: bool) -> str:
    args = request.args
    assert isinstance(args, Select)
    assert s.principal is not None
    if args.qresync is not None and not s.qresync:
        raise bad("QRESYNC must be enabled first (ENABLE QRESYNC)", "CLIENTBUG")
    # RFC 3501 §6.3.1: a SELECT first leaves the selected mailbox, even if it then fails.
    if s.selected is not None and (s.qresync or s.rev2):
        # RFC 7162 §3.2.11, RFC 9051 §6.3.2
        s.untagged(b"OK [CLOSED] Previous mailbox closed")
    s.unselect()
    if args.condstore:
        s.condstore = True
    box = await s.store.get_mailbox(s.principal.inbox.id, args.mailbox)
    selected, snapshot = await open_view(s.store, box, readonly)
    s.select(selected)
    for line in selected.flags_lines():
        s.untagged(line)
    s.untagged(b"%d EXISTS" % selected.exists)
    if s.rev2:
        s.untagged(await list_line(s, box))
    else:
        await selected.take_recent(s.store, snapshot.mailbox.recent_uid)
        s.untagged(b"%d RECENT" % selected.recent_count)
        if snapshot.first_unseen is not None:
            s.untagged(b"OK [UNSEEN %d] First unseen message" % snapshot.first_unseen)
    s.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % selected.uidvalidity)
    s.untagged(b"OK [UIDNEXT %d] Predicted next UID" % snapshot.mailbox.uidnext)
    s.untagged(b"OK [" + mailbox_item(box.id) + b"] Ok")  # RFC 8474 §4.1
    if s.condstore:
        s.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % snapshot.mailbox.highestmodseq)
    resync = args.qresync
    if resync is not None and resync.uidvalidity == selected.uidvalidity:
        await _resync(s, selected, resync, snapshot.mailbox.uidnext)
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return f"[{mode}] {request.name} completed"


async def _resync(s: Session, selected: SelectedMailbox, resync: Qresync, uidnext: int) -> None:
    """RFC 7162 §3.2.5.2: what the client missed since its MODSEQ, before the tagged OK: the
    UIDs gone (VANISHED (EARLIER)), then each message changed, with its flags and MODSEQ."""
    changes = await s.store.changes_since(selected.mailbox_id, resync.modseq)
    if not changes.exists:
        return  # deleted meanwhile; the next command says so
    if resync.known_uids is None:
        known: tuple[tuple[int, int], ...] = ((1, uidnext - 1),)
    else:
        known = resync.known_uids.resolve(uidnext - 1)
    gone = selected.vanished_earlier(changes, known)
    if gone:
        s.untagged(b"VANISHED (EARLIER) " + gone)
    for entry in changes.changed:
        seq = selected.seq_of(entry.uid)
        if seq is not None:
            for line in selected.announce_keywords(entry.flags):
                s.untagged(line)
            flags = selected.with_recent(entry.uid, entry.flags)
            s.untagged(flags_fetch(seq, flags, uid=entry.uid, modseq=entry.modseq))


@command("SELECT", LOGGED_IN)
async def select(s: Session, request: Request) -> str:
    return await _open(s, request, readonly=False)


@command("EXAMINE", LOGGED_IN)
async def examine(s: Session, request: Request) -> str:
    return await _open(s, request, readonly=True)


@command("CLOSE", State.SELECTED)
async def close(s: Session, request: Request) -> str:
    selected = s.selected
    assert selected is not None
    s.unselect()
    if not selected.readonly:
        # RFC 3501 §6.4.2: expunge silently, but only what this session could see.
        await s.store.expunge(selected.mailbox_id, [(1, selected.last_uid)])
    return "CLOSE completed"
