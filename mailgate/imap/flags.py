"""STORE: set, add or remove flags (with CONDSTORE's UNCHANGEDSINCE, RFC 7162 §3.2)."""

from __future__ import annotations

from mailgate.imap.condstore import enable_condstore
from mailgate.imap.errors import no
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request, StoreFlags
from mailgate.imap.wire import flags_fetch, uid_set


@command("STORE", State.SELECTED, expunges_ok=False)
async def store(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, StoreFlags)
    selected = s.selected
    assert selected is not None
    if selected.readonly:
        raise no("The mailbox is open read-only (EXAMINE)", "CANNOT")
    if args.unchangedsince is not None:
        enable_condstore(s)
    ranges = selected.uid_ranges(args.sequence, request.uid)
    if not ranges:
        return "STORE completed"
    result = await s.store.store_flags(
        selected.mailbox_id, ranges, args.mode, args.flags, unchangedsince=args.unchangedsince
    )
    for line in selected.announce_keywords(f for state in result.updated for f in state.flags):
        s.untagged(line)
    for state in result.updated:
        selected.note_reported(state.uid, state.modseq)
        seq = selected.seq_of(state.uid)
        if args.silent or seq is None:
            continue
        s.untagged(
            flags_fetch(
                seq,
                selected.with_recent(state.uid, state.flags),
                # RFC 7162 §3.1: with CONDSTORE on, a STORE's FETCH carries UID and MODSEQ.
                uid=state.uid if request.uid or s.condstore else None,
                modseq=state.modseq if s.condstore else None,
            )
        )
    if result.modified:
        numbers = (
            result.modified if request.uid else [selected.seq_of(u) or 0 for u in result.modified]
        )
        return f"[MODIFIED {uid_set(sorted(numbers)).decode()}] Conditional STORE failed"
    return "STORE completed"
