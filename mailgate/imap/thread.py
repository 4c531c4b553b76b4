"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES and REFS (threading.py), over
the messages a search program chooses, from keys ingest stored (no header is parsed here)."""

from __future__ import annotations

from mailgate.fairness import Pace
from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.sort import choose
from mailgate.imap.syntax.values import Request, Thread
from mailgate.imap.threading import (
    STEP_EVERY,
    Message,
    ordered_subject,
    references,
    thread_list,
)

_COLUMNS = ("date", "subject", "reply", "msgid", "in_reply_to", "references")


@command("THREAD", State.SELECTED, expunges_ok=False)
async def thread(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Thread)
    chosen = await choose(s, args.key, _COLUMNS)
    messages = []
    uids: dict[int, int] = {}
    with Pace() as pace:
        for n, (seq, (uid, date, subject, reply, msgid, in_reply_to, refs)) in enumerate(
            zip(chosen.seqs, chosen.rows, strict=True)
        ):
            # RFC 5256 §3 step 1: the References, else In-Reply-To's first msg-id.
            chain = tuple(refs.split()) if refs else ((in_reply_to,) if in_reply_to else ())
            messages.append(Message(seq, date, subject, bool(reply), msgid, chain))
            uids[seq] = uid
            if n % STEP_EVERY == 0:
                await pace.step()
        if args.algorithm == "ORDEREDSUBJECT":
            roots = ordered_subject(messages)
        else:
            roots = await references(messages, pace.step, refs=args.algorithm == "REFS")
        if request.uid:
            data = await thread_list(roots, lambda m: uids[m.seq], pace.step)
        else:
            data = await thread_list(roots, lambda m: m.seq, pace.step)
    s.untagged(b"THREAD " + data if data else b"THREAD")
    return "THREAD completed"
