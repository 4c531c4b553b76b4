"""SORT and UID SORT (RFC 5256), with SORT=DISPLAY's keys (RFC 5957) and ESORT's RETURN options
(RFC 5267 §3).

The messages are chosen as SEARCH chooses them (search.py), and ordered by keys ingest stored
per message (mime/sortkeys.py, store/sorting.py): one read of a few columns, no header parsed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from mailgate.fairness import Pace
from mailgate.imap.fetch import batches
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.search import esearch, matching
from mailgate.imap.syntax.values import All, Request, SearchKey, Sort

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
# Rows read per query: turning a query's rows into Python holds the loop, a few ms per 1,000.
ORDER_BATCH = 1000


class Chosen:
    """The messages a search program chose, in mailbox order, with the keys asked for:
    ``rows[i]`` is (uid, *keys) of the message with sequence number ``seqs[i]``."""

    __slots__ = ("modseqs", "rows", "seqs", "with_modseq")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.rows: list[tuple[Any, ...]] = []
        self.modseqs: list[int] = []
        self.with_modseq = False


async def choose(s: Session, key: SearchKey, columns: Sequence[str]) -> Chosen:
    """The messages of the selected mailbox that match `key`, with their stored `columns`."""
    selected = s.selected
    assert selected is not None
    chosen = Chosen()
    wanted: dict[int, tuple[int, int]] | None = None  # uid -> (seq, modseq); None: all
    if not isinstance(key, All):
        hits, chosen.with_modseq = await matching(s, key)
        wanted = {uid: (seq, modseq) for seq, uid, modseq in hits}
    ranges = [(1, selected.last_uid)] if selected.last_uid else []
    uids = selected.uids
    with Pace() as pace:
        # In batches: what a session holds while it sorts grows with the matches, not with
        # the mailbox's rows read at once, and the loop is free between two.
        for batch in batches(selected, ranges, ORDER_BATCH):
            rows = await s.store.order_keys(selected.mailbox_id, batch, columns)
            # Both ascend by UID: the session's sequence numbers are found by one merge. A row
            # the session does not know (arrived since, or expunged meanwhile) is skipped.
            at = bisect.bisect_left(uids, rows[0][0]) if rows else 0
            for n, row in enumerate(rows):
                uid = row[0]
                while at < len(uids) and uids[at] < uid:
                    at += 1
                if at == len(uids) or uids[at] != uid:
                    continue
                if wanted is None:
                    seq, modseq = at + 1, 0
                else:
                    found = wanted.get(uid)
                    if found is None:
                        continue
                    seq, modseq = found
                chosen.seqs.append(seq)
                chosen.rows.append(row)
                chosen.modseqs.append(modseq)
                if n % PACE_EVERY == 0:
                    await pace.step()
    return chosen


@command("SORT", State.SELECTED, expunges_ok=False)
async def sort(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Sort)
    columns = list(dict.fromkeys(_KEY_COLUMNS[c.key] for c in args.criteria))
    chosen = await choose(s, args.key, columns)
    order = list(range(len(chosen.rows)))
    # Stable sorts, the last criterion first: each earlier one then decides, and messages equal
    # on every key stay in mailbox order (RFC 5256 §3), REVERSE or not (a reversed stable sort
    # keeps equal items in their order).
    rows = chosen.rows
    for criterion in reversed(args.criteria):
        at = columns.index(_KEY_COLUMNS[criterion.key]) + 1
        keys = [row[at] for row in rows]
        order.sort(key=keys.__getitem__, reverse=criterion.reverse)
    numbers = [rows[i][0] if request.uid else chosen.seqs[i] for i in order]
    if args.returns is not None:
        modseqs = [chosen.modseqs[i] for i in order] if chosen.with_modseq else None
        s.untagged(esearch(request, numbers, args.returns, modseqs, ordered=True))
    else:
        line = b"SORT" + b"".join(b" %d" % n for n in numbers)
        if chosen.with_modseq and numbers:
            # RFC 7162 §3.1.5: as SEARCH, the highest MODSEQ of the messages found.
            line += b" (MODSEQ %d)" % max(chosen.modseqs)
        s.untagged(line)
    return "SORT completed"
