"""The SEARCH grammar (RFC 3501 §6.4.4, RFC 4731 ESEARCH, RFC 7162 §3.1.5 MODSEQ, RFC 5182
SEARCHRES, RFC 5032 WITHIN, RFC 8514 SAVEDATE): the
command's RETURN options and CHARSET, and its search program as a tree of keys (values.py).
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Iterator
from typing import Literal

from mailgate.imap.syntax.reader import (
    ATOM,
    DOLLAR,
    DQUOTE,
    LPAREN,
    MAX_MODSEQ,
    RPAREN,
    STAR,
    Reader,
    dedupe,
)
from mailgate.imap.syntax.values import (
    AgeKey,
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
    ParseError,
    Search,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
    UidKey,
)

# RFC 8474 §4: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}(?![A-Za-z0-9_-])")
MAX_SEARCH_DEPTH = 100  # nesting bound for SEARCH programs (parentheses and key tree)
# What a SEARCH costs grows with its keys times the mailbox's messages: the command size limit
# already bounds them, this bounds them for every size limit an operator may choose.
MAX_SEARCH_KEYS = 256


def _text(raw: bytes) -> str:
    """Search strings: UTF-8 (US-ASCII is a subset)."""
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("String is not valid UTF-8") from None


_SEARCH_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "PARTIAL"})
_COLON = 0x3A

# Options that cannot be asked together (as Dovecot): PARTIAL is a window on what ALL lists
# whole; SAVE keeps one result, UPDATE a live one, and a window kept live or saved is not
# defined by RFC 5267 or RFC 5182.
_CONFLICTS = (("PARTIAL", "ALL"), ("PARTIAL", "SAVE"), ("PARTIAL", "UPDATE"), ("UPDATE", "SAVE"))


def _partial_range(r: Reader) -> tuple[int, int]:
    # RFC 5267 §4.4: partial-range = nz-number ":" nz-number; "*" is not a position.
    first = r.number(nonzero=True)
    r.expect(_COLON, '":" in the PARTIAL range')
    last = r.number(nonzero=True)
    return (min(first, last), max(first, last))


def return_options(r: Reader) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """The list after RETURN (RFC 4731 §3, RFC 5267 §3 and §4): MIN, MAX, ALL, COUNT, SAVE,
    UPDATE, and PARTIAL with its range of positions (returned beside the names)."""
    partial: list[tuple[int, int]] = []

    def option(r: Reader) -> str:
        name = r.word()
        if name not in _SEARCH_RETURNS:
            raise ParseError("Unknown RETURN option")
        if name == "PARTIAL":
            if partial:
                raise ParseError("PARTIAL given twice")
            r.sp()
            partial.append(_partial_range(r))
        return name

    # RFC 4731 §3.1: an empty RETURN list means ALL.
    options = dedupe(r.paren_list(option, empty_ok=True)) or ("ALL",)
    for a, b in _CONFLICTS:
        if a in options and b in options:
            raise ParseError(f"RETURN options {a} and {b} conflict")
    return options, (partial[0] if partial else None)


def charset(r: Reader, raw: bytes) -> str:
    """A charset name we search in, upper-cased; another answers NO [BADCHARSET]. After ENABLE
    UTF8=ACCEPT strings are UTF-8, and a command that says otherwise is BAD (RFC 6855 §3,
    errata 4029)."""
    name = bytes(raw).decode("ascii", "replace").upper()
    if r.dialect.utf8_accept and name != "UTF-8":
        raise ParseError("Only UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855)")
    if name not in ("UTF-8", "US-ASCII"):
        # RFC 3501 §6.4.4: an unsupported charset is NO [BADCHARSET], not BAD.
        raise ParseError("Unsupported charset", code="BADCHARSET")
    return name


def parse_search(r: Reader, uid: bool) -> Search:
    # RFC 4731 §3: search = "SEARCH" [search-return-opts] SP search-criteria;
    # search-criteria = ["CHARSET" SP astring SP] search-key *(SP search-key)
    r.sp()
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    name: str | None = None
    mark = r.pos
    word = r.match(ATOM)
    if word is not None and word.upper() == b"RETURN":
        r.sp()
        returns, partial = return_options(r)
    with saving(returns):
        if returns is not None:
            r.sp()
            mark = r.pos
            word = r.match(ATOM)
        if word is not None and word.upper() == b"CHARSET":
            if r.dialect.utf8_accept:
                raise ParseError("No CHARSET after ENABLE UTF8=ACCEPT: strings are UTF-8")
            r.sp()
            name = charset(r, r.astring())
            r.sp()
        else:
            r.pos = mark
        key = search_program(r)
        r.finish()
    return Search(name, key, returns, partial)


@contextlib.contextmanager
def saving(returns: tuple[str, ...] | None) -> Iterator[None]:
    """Marks a ParseError raised after RETURN (SAVE) was read, so the session empties its
    saved result as for any failed SAVE (RFC 5182 §2.4)."""
    try:
        yield
    except ParseError as exc:
        exc.saving = returns is not None and "SAVE" in returns
        raise


# The search program is parsed without recursion, on an explicit stack of frames, so no input
# can exhaust the Python stack; OR chains are flattened as they are built ("OR OR OR a b c d"
# -> Or((a, b, c, d))) and lists are flattened into their parent And, so the depth check below
# only rejects genuinely deep trees. Every key travels with its tree depth (a leaf is 1).

_ROOT, _PAREN, _NOT, _OR = range(4)


class _Frame:
    __slots__ = ("depth", "keys", "kind", "operands")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.keys: list[SearchKey] = []  # _ROOT and _PAREN: the (And-flattened) list
        self.depth = 0  # deepest key in ``keys``
        self.operands: list[tuple[SearchKey | _OrRun, int]] = []  # _OR

    def add(self, key: SearchKey, depth: int) -> None:
        if isinstance(key, And):
            self.keys.extend(key.keys)
            depth -= 1
        else:
            self.keys.append(key)
        self.depth = max(self.depth, depth)

    def close(self) -> tuple[SearchKey, int]:
        if len(self.keys) == 1:
            return self.keys[0], self.depth
        return And(tuple(self.keys)), _checked_depth(self.depth + 1)


class _OrRun:
    """An OR chain being built; a deque so both left- and right-nested chains grow in O(1)."""

    __slots__ = ("depth", "keys")

    def __init__(self, keys: deque[SearchKey], depth: int) -> None:
        self.keys = keys
        self.depth = depth


def _checked_depth(depth: int) -> int:
    if depth > MAX_SEARCH_DEPTH:
        raise ParseError("Search program nested too deeply")
    return depth


def _as_run(key: SearchKey | _OrRun, depth: int) -> _OrRun:
    if isinstance(key, _OrRun):
        return key
    if isinstance(key, Or):
        return _OrRun(deque(key.keys), depth)
    return _OrRun(deque((key,)), _checked_depth(depth + 1))


def _merge_or(a: SearchKey | _OrRun, da: int, b: SearchKey | _OrRun, db: int) -> _OrRun:
    left, right = _as_run(a, da), _as_run(b, db)
    depth = max(left.depth, right.depth)
    if len(left.keys) >= len(right.keys):
        left.keys.extend(right.keys)
        left.depth = depth
        return left
    right.keys.extendleft(reversed(left.keys))
    right.depth = depth
    return right


def _reduce(stack: list[_Frame], key: SearchKey | _OrRun, depth: int) -> None:
    """Hand a finished key to the frame on top of the stack, completing NOT/OR frames."""
    while True:
        frame = stack[-1]
        if frame.kind == _OR:
            frame.operands.append((key, depth))
            if len(frame.operands) < 2:
                return
            stack.pop()
            (a, da), (b, db) = frame.operands
            key = _merge_or(a, da, b, db)
            depth = key.depth
            continue
        if isinstance(key, _OrRun):
            key = Or(tuple(key.keys))
        if frame.kind == _NOT:
            stack.pop()
            key, depth = Not(key), _checked_depth(depth + 1)
            continue
        frame.add(key, depth)
        return


def search_program(r: Reader) -> SearchKey:
    """search-key *(SP search-key), as one key (an And when there are several)."""
    stack = [_Frame(_ROOT)]
    parens = 0
    keys = 0
    while True:
        frame = stack[-1]
        if frame.kind == _ROOT and frame.keys:
            if not r.more():
                break
        elif frame.kind == _PAREN and frame.keys:
            if r.peek() == RPAREN:
                r.pos += 1
                parens -= 1
                stack.pop()
                key, depth = frame.close()
                _reduce(stack, key, depth)
                continue
            if r.at_end():
                raise ParseError("Missing )")
            r.sp()
        elif frame.kind in (_NOT, _OR):
            r.sp()
        c = r.peek()
        if c == LPAREN:
            if parens >= MAX_SEARCH_DEPTH:
                raise ParseError("Search program nested too deeply")
            r.pos += 1
            parens += 1
            stack.append(_Frame(_PAREN))
            continue
        keys += 1
        if keys > MAX_SEARCH_KEYS:
            raise ParseError(f"Search programs are limited to {MAX_SEARCH_KEYS} keys", code="LIMIT")
        if c in (STAR, DOLLAR) or 0x30 <= c <= 0x39:
            _reduce(stack, SeqKey(r.sequence_set()), 1)
            continue
        word = r.word()
        if word == "NOT":
            stack.append(_Frame(_NOT))
        elif word == "OR":
            stack.append(_Frame(_OR))
        else:
            key, depth = _search_key(r, word)
            _reduce(stack, key, depth)
    key, depth = stack[0].close()
    return key


_SEARCH_FLAGS = {
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True),
    "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True),
    "OLD": ("\\Recent", False),  # RFC 3501 §6.4.4: OLD is NOT RECENT
}
_SEARCH_HEADERS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
_DateField = Literal["internal", "sent", "saved"]
_SEARCH_DATES: dict[str, tuple[_DateField, Literal["before", "on", "since"]]] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
    # RFC 8514 §4.2: every message here has a save date.
    "SAVEDBEFORE": ("saved", "before"),
    "SAVEDON": ("saved", "on"),
    "SAVEDSINCE": ("saved", "since"),
}
# RFC 3501 §6.4.4: NEW is "RECENT UNSEEN".
_NEW = And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))
_RECENT_KEYS = frozenset({"RECENT", "NEW", "OLD"})


def _search_key(r: Reader, word: str) -> tuple[SearchKey, int]:
    """One search key other than NOT, OR, a list or a sequence set; ``word`` is consumed."""
    if word in ("ALL", "SAVEDATESUPPORTED"):
        # RFC 8514 §4.2: SAVEDATESUPPORTED matches all messages where save dates are kept (all).
        return All(), 1
    if word in _RECENT_KEYS and r.dialect.rev2:
        raise ParseError(f"IMAP4rev2 has no {word} search key: it has no \\Recent (RFC 9051)")
    if word == "NEW":
        return _NEW, 2
    flag = _SEARCH_FLAGS.get(word)
    if flag is not None:
        return FlagKey(*flag), 1
    header = _SEARCH_HEADERS.get(word)
    if header is not None:
        r.sp()
        return HeaderKey(header, _text(r.astring())), 1
    when = _SEARCH_DATES.get(word)
    if when is not None:
        r.sp()
        return DateKey(when[0], when[1], r.date()), 1
    if word in ("BODY", "TEXT"):
        r.sp()
        value = _text(r.astring())
        return (BodyKey(value) if word == "BODY" else TextKey(value)), 1
    if word == "HEADER":
        r.sp()
        field = _text(r.astring()).lower()
        if not field:
            raise ParseError("Empty header field name")
        r.sp()
        return HeaderKey(field, _text(r.astring())), 1
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return FlagKey(r.atom().decode("ascii"), word == "KEYWORD"), 1
    if word in ("LARGER", "SMALLER"):
        r.sp()
        # RFC 9051 §9 widens these to number64; 32-bit clients are a subset.
        op: Literal["larger", "smaller"] = "larger" if word == "LARGER" else "smaller"
        return SizeKey(op, r.number(maximum=MAX_MODSEQ)), 1
    if word in ("OLDER", "YOUNGER"):
        r.sp()
        # RFC 5032 §3: OLDER/YOUNGER SP nz-number (seconds).
        age: Literal["older", "younger"] = "older" if word == "OLDER" else "younger"
        return AgeKey(age, r.number(nonzero=True)), 1
    if word == "UID":
        r.sp()
        return UidKey(r.sequence_set()), 1
    if word == "MODSEQ":
        r.sp()
        # RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer;
        # the per-flag entry is accepted and ignored (we keep one mod-sequence per message).
        if r.peek() == DQUOTE:
            r.quoted()
            r.sp()
            if r.word() not in ("PRIV", "SHARED", "ALL"):
                raise ParseError("Invalid MODSEQ entry type")
            r.sp()
        return ModSeqKey(r.number(maximum=MAX_MODSEQ)), 1
    if word in ("EMAILID", "THREADID"):
        r.sp()
        objectid = r.match(OBJECTID)
        if objectid is None:
            raise ParseError(f"{word} needs an object id (RFC 8474)")
        return ObjectIdKey(word.removesuffix("ID").lower(), objectid.decode("ascii")), 1
    raise ParseError("Unknown search key")
