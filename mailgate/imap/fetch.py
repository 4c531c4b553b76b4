"""FETCH: the hot path of every client's folder sync.

ENVELOPE, BODYSTRUCTURE, sizes, the header section and the preview (RFC 8970) were computed at
ingest; a range FETCH of them is one store query and one buffered write. Message bytes are read
only for the items that need them, in batches, and written as the client reads them. BINARY
(RFC 3516) decodes parts per FETCH: a big message's in a worker thread.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable

from mailgate.fairness import Pace
from mailgate.imap.condstore import enable_condstore
from mailgate.imap.errors import bad, no
from mailgate.imap.ext.objectid import email_item, thread_item
from mailgate.imap.interfaces import Session, State
from mailgate.imap.mailbox_view import SelectedMailbox
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Fetch, FetchItem, Request, SequenceSet
from mailgate.imap.wire import flag_list, internaldate, literal, literal8
from mailgate.mime.headers import header_fields
from mailgate.mime.imapview import (
    UnknownTransferEncoding,
    binary_section,
    extract_section,
    string,
    utf8_quoted,
)
from mailgate.store.records import SEEN, FetchRow

Renderer = Callable[[FetchRow], bytes]
# Messages per store round trip when their bytes are needed (bounded memory per session)...
DATA_BATCH = 256
# ...and at most this many bytes of them, so that FETCH 1:* BODY[] over large messages holds a
# few MiB at a time rather than DATA_BATCH times the largest message.
DATA_BUDGET = 4 * 1024 * 1024
META_BATCH = 5000
# Responses go out once this much is buffered, waiting while the client is not reading.
WRITE_CHUNK = 256 * 1024
# Above this size a message's parts are decoded (BINARY) or its body searched in a worker
# thread, where the work cannot hold the loop; below it the thread would cost more than it saves.
BIG_MESSAGE = 256 * 1024
# The decoded parts of the message being rendered, by part number, for the BINARY items.
Decoded = dict[tuple[int, ...], bytes | None]


def _partial(data: bytes | None, partial: tuple[int, int] | None) -> bytes | None:
    if partial is None or data is None:
        return data
    start, length = partial
    return data[start : start + length]


def _body_text(row: FetchRow) -> bytes:
    assert row.data is not None
    assert row.header is not None
    return row.data[len(row.header) :]


def _section_bytes(item: FetchItem) -> Callable[[FetchRow], bytes | None]:
    """How to get the bytes of one BODY[...]-like item from a row."""
    if item.name == "RFC822":
        return lambda row: row.data
    if item.name == "RFC822.HEADER":
        return lambda row: row.header
    if item.name == "RFC822.TEXT":
        return _body_text
    section = item.section
    assert section is not None
    part, spec, fields = section.part, section.specifier, section.fields
    if not part:
        if spec == "":
            return lambda row: row.data
        if spec == "HEADER":
            return lambda row: row.header
        if spec == "HEADER.FIELDS":
            return lambda row: header_fields(row.header or b"", fields)
        if spec == "HEADER.FIELDS.NOT":
            return lambda row: header_fields(row.header or b"", fields, exclude=True)
        if spec == "TEXT":
            return _body_text
    return lambda row: extract_section(row.data or b"", row.parts or b"", part, spec, fields)


def _columns(item: FetchItem) -> set[str]:
    name = item.name
    if name in ("ENVELOPE", "BODYSTRUCTURE"):
        return {name.lower()}
    if name == "EMAILID":
        return {"blob_id"}
    if name == "THREADID":
        return {"thread"}
    if name == "SAVEDATE":
        return {"saved_date"}
    if name == "PREVIEW":
        return {"preview"}
    if name in ("BINARY", "BINARY.SIZE"):
        assert item.section is not None
        return {"data", "parts"} if item.section.part else {"data"}
    if name == "BODY" and item.section is None:
        return {"body"}
    if name == "RFC822.HEADER":
        return {"header"}
    if name in ("RFC822", "RFC822.TEXT"):
        return {"data", "header"}
    if name == "BODY":
        section = item.section
        assert section is not None
        if not section.part and section.specifier.startswith("HEADER"):
            return {"header"}
        if not section.part:
            return {"data", "header"}
        return {"data", "parts"}
    return set()


def _renderer(item: FetchItem, selected: SelectedMailbox, decoded: Decoded, utf8: bool) -> Renderer:
    """How one item is written; `utf8`: the session takes UTF-8 in quoted strings."""
    name = item.name
    if utf8 and name in ("ENVELOPE", "BODYSTRUCTURE", "BODY", "PREVIEW") and item.section is None:
        return _utf8_renderer(name)
    if name == "UID":
        return lambda row: b"UID %d" % row.uid
    if name == "FLAGS":
        return lambda row: b"FLAGS " + flag_list(selected.with_recent(row.uid, row.flags))
    if name == "INTERNALDATE":
        return lambda row: b"INTERNALDATE " + internaldate(row.internaldate)
    if name == "RFC822.SIZE":
        return lambda row: b"RFC822.SIZE %d" % row.size
    if name == "ENVELOPE":
        return lambda row: b"ENVELOPE " + (row.envelope or b"NIL")
    if name == "BODYSTRUCTURE":
        return lambda row: b"BODYSTRUCTURE " + (row.bodystructure or b"NIL")
    if name == "BODY" and item.section is None:
        return lambda row: b"BODY " + (row.body or b"NIL")
    if name == "MODSEQ":
        return lambda row: b"MODSEQ (%d)" % row.modseq
    if name == "EMAILID":
        return lambda row: email_item(row.blob_id)
    if name == "THREADID":
        return lambda row: thread_item(row.thread)
    if name == "SAVEDATE":
        # RFC 8514 §4.3: NIL where the mailbox keeps no save dates; ours always does.
        return lambda row: (
            b"SAVEDATE " + (internaldate(row.saved_date) if row.saved_date else b"NIL")
        )
    if name == "PREVIEW":
        # RFC 8970 §5: the preview is never NIL without LAZY; a message without text has "".
        return lambda row: b"PREVIEW " + string(row.preview or "")
    if name in ("BINARY", "BINARY.SIZE"):
        return _binary_renderer(item, decoded)
    label = item.response_name() + b" "
    get = _section_bytes(item)
    partial = item.partial
    return lambda row: label + literal(_partial(get(row), partial))


def _utf8_renderer(name: str) -> Renderer:
    if name == "ENVELOPE":
        return lambda row: b"ENVELOPE " + utf8_quoted(row.envelope or b"NIL")
    if name == "BODYSTRUCTURE":
        return lambda row: b"BODYSTRUCTURE " + utf8_quoted(row.bodystructure or b"NIL")
    if name == "BODY":
        return lambda row: b"BODY " + utf8_quoted(row.body or b"NIL")
    return lambda row: b"PREVIEW " + string(row.preview or "", utf8=True)


def _binary_renderer(item: FetchItem, decoded: Decoded) -> Renderer:
    assert item.section is not None
    part = item.section.part
    if item.name == "BINARY.SIZE":
        label = item.response_name() + b" "
        return lambda row: label + b"%d" % len(decoded[part] or b"")
    label = item.response_name() + b" "
    partial = item.partial

    def render(row: FetchRow) -> bytes:
        data = _partial(decoded[part], partial)
        # RFC 3516 §4.2: content with NUL goes as a literal8, other content as a literal.
        return label + (literal8(data) if data is not None and b"\x00" in data else literal(data))

    return render


def _decode_parts(row: FetchRow, parts: list[tuple[int, ...]]) -> Decoded:
    try:
        return {part: binary_section(row.data or b"", row.parts or b"", part) for part in parts}
    except UnknownTransferEncoding as exc:
        raise no(str(exc), "UNKNOWN-CTE") from None


def batches(
    selected: SelectedMailbox, ranges: list[tuple[int, int]], size: int
) -> list[list[tuple[int, int]]]:
    """Split UID ranges into runs of at most `size` known messages (each one range)."""
    uids = selected.uids
    out: list[list[tuple[int, int]]] = []
    for lo, hi in ranges:
        start = bisect.bisect_left(uids, lo)
        end = bisect.bisect_right(uids, hi)
        for i in range(start, end, size):
            j = min(i + size, end) - 1
            out.append([(uids[i], uids[j])])
    return out


async def data_batches(
    s: Session, selected: SelectedMailbox, ranges: list[tuple[int, int]]
) -> list[list[tuple[int, int]]]:
    """Like batches(), for loading message bytes: runs of at most DATA_BATCH messages and
    DATA_BUDGET bytes (a larger message goes alone), planned from the stored sizes."""
    out: list[list[tuple[int, int]]] = []
    for batch in batches(selected, ranges, META_BATCH):
        run: list[int] = []
        total = 0
        for uid, size in await s.store.sizes(selected.mailbox_id, batch):
            if run and (total + size > DATA_BUDGET or len(run) == DATA_BATCH):
                out.append([(run[0], run[-1])])
                run, total = [], 0
            run.append(uid)
            total += size
        if run:
            # Each batch above is one range of one request, so a run is one range too.
            out.append([(run[0], run[-1])])
    return out


@command("FETCH", State.SELECTED, expunges_ok=False)
async def fetch(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Fetch)
    selected = s.selected
    assert selected is not None
    items = list(args.items)
    names = {item.name for item in items}
    if args.changedsince is not None or "MODSEQ" in names:
        enable_condstore(s)  # RFC 7162 §3.1: using CONDSTORE syntax enables it
    if args.changedsince is not None and "MODSEQ" not in names:
        items.append(_item("MODSEQ"))
    if args.vanished and not s.qresync:
        raise bad("VANISHED needs QRESYNC enabled first (ENABLE QRESYNC)", "CLIENTBUG")
    if request.uid and "UID" not in names:
        items.insert(0, _item("UID"))
    marks_seen = not selected.readonly and any(i.sets_seen for i in items)
    if marks_seen and "FLAGS" not in names:
        items.append(_item("FLAGS"))
    binary_parts = list(
        dict.fromkeys(i.section.part for i in items if i.name.startswith("BINARY") and i.section)
    )
    decoded: Decoded = {}
    renderers = [_renderer(item, selected, decoded, s.utf8) for item in items]
    columns: set[str] = set()
    for item in items:
        columns |= _columns(item)

    if args.vanished:
        assert args.changedsince is not None  # the parser insists
        await _vanished(s, selected, args.sequence, args.changedsince)
    ranges = selected.uid_ranges(args.sequence, request.uid)
    if not ranges:
        return "FETCH completed"
    if marks_seen:
        update = await s.store.store_flags(selected.mailbox_id, ranges, "+", [SEEN])
        for state in update.updated:
            selected.note_reported(state.uid, state.modseq)
    with_data = "data" in columns
    if with_data:
        plan = await data_batches(s, selected, ranges)
    else:
        plan = batches(selected, ranges, META_BATCH)
    changedsince = args.changedsince
    # A FETCH carrying a keyword this session has not been told of (another session's STORE
    # not yet caught up) is preceded by FLAGS naming it (RFC 3501 §7.2.6).
    tells_flags = "FLAGS" in names or marks_seen
    with Pace() as pace:
        for batch in plan:
            rows = await s.store.fetch(selected.mailbox_id, batch, columns)
            for row in rows:
                if changedsince is not None and row.modseq <= changedsince:
                    continue
                seq = selected.seq_of(row.uid)
                if seq is None:
                    continue
                if binary_parts:
                    if row.size > BIG_MESSAGE:
                        decoded.update(await asyncio.to_thread(_decode_parts, row, binary_parts))
                    else:
                        decoded.update(_decode_parts(row, binary_parts))
                if tells_flags and selected.unknown_keywords(row.flags):
                    for line in selected.announce_keywords(row.flags):
                        s.untagged(line)
                s.send(b"* %d FETCH (%s)\r\n" % (seq, b" ".join([r(row) for r in renderers])))
                if with_data:
                    # Message bytes go out as they are rendered: one message waits, not a batch.
                    await s.drain(at_least=WRITE_CHUNK)
                await pace.step()
            await s.drain(at_least=WRITE_CHUNK)
    return "FETCH completed"


async def _vanished(s: Session, selected: SelectedMailbox, uids: SequenceSet, modseq: int) -> None:
    """RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) first names the UIDs of the
    set that were expunged after n."""
    changes = await s.store.changes_since(selected.mailbox_id, modseq)
    if changes.exists:
        known = selected.saved if uids.saved else uids.resolve(changes.uidnext - 1)
        gone = selected.vanished_earlier(changes, known)
        if gone:
            s.untagged(b"VANISHED (EARLIER) " + gone)


def _item(name: str) -> FetchItem:
    return FetchItem(name=name, section=None, partial=None, peek=False)
