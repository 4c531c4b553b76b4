"""CONTEXT=SEARCH and CONTEXT=SORT's live results (RFC 5267 §4.3): SEARCH or SORT RETURN (UPDATE)
keeps its result for the selected mailbox, and each catch-up that finds the mailbox changed
evaluates it again and tells the client ADDTO and REMOVEFROM. CANCELUPDATE ends one; leaving
the mailbox ends them all, as they live in its SelectedMailbox.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from mailgate.imap.errors import bad, no
from mailgate.imap.interfaces import Session, State
from mailgate.imap.mailbox_view import LiveSearch
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import CancelUpdate, Request
from mailgate.imap.wire import uid_set

# Live results a selection may keep (RFC 5267 §4.3.1 lets the server refuse more): each is
# evaluated again whenever the mailbox changes.
MAX_LIVE = 10


def check_room(s: Session, tag: str) -> None:
    """Before an UPDATE search runs: its tag must name no live one, and there must be room."""
    selected = s.selected
    assert selected is not None
    live = selected.live or {}
    if tag in live:
        raise bad(f'Tag "{tag}" already names a search kept up to date')
    if len(live) >= MAX_LIVE:
        raise no(f"No more than {MAX_LIVE} searches kept up to date", f'NOUPDATE "{tag}"')


def keep(s: Session, tag: str, search: LiveSearch) -> None:
    selected = s.selected
    assert selected is not None
    if selected.live is None:
        selected.live = {}
    selected.live[tag] = search


async def updates(s: Session, before: Sequence[int]) -> tuple[list[bytes], list[bytes]]:
    """Each live result evaluated again after a catch-up: REMOVEFROM to send before the
    catch-up's responses, numbered as `before` (the UIDs the client knew, so an expunged
    message is removed while it still has its number), and ADDTO to send after them, numbered
    as now (a new message once EXISTS has counted it). Unsorted results use position 0, as
    Dovecot does; REMOVEFROM does so for sorted ones too, since the client finds each message."""
    selected = s.selected
    assert selected is not None
    assert selected.live is not None
    removals: list[bytes] = []
    additions: list[bytes] = []
    for tag, live in selected.live.items():
        new = await live.refresh()
        old, live.result = live.result, new
        now, then = set(new), set(old)
        prefix = f'ESEARCH (TAG "{tag}")'.encode() + (b" UID" if live.uid else b"")
        gone = [u if live.uid else bisect.bisect_left(before, u) + 1 for u in old if u not in now]
        if gone:
            removals.append(prefix + b" REMOVEFROM (0 " + uid_set(sorted(gone)) + b")")
        pairs = _additions(s, live, new, then)
        if pairs:
            additions.append(prefix + b" ADDTO (" + b" ".join(pairs) + b")")
    return removals, additions


def forget(s: Session, gone: Sequence[int]) -> list[bytes]:
    """The responses for messages this session expunged itself (EXPUNGE, MOVE): REMOVEFROM
    from the live results that held them, numbered while they still are, then the view's
    EXPUNGEs (or VANISHED)."""
    selected = s.selected
    assert selected is not None
    lines: list[bytes] = []
    expunged = set(gone)
    for tag, live in (selected.live or {}).items():
        lost = [u for u in live.result if u in expunged]
        if not lost:
            continue
        live.result = [u for u in live.result if u not in expunged]
        numbers = lost if live.uid else [selected.seq_of(u) or 0 for u in lost]
        prefix = f'ESEARCH (TAG "{tag}")'.encode() + (b" UID" if live.uid else b"")
        lines.append(prefix + b" REMOVEFROM (0 " + uid_set(sorted(numbers)) + b")")
    return lines + selected.forget(gone, vanished=s.qresync)


def _additions(s: Session, live: LiveSearch, new: list[int], then: set[int]) -> list[bytes]:
    """ADDTO's position and set pairs: one pair at position 0 for an unsorted result; for a
    sorted one a pair per run of messages new there, at the position its first one takes."""
    selected = s.selected
    assert selected is not None

    def number(uid: int) -> int:
        seq = uid if live.uid else selected.seq_of(uid)
        assert seq is not None
        return seq

    if not live.ordered:
        added = sorted(number(u) for u in new if u not in then)
        return [b"0 " + uid_set(added)] if added else []
    pairs: list[bytes] = []
    run: list[int] = []
    start = 0
    for position, uid in enumerate(new, 1):
        if uid in then:
            if run:
                pairs.append(b"%d %s" % (start, uid_set(run)))
                run = []
            continue
        if not run:
            start = position
        run.append(number(uid))
    if run:
        pairs.append(b"%d %s" % (start, uid_set(run)))
    return pairs


@command("CANCELUPDATE", State.SELECTED)
async def cancel_update(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, CancelUpdate)
    selected = s.selected
    assert selected is not None
    live = selected.live or {}
    unknown = [tag for tag in args.tags if tag not in live]
    if unknown:
        # RFC 5267 §4.3.2: a tag that names no live search is the client's error.
        raise bad(f'Tag "{unknown[0]}" names no search kept up to date')
    for tag in args.tags:
        del live[tag]
    return "CANCELUPDATE completed"
