"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES and REFS (threading.py), over
the messages a search program chooses, from keys ingest stored (no header is parsed here)."""

from __future__ import annotations

import bisect

from mailgate.fairness import Pace
from mailgate.imap.fetch import batches
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.search import matching
from mailgate.imap.syntax.values import All, Request, SearchKey, Thread
from mailgate.imap.threading import (
    STEP_EVERY,
    Message,
    ordered_subject,
    references,
    thread_list,
)

_COLUMNS = ("date", "subject", "reply", "msgid", "in_reply_to", "references")

# Rows read per query: turning a query's rows into Python holds the loop, a few ms per 1,000.
ORDER_BATCH = 1000


async def _messages(s: Session, key: SearchKey) -> tuple[list[Message], dict[int, int]]:
    """The messages of the selected mailbox that match `key`, in mailbox order, as the
    algorithms see them; and the UID of each sequence number."""
    selected = s.selected
    assert selected is not None
    wanted: set[int] | None = None  # UIDs; None: all
    if not isinstance(key, All):
        hits, _, _ = await matching(s, key)
        wanted = {uid for _, uid, _ in hits}
    ranges = [(1, selected.last_uid)] if selected.last_uid else []
    uids = selected.uids
    messages: list[Message] = []
    uid_of: dict[int, int] = {}
    with Pace() as pace:
        # In batches: what a session holds grows with the matches, not with the rows of the
        # mailbox read at once, and the loop is free between two.
        for batch in batches(selected, ranges, ORDER_BATCH):
            rows = await s.store.order_keys(selected.mailbox_id, batch, _COLUMNS)
            # Both ascend by UID: the session's sequence numbers are found by one merge. A row
            # the session does not know (arrived since, or expunged meanwhile) is skipped.
            at = bisect.bisect_left(uids, rows[0][0]) if rows else 0
            for n, (uid, date, subject, reply, msgid, in_reply_to, refs) in enumerate(rows):
                while at < len(uids) and uids[at] < uid:
                    at += 1
                if at == len(uids) or uids[at] != uid or (wanted is not None and uid not in wanted):
                    continue
                # RFC 5256 §3 step 1: the References, else In-Reply-To's first msg-id.
                chain = tuple(refs.split()) if refs else ((in_reply_to,) if in_reply_to else ())
                messages.append(Message(at + 1, date, subject, bool(reply), msgid, chain))
                uid_of[at + 1] = uid
                if n % STEP_EVERY == 0:
                    await pace.step()
    return messages, uid_of


@command("THREAD", State.SELECTED, expunges_ok=False)
async def thread(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Thread)
    messages, uid_of = await _messages(s, args.key)
    with Pace() as pace:
        if args.algorithm == "ORDEREDSUBJECT":
            roots = ordered_subject(messages)
        else:
            roots = await references(messages, pace.step, refs=args.algorithm == "REFS")
        if request.uid:
            data = await thread_list(roots, lambda m: uid_of[m.seq], pace.step)
        else:
            data = await thread_list(roots, lambda m: m.seq, pace.step)
    s.untagged(b"THREAD " + data if data else b"THREAD")
    return "THREAD completed"
