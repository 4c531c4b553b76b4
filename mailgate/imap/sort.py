"""SORT and UID SORT (RFC 5256), with SORT=DISPLAY's keys (RFC 5957) and ESORT's RETURN options
(RFC 5267 §3).

The messages are chosen as SEARCH chooses them (search.py), and ordered by keys ingest stored
per message (mime/sortkeys.py): the database orders the mailbox's UIDs by them
(store/sorting.py), no header is parsed. THREAD reads the keys through choose().
"""

from __future__ import annotations

import bisect

from mailgate.fairness import Pace
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.search import esearch, matching
from mailgate.imap.syntax.values import All, Request, Sort

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
    wanted: dict[int, tuple[int, int]] | None = None  # uid -> (seq, modseq); None: all
    with_modseq = False
    if not isinstance(args.key, All):
        hits, with_modseq = await matching(s, args.key)
        wanted = {uid: (seq, modseq) for seq, uid, modseq in hits}
    # The database orders the UIDs (RFC 5256 §3: messages equal on every key in mailbox order,
    # which is UID order, REVERSE or not); here they become the session's numbers.
    order = [(_KEY_COLUMNS[c.key], c.reverse) for c in args.criteria]
    ranges = [(1, selected.last_uid)] if selected.last_uid else []
    ordered = await s.store.sorted_uids(selected.mailbox_id, ranges, order) if ranges else []
    uids = selected.uids
    numbers: list[int] = []
    modseqs: list[int] = []
    with Pace() as pace:
        for n, uid in enumerate(ordered):
            if wanted is None:
                at = bisect.bisect_left(uids, uid)
                if at == len(uids) or uids[at] != uid:
                    continue  # arrived since, or expunged meanwhile: not the session's
                numbers.append(uid if request.uid else at + 1)
            else:
                found = wanted.get(uid)
                if found is None:
                    continue
                numbers.append(uid if request.uid else found[0])
                modseqs.append(found[1])
            if n % PACE_EVERY == 0:
                await pace.step()
    if args.returns is not None:
        s.untagged(
            esearch(request, numbers, args.returns, modseqs if with_modseq else None, ordered=True)
        )
    else:
        line = b"SORT" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and numbers:
            # RFC 7162 §3.1.5: as SEARCH, the highest MODSEQ of the messages found.
            line += b" (MODSEQ %d)" % max(modseqs)
        s.untagged(line)
    return "SORT completed"
