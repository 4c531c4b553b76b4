"""The values a parsed IMAP command carries: frozen dataclasses that the grammar (commands.py,
search.py) builds and the command handlers read. No I/O.

A SEARCH program is a tree of the keys below (RFC 3501 §6.4.4, RFC 7162 §3.1.5), which
:mod:`mailgate.imap.matching` evaluates against one message at a time:

- ``All()`` — every message (ALL).
- ``And(keys)`` — all of ``keys`` (a list of keys, a parenthesised list); at least two keys,
  never directly nested in another ``And`` (the parser flattens).
- ``Or(keys)`` — any of ``keys`` (OR); at least two keys. ``OR OR a b c`` is flattened into
  one ``Or((a, b, c))`` so that long OR chains stay shallow.
- ``Not(key)`` — NOT.
- ``FlagKey(flag, present)`` — ANSWERED/DELETED/DRAFT/FLAGGED/SEEN and their UN- forms,
  KEYWORD/UNKEYWORD, RECENT (``\\Recent`` present) and OLD (``\\Recent`` absent). NEW is
  ``And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))``.
- ``HeaderKey(field, value)`` — HEADER, and FROM/TO/CC/BCC/SUBJECT; ``field`` is lower-case.
- ``BodyKey(value)``, ``TextKey(value)`` — BODY, TEXT.
- ``DateKey(field, op, date)`` — BEFORE/ON/SINCE (``field="internal"``),
  SENTBEFORE/SENTON/SENTSINCE (``field="sent"``) and SAVEDBEFORE/SAVEDON/SAVEDSINCE
  (``field="saved"``, RFC 8514); ``op`` is "before", "on" or "since".
- ``AgeKey(op, seconds)`` — OLDER and YOUNGER (RFC 5032 WITHIN).
- ``SizeKey(op, size)`` — LARGER (``op="larger"``) and SMALLER (``op="smaller"``).
- ``SeqKey(sequence)``, ``UidKey(sequence)`` — a bare sequence set, and UID; either may be
  RFC 5182's ``$`` (the saved result), which the server replaces before matching.
- ``ModSeqKey(modseq)`` — MODSEQ (RFC 7162); the optional entry name and type are ignored.

The tree depth is bounded by the parser (``search.MAX_SEARCH_DEPTH``), so recursive walks of
it cannot exhaust the stack.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal


class ParseError(Exception):
    """A malformed command.

    ``tag`` is the command's tag when it could be read (answer ``<tag> BAD ...``), otherwise
    None (answer ``* BAD ...``). ``message`` is short fixed text, never client bytes.
    ``code`` is a response code when one applies (``"BADCHARSET"``, which RFC 3501 §6.4.4
    answers with a tagged NO rather than BAD). ``saving``: the command asked for RETURN (SAVE)
    before it went wrong, so the saved result becomes the empty set (RFC 5182 §2.4).
    """

    def __init__(self, message: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.code = code
        self.saving = False


class InvalidMailboxName(ParseError):
    """A mailbox name the grammar allows (RFC 3501's astring) that is not valid modified UTF-7
    (or UTF-8). No such mailbox can exist or be made, so the command answers NO, not BAD: a
    BAD on legal input makes strict clients give up (Dovecot answers NO as well). ``code`` is
    set by parse_request for the command (NONEXISTENT, or CANNOT when creating)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What a session has enabled that changes how its commands read (ENABLE, RFC 5161).

    ``utf8``: mailbox names are UTF-8, not modified UTF-7, a quoted string with 8-bit bytes
    must be valid UTF-8 (RFC 6855 §3; IMAP4rev2 names mailboxes in UTF-8 too, RFC 9051 §5.1),
    and APPEND and CATENATE take RFC 6855 §4's ``UTF8 (~{n})``. ``utf8_accept``: UTF8=ACCEPT
    itself was enabled, which bans SEARCH's CHARSET and any charset but UTF-8 in SORT and
    THREAD (RFC 6855 §3 and its errata 4029).
    ``rev2``: IMAP4rev2 (RFC 9051), which has no \\Recent: no RECENT, NEW or OLD search keys,
    no RECENT status item.
    """

    utf8: bool = False
    utf8_accept: bool = False
    rev2: bool = False


REV1 = Dialect()


@functools.cache
def dialect(utf8_accept: bool, rev2: bool) -> Dialect:
    """The dialect of a session with these extensions enabled (one shared value each)."""
    return Dialect(utf8=utf8_accept or rev2, utf8_accept=utf8_accept, rev2=rev2)


_SCAN_RANGES = 8


@dataclass(frozen=True, slots=True)
class SeqRange:
    """``start:end`` as given (``3:1`` is kept); ``*`` is None; a single number n is n:n."""

    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """RFC 3501 sequence-set, or RFC 5182's ``$`` (``saved``, no ranges): the UIDs the last
    ``SEARCH RETURN (SAVE)`` saved, which only the session can resolve."""

    ranges: tuple[SeqRange, ...]
    saved: bool = False
    # contains() on a large set bisects its resolved form, built once per ``largest``:
    # (largest, lows, highs). Not part of the value (no init, eq, hash or repr).
    _index: tuple[int, tuple[int, ...], tuple[int, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def resolve(self, largest: int) -> tuple[tuple[int, int], ...]:
        """Sorted, merged, inclusive ``(low, high)`` ranges with ``*`` read as ``largest``.

        RFC 3501 §9 (seq-range): ``3:1`` is ``1:3``, and ``n:*`` with n > largest is
        ``largest:n``; so every range is simply normalised to (min, max). Values are >= 1:
        with an empty mailbox (largest == 0) a range reaching down to ``*`` is cut at 1, and
        ``*`` alone resolves to nothing.
        """
        spans: list[tuple[int, int]] = []
        for r in self.ranges:
            a = largest if r.start is None else r.start
            b = largest if r.end is None else r.end
            low, high = (a, b) if a <= b else (b, a)
            low = max(low, 1)
            if high >= low:
                spans.append((low, high))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for low, high in spans:
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        return tuple(merged)

    def contains(self, value: int, largest: int) -> bool:
        """Whether ``value`` is in the set, with ``*`` read as ``largest``.

        SEARCH calls this once per message: small sets are scanned, large ones (a client's
        list of thousands of UIDs) are resolved once and bisected.
        """
        if value < 1:
            return False
        if len(self.ranges) <= _SCAN_RANGES:
            for r in self.ranges:
                a = largest if r.start is None else r.start
                b = largest if r.end is None else r.end
                if a <= value <= b or b <= value <= a:
                    return True
            return False
        index = self._index
        if index is None or index[0] != largest:
            spans = self.resolve(largest)
            index = (largest, tuple(lo for lo, _ in spans), tuple(hi for _, hi in spans))
            object.__setattr__(self, "_index", index)  # a cache, not a change of value
        i = bisect.bisect_right(index[1], value) - 1
        return i >= 0 and value <= index[2][i]


@dataclass(frozen=True, slots=True)
class Section:
    """A FETCH body section: ``BODY[1.2.HEADER.FIELDS (FROM TO)]``.

    ``part`` are the part numbers (each >= 1); ``specifier`` is "", "HEADER", "HEADER.FIELDS",
    "HEADER.FIELDS.NOT", "TEXT" or "MIME"; ``fields`` are upper-cased header field names.
    """

    part: tuple[int, ...] = ()
    specifier: str = ""
    fields: tuple[str, ...] = ()

    def render(self) -> str:
        """The text between the brackets, as echoed in the FETCH response."""
        out = ".".join(str(n) for n in self.part)
        if self.specifier:
            out = f"{out}.{self.specifier}" if out else self.specifier
        if self.fields:
            out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One FETCH data item.

    ``name`` is one of UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY RFC822
    RFC822.HEADER RFC822.TEXT MODSEQ EMAILID THREADID SAVEDATE PREVIEW BINARY BINARY.SIZE.
    ``BODY`` without a section is the body structure; ``BODY[...]``/``BODY.PEEK[...]`` are
    ``BODY`` with a section (``peek`` tells them apart); ``BINARY`` likewise. ``partial`` is
    ``<start.length>``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> bytes:
        """The label the response echoes: PEEK and the partial length are never echoed
        (RFC 3501 §7.4.2: ``BODY[<section>]<<origin octet>>``)."""
        if self.section is None:
            return self.name.encode("ascii")
        out = f"{self.name}[{self.section.render()}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out.encode("ascii")

    @property
    def sets_seen(self) -> bool:
        """RFC 3501 §6.4.5: BODY[...], BINARY[...] (RFC 3516), RFC822 and RFC822.TEXT set
        \\Seen; the .PEEK forms, RFC822.HEADER and everything else do not."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name in ("BODY", "BINARY") and self.section is not None and not self.peek


# --------------------------------------------------------------------------------------------
# SEARCH keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    """ALL: matches every message."""


@dataclass(frozen=True, slots=True)
class And:
    """Every key must match (a list of keys; a parenthesised list)."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one key must match (OR, flattened to n-ary)."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A system flag (normalised capitalisation, e.g. ``\\Seen``) or keyword is (not) set."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """A header field contains ``value`` (case-insensitive); ``value == ""`` means "has it"."""

    field: str  # lower-case field name
    value: str


@dataclass(frozen=True, slots=True)
class BodyKey:
    """The body text contains ``value`` (case-insensitive)."""

    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """The header section or the body text contains ``value`` (case-insensitive)."""

    value: str


@dataclass(frozen=True, slots=True)
class DateKey:
    """Compare the internal date or the Date: header by calendar date only."""

    field: Literal["internal", "sent", "saved"]
    op: Literal["before", "on", "since"]
    date: date


@dataclass(frozen=True, slots=True)
class AgeKey:
    """RFC 5032: the internal date is more (``op="older"``) or at most (``"younger"``)
    ``seconds`` before the time of the search."""

    op: Literal["older", "younger"]
    seconds: int


@dataclass(frozen=True, slots=True)
class SizeKey:
    """RFC822.SIZE strictly larger / smaller than ``size``."""

    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SeqKey:
    """The message sequence number is in the set (``*`` is the largest sequence number)."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class UidKey:
    """The UID is in the set (``*`` is the largest UID in the mailbox)."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """RFC 7162 §3.1.5: the message's mod-sequence is equal to or greater than ``modseq``."""

    modseq: int


@dataclass(frozen=True, slots=True)
class ObjectIdKey:
    """RFC 8474 §6: the message's EMAILID (``kind`` "email") or THREADID ("thread") is
    ``value``."""

    kind: str
    value: str


SearchKey = (
    All
    | And
    | Or
    | Not
    | FlagKey
    | HeaderKey
    | BodyKey
    | TextKey
    | DateKey
    | AgeKey
    | SizeKey
    | SeqKey
    | UidKey
    | ModSeqKey
    | ObjectIdKey
)

# --------------------------------------------------------------------------------------------
# Command arguments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    user: bytes
    password: bytes


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``initial_response`` is the raw SASL-IR base64 text (RFC 4959); ``b"="`` is empty."""

    mechanism: str
    initial_response: bytes | None


@dataclass(frozen=True, slots=True)
class MailboxArg:
    """CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Qresync:
    """SELECT's QRESYNC parameter (RFC 7162 §3.2.5): what the client last knew of the mailbox.
    Its seq-match-data is checked for syntax only: the server answers from its own records."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT and EXAMINE; ``(CONDSTORE)`` per RFC 7162 §3.1.8, ``(QRESYNC (...))`` §3.2.5."""

    mailbox: str
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST with RFC 5258 selection/return options; plain LIST has empty option sets.

    ``returns`` holds "SUBSCRIBED", "CHILDREN", "SPECIAL-USE" and "STATUS"; when "STATUS" is
    in it, ``status_items`` are the RFC 5819 items.
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lsub:
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatenatePart:
    """One part of RFC 4469's CATENATE: literal ``text``, or an IMAP ``url`` (as given; the
    server resolves it and answers NO [BADURL] where it cannot)."""

    text: bytes | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: its literal ``data``, or with CATENATE (RFC 4469) the parts
    it is made of (``data`` is then empty)."""

    flags: tuple[str, ...]
    date: datetime | None
    data: bytes
    catenate: tuple[CatenatePart, ...] | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND, one message or several (MULTIAPPEND, RFC 3502)."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH; ``charset`` is "UTF-8"/"US-ASCII" or None; ``returns`` is the ESEARCH RETURN
    list (RFC 4731; ``RETURN ()`` means ``("ALL",)``), None for a classic SEARCH; ``partial``
    the positions RETURN (PARTIAL lo:hi) asks for, lo <= hi (RFC 5267 §4.4)."""

    charset: str | None
    key: SearchKey
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES", "REFS")


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str  # one of SORT_KEYS
    reverse: bool


@dataclass(frozen=True, slots=True)
class Sort:
    """SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO); ``returns`` is the ESORT RETURN list
    (RFC 5267 §3), None for a classic SORT; ``partial`` as for Search."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """CANCELUPDATE (RFC 5267 §4.3.2): the tags of the live searches to end."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Thread:
    """THREAD (RFC 5256): ``algorithm`` is one of THREAD_ALGORITHMS."""

    algorithm: str
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Fetch:
    """FETCH. Macros are expanded; for UID FETCH a UID item is added when missing (RFC 3501
    §6.4.8), and with CHANGEDSINCE a MODSEQ item (RFC 7162 §3.1.4.1)."""

    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    changedsince: int | None = None
    vanished: bool = False  # RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED)


@dataclass(frozen=True, slots=True)
class StoreFlags:
    """STORE: the flags to set, add or remove; ``mode`` is "+", "-" or "" (replace)."""

    sequence: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class CopyMove:
    """COPY and MOVE (RFC 6851)."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """UID EXPUNGE (RFC 4315 §2.1)."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class Id:
    """ID (RFC 2971): None for NIL, else (field, value-or-None) pairs in the client's order."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuotaRoot:
    """GETQUOTA (RFC 9208 §4.1.1)."""

    root: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """SETQUOTA (RFC 9208 §4.1.3): resource names (upper-cased) and limits."""

    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS (RFC 4978): the mechanism, which the grammar allows to be DEFLATE only."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One event group of NOTIFY SET (RFC 5465 §3): a mailbox filter ("SELECTED",
    "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"), the
    names SUBTREE and MAILBOXES give, the events (canonical spelling; an unknown one as given;
    none for NONE) and MessageNew's fetch-att list (selected filters only)."""

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fetch: tuple[FetchItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify:
    """NOTIFY NONE (``groups`` None) or NOTIFY SET [STATUS] with its event groups."""

    groups: tuple[NotifyGroup, ...] | None
    status: bool = False


Arguments = (
    Login
    | Authenticate
    | MailboxArg
    | Select
    | Rename
    | List
    | Lsub
    | Status
    | Append
    | Search
    | Sort
    | CancelUpdate
    | Thread
    | Fetch
    | StoreFlags
    | CopyMove
    | UidExpunge
    | Id
    | Enable
    | QuotaRoot
    | SetQuota
    | Compress
    | Notify
    | None
)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed command. ``UID FETCH`` is ``name="FETCH", uid=True``."""

    tag: str
    name: str
    uid: bool
    args: Arguments
