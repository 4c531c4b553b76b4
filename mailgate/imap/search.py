"""SEARCH and UID SEARCH (with ESEARCH's RETURN options, RFC 4731, and SEARCHRES's SAVE and
"$", RFC 5182). An IMAP4rev2 session is always answered with ESEARCH (RFC 9051 §6.4.4).

The database answers what it can: flags, sizes, UIDs and MODSEQs, and header and text keys from
the text index built at ingest (mime/imapsearch.py), exactly or as a superset of the matches
(`_bounds`). The messages it cannot decide on are evaluated per message by matching.py; this
module loads only what the keys need (flags and sizes always, headers for header keys, message
bytes for BODY/TEXT) and evaluates in slices of the event loop, a big message's body in a worker
thread.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable

from mailgate.fairness import Pace
from mailgate.imap.condstore import enable_condstore
from mailgate.imap.ext import context
from mailgate.imap.ext.objectid import email_id
from mailgate.imap.fetch import (
    BIG_MESSAGE,
    DATA_BATCH,
    DATA_BUDGET,
    META_BATCH,
    batches,
    data_batches,
)
from mailgate.imap.interfaces import Session, State
from mailgate.imap.mailbox_view import LiveSearch, SelectedMailbox
from mailgate.imap.matching import matches, needs
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import (
    All,
    And,
    BodyKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    ObjectIdKey,
    Or,
    Request,
    Search,
    SearchKey,
    SeqKey,
    SeqRange,
    SequenceSet,
    SizeKey,
    TextKey,
    UidKey,
)
from mailgate.imap.wire import uid_set
from mailgate.mime.headers import fields_by_name
from mailgate.mime.imapsearch import INDEXED_FIELDS, header_text, header_values, searchable
from mailgate.mime.parts import body_text
from mailgate.store.records import (
    MAX_FILTER_RANGES,
    AllOf,
    AnyOf,
    BodyHas,
    BodyWhole,
    EntryFilter,
    EveryEntry,
    FetchRow,
    FieldHas,
    HasFlag,
    HeaderHas,
    HeadersHave,
    ModSeqFrom,
    NoneOf,
    SizeAbove,
    SizeBelow,
    UidIn,
)


class _View:
    """One message as matching.py sees it, decoding headers and body only when asked. Its header
    is split into fields once, however many keys (and field names) the program has."""

    __slots__ = ("_fields", "_recent", "_row", "seq")

    def __init__(self, row: FetchRow, seq: int, recent: bool) -> None:
        self._row = row
        self.seq = seq
        self._recent = recent
        self._fields: dict[bytes, list[bytes]] | None = None

    @property
    def uid(self) -> int:
        return self._row.uid

    @property
    def flags(self) -> frozenset[str]:
        flags = frozenset(self._row.flags)
        return flags | {"\\Recent"} if self._recent else flags

    @property
    def internaldate(self) -> datetime.datetime:
        return self._row.internaldate

    @property
    def size(self) -> int:
        return self._row.size

    @property
    def modseq(self) -> int:
        return self._row.modseq

    @property
    def sent_date(self) -> datetime.datetime | None:
        return self._row.sent_date

    @property
    def saved_date(self) -> datetime.datetime:
        return self._row.saved_date or self._row.internaldate

    @property
    def email_id(self) -> str:
        return "" if self._row.blob_id is None else email_id(self._row.blob_id)

    @property
    def thread_id(self) -> str | None:
        return self._row.thread

    def header_values(self, name: str) -> list[str]:
        if self._fields is None:
            self._fields = fields_by_name(self._row.header or b"")
        return header_values(self._fields, name)

    def header_text(self) -> str:
        return header_text(self._row.header or b"")

    def body_text(self) -> str:
        return body_text(self._row.data or b"")


def _uses(key: SearchKey, leaf: Callable[[SearchKey], bool]) -> bool:
    """Whether any key in the tree satisfies `leaf` (the parser bounds the depth)."""
    if isinstance(key, And | Or):
        return any(_uses(child, leaf) for child in key.keys)
    if isinstance(key, Not):
        return _uses(key.key, leaf)
    return leaf(key)


def _is_modseq(key: SearchKey) -> bool:
    return isinstance(key, ModSeqKey)


def _is_object_id(key: SearchKey) -> bool:
    return isinstance(key, ObjectIdKey)


def _is_sent_date(key: SearchKey) -> bool:
    return isinstance(key, DateKey) and key.field == "sent"


def _is_saved_date(key: SearchKey) -> bool:
    return isinstance(key, DateKey) and key.field == "saved"


def _with_saved(key: SearchKey, saved: SequenceSet) -> SearchKey:
    """The key tree with RFC 5182's "$" (a sequence set or UID $) replaced by the saved UIDs."""
    if isinstance(key, And):
        return And(tuple(_with_saved(k, saved) for k in key.keys))
    if isinstance(key, Or):
        return Or(tuple(_with_saved(k, saved) for k in key.keys))
    if isinstance(key, Not):
        return Not(_with_saved(key.key, saved))
    if isinstance(key, SeqKey | UidKey) and key.sequence.saved:
        return UidKey(saved)
    return key


def _is_saved_set(key: SearchKey) -> bool:
    return isinstance(key, SeqKey | UidKey) and key.sequence.saved


def fixed_saved(selected: SelectedMailbox, key: SearchKey) -> SearchKey:
    """The program with "$" read now (RFC 5182): a live search (RFC 5267 §4.3) keeps the set
    saved when it began, whatever a later SAVE saves."""
    if not _uses(key, _is_saved_set):
        return key
    return _with_saved(key, SequenceSet(tuple(SeqRange(lo, hi) for lo, hi in selected.saved)))


async def matching(s: Session, key: SearchKey) -> tuple[list[tuple[int, int, int]], bool, bool]:
    """The messages of the selected mailbox that match a search program, as (seq, uid, modseq)
    in mailbox order; whether the program has a MODSEQ key; and whether messages the session
    still numbers were gone (expunged by another session, not yet reported), so not searched.
    SORT and THREAD select their messages with it too."""
    selected = s.selected
    assert selected is not None
    key = fixed_saved(selected, key)
    with_modseq = _uses(key, _is_modseq)
    if with_modseq:
        enable_condstore(s)
    need = needs(key)
    columns: set[str] = set()
    if need.headers:
        columns.add("header")
    # SENTBEFORE/SENTON/SENTSINCE read the Date: header, indexed at ingest as sent_date; the
    # fetch leaves it out (None: "no Date header") unless asked for.
    if _uses(key, _is_sent_date):
        columns.add("sent_date")
    if _uses(key, _is_saved_date):
        columns.add("saved_date")
    if _uses(key, _is_object_id):
        columns |= {"blob_id", "thread"}
    if need.body:
        columns |= {"header", "data"}
    largest_uid = selected.last_uid
    hits: list[tuple[int, int, int]] = []  # (seq, uid, modseq)
    maybe, surely = _bounds(key, selected)
    if maybe == surely:
        # Flags, sizes, UIDs, MODSEQs and indexed text only (UNSEEN, SUBJECT x, BODY y...): one
        # query answers, instead of every row read and tested here.
        found, present = await s.store.matching_entries(selected.mailbox_id, maybe, largest_uid)
        for uid, modseq in found:
            seq = selected.seq_of(uid)
            if seq is not None:  # not yet announced to this session: not searched either
                hits.append((seq, uid, modseq))
        return hits, with_modseq, present < selected.exists
    if _uses(key, _is_text):
        # The text index narrows the search to the messages that may match, and says which of
        # them surely do; only the others are read and tested here.
        candidates, present = await s.store.candidate_entries(
            selected.mailbox_id, maybe, surely, largest_uid
        )
        unsure: list[tuple[int, int]] = []
        for uid, modseq, size, sure in candidates:
            seq = selected.seq_of(uid)
            if seq is None:
                continue
            if sure:
                hits.append((seq, uid, modseq))
            else:
                unsure.append((uid, size))
        scanned, _ = await _scan(s, key, columns, need.body, _candidate_batches(unsure, need.body))
        return sorted(hits + scanned), with_modseq, present < selected.exists
    ranges = [(1, largest_uid)] if largest_uid else []
    if need.body:
        plan = await data_batches(s, selected, ranges)
    else:
        plan = batches(selected, ranges, META_BATCH)
    hits, searched = await _scan(s, key, columns, need.body, plan)
    return hits, with_modseq, searched < selected.exists


async def _scan(
    s: Session, key: SearchKey, columns: set[str], body: bool, plan: list[list[tuple[int, int]]]
) -> tuple[list[tuple[int, int, int]], int]:
    """The messages of `plan` (batches of UID ranges) that match, tested one by one, as (seq,
    uid, modseq); and how many were tested (those the session numbers and still exist)."""
    selected = s.selected
    assert selected is not None
    largest_seq, largest_uid = selected.exists, selected.last_uid
    now = datetime.datetime.now(datetime.UTC)  # RFC 5032: one "now" for the whole search
    hits: list[tuple[int, int, int]] = []
    # On the loop, in slices: a costly program over a big mailbox must not stall the others.
    # Only a big message goes to a thread, where decoding it cannot hold the loop; many small
    # ones there would, as threads contending for the GIL starve the loop of it.
    searched = 0
    with Pace() as pace:
        for batch in plan:
            rows = await s.store.fetch(selected.mailbox_id, batch, columns)
            for row in rows:
                seq = selected.seq_of(row.uid)
                if seq is None:
                    continue
                searched += 1
                view = _View(row, seq, selected.is_recent(row.uid))
                if body and row.size > BIG_MESSAGE:
                    hit = await asyncio.to_thread(matches, key, view, largest_seq, largest_uid, now)
                else:
                    hit = matches(key, view, largest_seq, largest_uid, now)
                if hit:
                    hits.append((seq, row.uid, row.modseq))
                await pace.step()
    return hits, searched


def _candidate_batches(
    candidates: list[tuple[int, int]], body: bool
) -> list[list[tuple[int, int]]]:
    """(UID, size) of the messages to test, ascending, as batches of UID ranges for the store's
    fetch: few enough ranges for one query each, bounded like data_batches() where bodies are
    read."""
    most = DATA_BATCH if body else META_BATCH
    plan: list[list[tuple[int, int]]] = []
    ranges: list[tuple[int, int]] = []
    count = total = 0
    for uid, size in candidates:
        adjacent = bool(ranges) and ranges[-1][1] + 1 == uid
        full = count == most or (not adjacent and len(ranges) == MAX_FILTER_RANGES)
        if ranges and (full or (body and total + size > DATA_BUDGET)):
            plan.append(ranges)
            ranges, count, total, adjacent = [], 0, 0, False
        if adjacent:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
        count += 1
        total += size
    if ranges:
        plan.append(ranges)
    return plan


_EVERY = EveryEntry()
_NOTHING = NoneOf(_EVERY)
_UNKNOWN = (_EVERY, _NOTHING)


def _is_text(key: SearchKey) -> bool:
    return isinstance(key, HeaderKey | BodyKey | TextKey)


def _bounds(key: SearchKey, selected: SelectedMailbox) -> tuple[EntryFilter, EntryFilter]:
    """The program as two filters the store runs in the database: the entries that may match
    (a superset of the matches) and those that surely do (a subset); the same filter twice
    where the database answers exactly. Where it cannot say, every entry may match and none
    surely does: those are read and tested one by one."""
    match key:
        case And(keys=keys) | Or(keys=keys):
            pairs = [_bounds(k, selected) for k in keys]
            both = AllOf if isinstance(key, And) else AnyOf
            return both(tuple(m for m, _ in pairs)), both(tuple(s for _, s in pairs))
        case Not(key=inner):
            maybe, surely = _bounds(inner, selected)
            return NoneOf(surely), NoneOf(maybe)
        case HeaderKey(field=field, value=value):
            needle = searchable(value)
            if needle is None:
                return _UNKNOWN
            if field in INDEXED_FIELDS:
                exact = FieldHas(field, needle)
                return exact, exact
            if not field.isascii():
                return _UNKNOWN
            # Any other field: the index of every field's name and values holds both.
            named = HeadersHave(f"\n{field}:")
            return (AllOf((named, HeadersHave(needle))) if needle else named), _NOTHING
        case BodyKey(value=value) | TextKey(value=value):
            needle = searchable(value)
            if needle is None:
                return _UNKNOWN
            has: EntryFilter = BodyHas(needle)
            if isinstance(key, TextKey):
                has = AnyOf((HeaderHas(needle), has))
            # Exact, but for a body longer than the index keeps: that may match further on.
            return AnyOf((has, NoneOf(BodyWhole()))), has
    leaf = _leaf_filter(key, selected)
    return _UNKNOWN if leaf is None else (leaf, leaf)


def _leaf_filter(key: SearchKey, selected: SelectedMailbox) -> EntryFilter | None:
    """A key other than text as a filter the store runs in the database, or None where it
    reads more than flags, sizes, UIDs and MODSEQs (dates, object ids) or names many UID
    ranges."""
    match key:
        case All():
            return EveryEntry()
        case FlagKey(flag=flag, present=present):
            found: EntryFilter | None = None
            if flag == "\\Recent":
                found = _uids(tuple(selected.recent or ()))  # the session's own ranges
            elif flag.isascii():
                found = HasFlag(flag)
            if found is None:
                return None
            return found if present else NoneOf(found)
        case SizeKey(op=op, size=size):
            return SizeAbove(size) if op == "larger" else SizeBelow(size)
        case ModSeqKey(modseq=modseq):
            return ModSeqFrom(modseq)
        case UidKey(sequence=sequence):
            return _uids(sequence.resolve(selected.last_uid))
        case SeqKey(sequence=sequence):
            uids = selected.uids
            ranges = [
                (uids[lo - 1], uids[min(hi, len(uids)) - 1])
                for lo, hi in sequence.resolve(len(uids))
                if lo <= len(uids)
            ]
            return _uids(tuple(ranges))
    return None


def _uids(ranges: tuple[tuple[int, int], ...]) -> UidIn | None:
    return UidIn(ranges) if len(ranges) <= MAX_FILTER_RANGES else None


@command("SEARCH", State.SELECTED, expunges_ok=False)
async def search(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Search)
    selected = s.selected
    assert selected is not None
    returns = args.returns
    updating = returns is not None and "UPDATE" in returns
    if updating:
        context.check_room(s, request.tag)
    key = fixed_saved(selected, args.key)
    try:
        hits, with_modseq, expunged = await matching(s, key)
    except Exception:
        if returns is not None and "SAVE" in returns:
            selected.saved = ()  # RFC 5182 §2.4: a failed SEARCH ... SAVE saves the empty set
        raise
    numbers = [uid if request.uid else seq for seq, uid, _ in hits]
    if updating:
        live = LiveSearch(request.uid, False, _refresh(s, key), [u for _, u, _ in hits])
        context.keep(s, request.tag, live)
    if returns is None and s.rev2:
        returns = ("ALL",)  # RFC 9051 §6.4.4: ESEARCH is the answer, ALL when none is asked
    if returns is not None and "SAVE" in returns:
        selected.saved = saved_ranges([uid for _, uid, _ in hits], returns)
        returns = tuple(r for r in returns if r != "SAVE")
        if not returns:
            # RFC 5182 §2.4: RETURN (SAVE) alone answers no ESEARCH.
            return "SEARCH completed, result saved"
    if returns is None:
        line = b"SEARCH" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and hits:
            # RFC 7162 §3.1.5: the highest MODSEQ of the matching messages.
            line += b" (MODSEQ %d)" % max(m for _, _, m in hits)
        s.untagged(line)
    else:
        modseqs = [m for _, _, m in hits] if with_modseq else None
        s.untagged(esearch(request, numbers, returns, modseqs, partial=args.partial))
    # RFC 5530 §3: the answer left out messages another session expunged, which this one
    # still numbers (it cannot be told during SEARCH, RFC 3501 §7.4.1): a NOOP will say which.
    return "[EXPUNGEISSUED] SEARCH completed" if expunged else "SEARCH completed"


def _refresh(s: Session, key: SearchKey) -> Callable[[], Awaitable[list[int]]]:
    """How a live SEARCH finds its result again: the UIDs that match, in mailbox order."""

    async def refresh() -> list[int]:
        hits, _, _ = await matching(s, key)
        return [uid for _, uid, _ in hits]

    return refresh


def saved_ranges(uids: list[int], returns: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """What RETURN (SAVE) keeps of a result's UIDs (in the command's order: mailbox order for
    SEARCH, sort order for SORT), as UID ranges: every one, or with MIN and/or MAX but neither
    ALL nor COUNT only the first and/or last (RFC 5182 §2.4, RFC 5267 §3)."""
    if uids and not {"ALL", "COUNT"} & set(returns) and {"MIN", "MAX"} & set(returns):
        uids = [*([uids[0]] if "MIN" in returns else []), *([uids[-1]] if "MAX" in returns else [])]
    ranges: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if ranges and ranges[-1][1] + 1 == uid:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return tuple(ranges)


def esearch(
    request: Request,
    numbers: list[int],
    returns: tuple[str, ...],
    modseqs: list[int] | None,
    *,
    ordered: bool = False,
    partial: tuple[int, int] | None = None,
) -> bytes:
    """The ESEARCH response (RFC 4731). `numbers` ascend; `modseqs` are theirs when the
    search had a MODSEQ key, and then the response ends with the highest MODSEQ of the
    messages it reports (RFC 7162 §3.1.5): MIN's or MAX's alone, PARTIAL's, or all of them for
    ALL and COUNT. `ordered`: `numbers` are in a SORT's order (ESORT, RFC 5267 §3), which MIN,
    MAX, ALL and PARTIAL keep: MIN is the first, MAX the last, ALL lists them in that order.
    `partial`: the positions RETURN (PARTIAL lo:hi) asks for (RFC 5267 §4.4). UPDATE adds
    nothing here: RETURN (UPDATE) alone answers the TAG only."""
    wanted = set(returns) or {"ALL"}
    parts = [f'(TAG "{request.tag}")'.encode()]
    if request.uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(b"MIN %d" % (numbers[0] if ordered else min(numbers)))
        if "MAX" in wanted:
            parts.append(b"MAX %d" % (numbers[-1] if ordered else max(numbers)))
        if "ALL" in wanted:
            parts.append(b"ALL " + uid_set(numbers if ordered else sorted(numbers)))
    if partial is not None:
        lo, hi = partial
        window = numbers[lo - 1 : hi]  # SEARCH's numbers ascend, SORT's are in its order
        shown = uid_set(window) if window else b"NIL"
        parts.append(b"PARTIAL (%d:%d %s)" % (lo, hi, shown))
    if "COUNT" in wanted:
        parts.append(b"COUNT %d" % len(numbers))
    if modseqs and wanted & {"MIN", "MAX", "ALL", "COUNT", "PARTIAL"}:
        if wanted & {"ALL", "COUNT"}:
            reported = modseqs
        else:
            reported = [modseqs[0]] if "MIN" in wanted else []
            reported += [modseqs[-1]] if "MAX" in wanted else []
            if partial is not None:
                reported += modseqs[partial[0] - 1 : partial[1]]
        if reported:
            parts.append(b"MODSEQ %d" % max(reported))
    return b"ESEARCH " + b" ".join(parts)
