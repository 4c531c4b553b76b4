"""SORT and UID SORT (RFC 5256), with SORT=DISPLAY's keys (RFC 5957) and ESORT's RETURN options
(RFC 5267 §3).

The messages are chosen as SEARCH chooses them (search.py), and ordered by keys ingest stored
per message (mime/sortkeys.py): the database orders the mailbox's UIDs by them
(store/sorting.py), no header is parsed. THREAD reads the keys through choose().
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable

from mailgate.fairness import Pace
from mailgate.imap.ext import context
from mailgate.imap.interfaces import Session, State
from mailgate.imap.mailbox_view import LiveSearch
from mailgate.imap.registry import command
from mailgate.imap.search import esearch, fixed_saved, matching, saved_ranges
from mailgate.imap.syntax.values import All, Request, SearchKey, Sort, SortCriterion

# A sort key's stored column (store/sorting.py's names).
_KEY_COLUMNS = {
    "ARRIVAL": "arrival",
    "CC": "cc",
    "DATE": "date",
    "FROM": "from",
    "SIZE": "size",
    "SUBJECT": "subject",
    "TO": "to",
    "DISPLAYFROM": "displayfrom",
    "DISPLAYTO": "displayto",
}


# Rows looked at between two checks of the clock (fairness.Pace): each costs a microsecond.
PACE_EVERY = 256


@command("SORT", State.SELECTED, expunges_ok=False)
async def sort(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Sort)
    selected = s.selected
    assert selected is not None
    returns = args.returns
    saving = returns is not None and "SAVE" in returns
    updating = returns is not None and "UPDATE" in returns
    if updating:
        context.check_room(s, request.tag)
    key = fixed_saved(selected, args.key)
    try:
        found, seqs, modseqs, with_modseq = await _sorted(s, key, args.criteria)
    except Exception:
        if saving:
            selected.saved = ()  # RFC 5182 §2.4: a failed ... SAVE saves the empty set
        raise
    numbers = found if request.uid else seqs
    if updating:
        live = LiveSearch(request.uid, True, _refresh(s, key, args.criteria), found)
        context.keep(s, request.tag, live)
    if returns is not None and saving:
        # SEARCHRES with ESORT: the set of messages found; MIN and MAX, the first and last in
        # sort order.
        selected.saved = saved_ranges(found, returns)
        returns = tuple(r for r in returns if r != "SAVE")
        if not returns:
            return "SORT completed, result saved"
    if returns is not None:
        shown = modseqs if with_modseq else None
        s.untagged(esearch(request, numbers, returns, shown, ordered=True, partial=args.partial))
    else:
        line = b"SORT" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and numbers:
            # RFC 7162 §3.1.5: as SEARCH, the highest MODSEQ of the messages found.
            line += b" (MODSEQ %d)" % max(modseqs)
        s.untagged(line)
    return "SORT completed"


async def _sorted(
    s: Session, key: SearchKey, criteria: tuple[SortCriterion, ...]
) -> tuple[list[int], list[int], list[int], bool]:
    """The messages a program selects in sort order: their UIDs, sequence numbers and (when
    the program has a MODSEQ key, the last item) MODSEQs."""
    selected = s.selected
    assert selected is not None
    wanted: dict[int, tuple[int, int]] | None = None  # uid -> (seq, modseq); None: all
    with_modseq = False
    if not isinstance(key, All):
        hits, with_modseq, _ = await matching(s, key)
        wanted = {uid: (seq, modseq) for seq, uid, modseq in hits}
    # The database orders the UIDs (RFC 5256 §3: messages equal on every key in mailbox order,
    # which is UID order, REVERSE or not); here they become the session's numbers.
    order = [(_KEY_COLUMNS[c.key], c.reverse) for c in criteria]
    ranges = [(1, selected.last_uid)] if selected.last_uid else []
    ordered = await s.store.sorted_uids(selected.mailbox_id, ranges, order) if ranges else []
    uids = selected.uids
    found: list[int] = []  # in sort order
    seqs: list[int] = []
    modseqs: list[int] = []
    with Pace() as pace:
        for n, uid in enumerate(ordered):
            if wanted is None:
                at = bisect.bisect_left(uids, uid)
                if at == len(uids) or uids[at] != uid:
                    continue  # arrived since, or expunged meanwhile: not the session's
                seqs.append(at + 1)
                found.append(uid)
            else:
                if uid not in wanted:
                    continue
                seq, modseq = wanted[uid]
                seqs.append(seq)
                found.append(uid)
                modseqs.append(modseq)
            if n % PACE_EVERY == 0:
                await pace.step()
    return found, seqs, modseqs, with_modseq


def _refresh(
    s: Session, key: SearchKey, criteria: tuple[SortCriterion, ...]
) -> Callable[[], Awaitable[list[int]]]:
    """How a live SORT finds its result again: the UIDs it selects, in sort order."""

    async def refresh() -> list[int]:
        return (await _sorted(s, key, criteria))[0]

    return refresh
