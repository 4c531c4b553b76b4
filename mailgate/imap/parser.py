"""Pure IMAP command parser: one framed command in, one typed :class:`Request` out.

The server does the framing. It reads lines and literals off the wire and hands over one
command as ``[line0, literal0, line1, literal1, ..., lineN]`` (lines without their CRLF;
every line but the last ends in a literal marker ``{n}``/``{n+}``). This module turns that
into frozen dataclasses and raises :class:`ParseError` (and nothing else, whatever the bytes)
for anything malformed. No I/O, no server state.

Grammar: RFC 3501 §9 plus LITERAL+ (RFC 7888), MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315),
ID (RFC 2971), ENABLE (RFC 5161), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
SPECIAL-USE (RFC 6154), ESEARCH (RFC 4731), CONDSTORE (RFC 7162), MOVE (RFC 6851),
BINARY (RFC 3516, FETCH only) and SASL-IR (RFC 4959).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal, TypeVar

from mailgate.imap.matching import (
    All,
    And,
    BodyKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
    UidKey,
)

__all__ = [
    "MAX_MODSEQ",
    "MAX_NUMBER",
    "MAX_SEARCH_DEPTH",
    "Append",
    "AppendMessage",
    "Arguments",
    "Authenticate",
    "CopyMove",
    "Enable",
    "Fetch",
    "FetchItem",
    "Id",
    "List",
    "Login",
    "Lsub",
    "MailboxArg",
    "ParseError",
    "Rename",
    "Request",
    "Search",
    "Section",
    "Select",
    "SeqRange",
    "SequenceSet",
    "Status",
    "Store",
    "UidExpunge",
    "decode_mailbox",
    "encode_mailbox",
    "parse_request",
    "parse_tag",
]

MAX_NUMBER = 0xFFFF_FFFF  # RFC 3501 §9: number and nz-number are unsigned 32-bit
MAX_MODSEQ = 2**63 - 1  # RFC 7162 §7: mod-sequence-value is at most 63 bits
MAX_SEARCH_DEPTH = 100  # nesting bound for SEARCH programs (parentheses and key tree)

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ParseError(Exception):
    """A malformed command.

    ``tag`` is the command's tag when it could be read (answer ``<tag> BAD ...``), otherwise
    None (answer ``* BAD ...``). ``message`` is short fixed text, never client bytes.
    ``code`` is a response code when one applies (``"BADCHARSET"``, which RFC 3501 §6.4.4
    answers with a tagged NO rather than BAD).
    """

    def __init__(self, message: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.code = code


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


_SCAN_RANGES = 8


@dataclass(frozen=True, slots=True)
class SeqRange:
    """``start:end`` as given (``3:1`` is kept); ``*`` is None; a single number n is n:n."""

    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """RFC 3501 sequence-set. ``saved`` is reserved for RFC 5182 ``$`` (rejected for now)."""

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
    RFC822.HEADER RFC822.TEXT MODSEQ BINARY BINARY.SIZE. ``BODY`` without a section is the
    body structure; ``BODY[...]``/``BODY.PEEK[...]`` are ``BODY`` with a section (``peek``
    tells them apart); ``BINARY`` likewise. ``partial`` is ``<start.length>``.
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
class AppendMessage:
    flags: tuple[str, ...]
    date: datetime | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND, one message or several (MULTIAPPEND, RFC 3502)."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH; ``charset`` is "UTF-8"/"US-ASCII" or None; ``returns`` is the ESEARCH RETURN
    list (RFC 4731; ``RETURN ()`` means ``("ALL",)``), None for a classic SEARCH."""

    charset: str | None
    key: SearchKey
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """FETCH. Macros are expanded; for UID FETCH a UID item is added when missing (RFC 3501
    §6.4.8), and with CHANGEDSINCE a MODSEQ item (RFC 7162 §3.1.4.1)."""

    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    changedsince: int | None = None
    vanished: bool = False  # RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED)


@dataclass(frozen=True, slots=True)
class Store:
    """STORE; ``mode`` is "+", "-" or "" (replace)."""

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
    | Fetch
    | Store
    | CopyMove
    | UidExpunge
    | Id
    | Enable
    | None
)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed command. ``UID FETCH`` is ``name="FETCH", uid=True``."""

    tag: str
    name: str
    uid: bool
    args: Arguments


# --------------------------------------------------------------------------------------------
# Mailbox names: modified UTF-7 (RFC 3501 §5.1.3)
# --------------------------------------------------------------------------------------------

_MB64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_MB64_VALUE = {c: i for i, c in enumerate(_MB64)}


def encode_mailbox(name: str) -> bytes:
    """``name`` in modified UTF-7, raw (the caller quotes it or sends it as a literal)."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode_mailbox(raw: bytes) -> str:
    """Decode a mailbox name from modified UTF-7; raises ParseError if it is not valid.

    Names with 8-bit bytes are taken as UTF-8 (what UTF8=ACCEPT clients send, RFC 6855, and
    what some clients send anyway) and are not modified-UTF-7 decoded.
    """
    if not raw.isascii():
        try:
            name = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("Invalid mailbox name") from None
        if any(_is_control(ch) for ch in name):
            raise ParseError("Invalid mailbox name")
        return name
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c < 0x20 or c > 0x7E:  # only printable US-ASCII stands for itself
            raise ParseError("Invalid mailbox name")
        if c != 0x26:  # "&"
            j = i + 1
            while j < n and raw[j] != 0x26 and 0x20 <= raw[j] <= 0x7E:
                j += 1
            out.append(bytes(raw[i:j]).decode("ascii"))
            i = j
            continue
        end = raw.find(b"-", i + 1)
        if end < 0:
            raise ParseError("Invalid mailbox name")
        if end == i + 1:  # "&-" is "&"
            out.append("&")
        else:
            out.append(_decode_mb64(bytes(raw[i + 1 : end])))
        i = end + 1
    return "".join(out)


def _decode_mb64(chunk: bytes) -> str:
    if any(c not in _MB64_VALUE for c in chunk):
        raise ParseError("Invalid mailbox name")
    # The bits left over after the last whole octet must be zero padding (fewer than 6),
    # and the octets must make whole UTF-16 code units.
    bits = 6 * len(chunk)
    leftover = bits % 8
    if leftover >= 6 or (bits // 8) % 2 or _MB64_VALUE[chunk[-1]] & ((1 << leftover) - 1):
        raise ParseError("Invalid mailbox name")
    std = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
    try:
        text = base64.b64decode(std, validate=True).decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise ParseError("Invalid mailbox name") from None
    # RFC 3501 §5.1.3: printable US-ASCII must represent itself, never be base64-encoded.
    if any(" " <= ch <= "~" or _is_control(ch) for ch in text):
        raise ParseError("Invalid mailbox name")
    return text


def _is_control(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f"


def _mailbox_name(raw: bytes) -> str:
    name = decode_mailbox(raw)
    # RFC 3501 §5.1: INBOX is case-insensitive; every other name is case-sensitive.
    if name.isascii() and name.upper() == "INBOX":
        return "INBOX"
    return name


# --------------------------------------------------------------------------------------------
# The reader: a cursor over the lines and literals of one command
# --------------------------------------------------------------------------------------------

_SP, _DQUOTE, _LPAREN, _RPAREN = 0x20, 0x22, 0x28, 0x29
_STAR, _LBRACE, _TILDE, _LBRACKET, _RBRACKET = 0x2A, 0x7B, 0x7E, 0x5B, 0x5D
_BACKSLASH, _DOLLAR, _LT, _GT, _DOT, _COLON, _COMMA = 0x5C, 0x24, 0x3C, 0x3E, 0x2E, 0x3A, 0x2C

# RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE
# "\" "]"; ASTRING-CHAR adds "]"; list-char adds "%" "*" "]"; a tag is ASTRING-CHARs but "+".
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_LIST_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_DIGITS = re.compile(rb"[0-9]+")
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ are escapes. 8-bit bytes are tolerated
# (UTF-8, RFC 6855 §3); NUL, CR and LF never appear in a quoted string.
_QUOTED = re.compile(rb'"((?:[^"\\\x00\r\n]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,10})(\+?)\}")


class _Reader:
    __slots__ = ("_chunks", "_ci", "_end", "_last", "line", "pos")

    def __init__(self, chunks: Sequence[bytes]) -> None:
        if len(chunks) % 2 == 0:
            raise ParseError("Malformed command framing")
        self._chunks = chunks
        self._ci = 0
        self._last = len(chunks) - 1
        self.line = chunks[0]
        self.pos = 0
        # Trailing spaces after a complete command are tolerated; knowing where the last
        # line's content ends keeps at_end() O(1).
        self._end = len(chunks[-1].rstrip(b" "))

    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self._ci == self._last and self.pos >= self._end

    def fail(self, expected: str) -> ParseError:
        if self.at_end():
            return ParseError("Missing argument")
        return ParseError(f"Expected {expected}")

    def expect(self, byte: int, expected: str) -> None:
        if self.peek() != byte:
            raise self.fail(expected)
        self.pos += 1

    def sp(self) -> None:
        self.expect(_SP, "a space")

    def more(self) -> bool:
        """Consume one SP if something other than trailing spaces follows it."""
        if self.peek() == _SP and not self.at_end():
            self.pos += 1
            return True
        return False

    def finish(self) -> None:
        if not self.at_end():
            raise ParseError("Unexpected characters at end of command")

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        m = pattern.match(self.line, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def atom(self) -> bytes:
        token = self.match(_ATOM)
        if token is None:
            raise self.fail("an atom")
        return token

    def word(self) -> str:
        """An atom, upper-cased: command names, option names, search keys."""
        return self.atom().decode("ascii").upper()

    def number(self, *, nonzero: bool = False, maximum: int = MAX_NUMBER) -> int:
        digits = self.match(_DIGITS)
        if digits is None:
            raise self.fail("a number")
        if nonzero and digits[0] == 0x30:  # nz-number = digit-nz *DIGIT
            raise ParseError("Expected a non-zero number")
        if len(digits) > 19 or int(digits) > maximum:
            raise ParseError("Number out of range")
        return int(digits)

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.line, self.pos)
        if m is None:
            raise ParseError("Invalid quoted string")
        self.pos = m.end()
        return _UNESCAPE.sub(rb"\1", m.group(1))

    def literal(self, *, allow_nul: bool = False) -> bytes:
        m = _LITERAL.fullmatch(self.line, self.pos)
        if m is None:
            raise ParseError("Invalid literal")
        if m.group(1):
            raise ParseError("Binary literals are not supported")
        if self._ci >= self._last:
            raise ParseError("Missing literal data")
        data = self._chunks[self._ci + 1]
        if len(data) != int(m.group(2)):
            raise ParseError("Literal size mismatch")
        # RFC 3501 §9: literal = "{" number "}" CRLF *CHAR8, and CHAR8 excludes NUL (APPEND
        # data is exempt, see _append).
        if not allow_nul and b"\x00" in data:
            raise ParseError("NUL in literal")
        self._ci += 2
        self.line = self._chunks[self._ci]
        self.pos = 0
        return data

    def is_literal(self) -> bool:
        c = self.peek()
        return c == _LBRACE or (c == _TILDE and self.line.startswith(b"~{", self.pos))

    def string(self) -> bytes:
        if self.peek() == _DQUOTE:
            return self.quoted()
        if self.is_literal():
            return self.literal()
        raise self.fail("a string")

    def astring(self) -> bytes:
        if self.peek() == _DQUOTE:
            return self.quoted()
        if self.is_literal():
            return self.literal()
        token = self.match(_ASTRING_ATOM)
        if token is None:
            raise self.fail("a string")
        return token

    def nstring(self) -> bytes | None:
        if self.peek() == _DQUOTE or self.is_literal():
            return self.string()
        token = self.match(_ATOM)
        if token is None:
            raise self.fail("a string or NIL")
        if token.upper() != b"NIL":
            raise ParseError("Expected a string or NIL")
        return None

    def mailbox(self) -> str:
        return _mailbox_name(self.astring())

    def list_mailbox(self) -> str:
        # RFC 3501 §9: list-mailbox = 1*list-char / string ("%" and "*" may go unquoted).
        if self.peek() == _DQUOTE or self.is_literal():
            return _mailbox_name(self.string())
        token = self.match(_LIST_ATOM)
        if token is None:
            raise self.fail("a mailbox pattern")
        return _mailbox_name(token)

    def sequence_set(self) -> SequenceSet:
        if self.peek() == _DOLLAR:
            raise ParseError("Saved search results ($) are not supported")
        ranges: list[SeqRange] = []
        while True:
            start = self._seq_number()
            end = start
            if self.peek() == _COLON:
                self.pos += 1
                end = self._seq_number()
            ranges.append(SeqRange(start, end))
            if self.peek() != _COMMA:
                return SequenceSet(tuple(ranges))
            self.pos += 1

    def _seq_number(self) -> int | None:
        if self.peek() == _STAR:
            self.pos += 1
            return None
        if not 0x30 <= self.peek() <= 0x39:
            raise self.fail("a sequence set")
        return self.number(nonzero=True)

    def paren_list(self, item: Callable[[_Reader], _T], *, empty_ok: bool) -> list[_T]:
        """``"(" item *(SP item) ")"``, or ``"(" ")"`` when ``empty_ok``."""
        self.expect(_LPAREN, "(")
        items: list[_T] = []
        if self.peek() == _RPAREN and empty_ok:
            self.pos += 1
            return items
        items.append(item(self))
        while self.peek() == _SP:
            self.pos += 1
            items.append(item(self))
        self.expect(_RPAREN, ")")
        return items


def _dedupe(items: Iterable[_T]) -> tuple[_T, ...]:
    """Drop repeats, keep the client's order (a response must not repeat an item)."""
    return tuple(dict.fromkeys(items))


def _word_item(r: _Reader) -> str:
    return r.word()


# --------------------------------------------------------------------------------------------
# Shared argument grammar
# --------------------------------------------------------------------------------------------

# RFC 3501 §2.3.2: system flags are case-insensitive; keep the canonical spelling.
_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}


def _flag(r: _Reader) -> str:
    if r.peek() == _BACKSLASH:
        r.pos += 1
        name = "\\" + r.atom().decode("ascii")
        canonical = _SYSTEM_FLAGS.get(name.upper())
        if canonical is not None:
            return canonical
        if name.upper() == "\\RECENT":  # RFC 3501 §2.3.2: \Recent cannot be altered
            raise ParseError("\\Recent cannot be set")
        raise ParseError("Unknown system flag")
    return r.atom().decode("ascii")  # a keyword: an atom, case kept


def _flag_list(r: _Reader) -> tuple[str, ...]:
    return _dedupe(r.paren_list(_flag, empty_ok=True))


_MONTHS = {
    b"JAN": 1, b"FEB": 2, b"MAR": 3, b"APR": 4, b"MAY": 5, b"JUN": 6,
    b"JUL": 7, b"AUG": 8, b"SEP": 9, b"OCT": 10, b"NOV": 11, b"DEC": 12,
}  # fmt: skip
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
# RFC 3501 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day as 2DIGIT or SP DIGIT (a bare
# single digit is tolerated).
_DATE_TIME = re.compile(
    rb"( ?[0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})"
    rb" ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)


def _calendar_date(m: re.Match[bytes]) -> date:
    month = _MONTHS.get(m.group(2).upper())
    if month is None:
        raise ParseError("Invalid date")
    try:
        return date(int(m.group(3)), month, int(m.group(1)))
    except ValueError:
        raise ParseError("Invalid date") from None


def _search_date(r: _Reader) -> date:
    # RFC 3501 §9: date = date-text / DQUOTE date-text DQUOTE
    if r.peek() == _DQUOTE:
        m = _DATE.fullmatch(r.quoted())
    else:
        m = _DATE.match(r.line, r.pos)
        if m is not None:
            r.pos = m.end()
    if m is None:
        raise ParseError("Invalid date")
    return _calendar_date(m)


def _date_time(r: _Reader) -> datetime:
    m = _DATE_TIME.fullmatch(r.quoted())
    if m is None:
        raise ParseError("Invalid date-time")
    day = _calendar_date(m)
    hour, minute, second, zh, zm = (int(m.group(i)) for i in (4, 5, 6, 8, 9))
    if zh > 23 or zm > 59:
        raise ParseError("Invalid date-time")
    offset = timedelta(hours=zh, minutes=zm)
    try:
        return datetime(
            day.year,
            day.month,
            day.day,
            hour,
            minute,
            second,
            tzinfo=timezone(-offset if m.group(7) == b"-" else offset),
        )
    except ValueError:
        raise ParseError("Invalid date-time") from None


_STATUS_ITEMS = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED"}
)


def _status_item(r: _Reader) -> str:
    item = r.word()
    if item not in _STATUS_ITEMS:
        raise ParseError("Unknown STATUS item")
    return item


def _status_items(r: _Reader) -> tuple[str, ...]:
    return _dedupe(r.paren_list(_status_item, empty_ok=False))


def _text(raw: bytes) -> str:
    """Search strings: UTF-8 (US-ASCII is a subset)."""
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("String is not valid UTF-8") from None


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _no_args(r: _Reader, uid: bool) -> None:
    r.finish()


def _login(r: _Reader, uid: bool) -> Login:
    r.sp()
    user = r.astring()
    r.sp()
    password = r.astring()
    r.finish()
    return Login(bytes(user), bytes(password))


# RFC 4959: initial-response = base64 / "="
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _authenticate(r: _Reader, uid: bool) -> Authenticate:
    r.sp()
    mechanism = r.word()
    response: bytes | None = None
    if r.more():
        token = r.atom()
        if token != b"=" and not _BASE64.fullmatch(token):
            raise ParseError("Invalid initial response")
        response = bytes(token)
    r.finish()
    return Authenticate(mechanism, response)


def _select(r: _Reader, uid: bool) -> Select:
    r.sp()
    mailbox = r.mailbox()
    condstore = False
    qresync: Qresync | None = None
    if r.more():
        # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 defines CONDSTORE, §3.2.5 QRESYNC.
        # Each name is judged as soon as it is read: QRESYNC's value has a grammar of its own.
        r.expect(_LPAREN, "(")
        while True:
            param = r.word()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                r.sp()
                qresync = _qresync(r)
            else:
                raise ParseError("Unknown SELECT parameter")
            if r.peek() != _SP:
                break
            r.pos += 1
        r.expect(_RPAREN, ")")
    r.finish()
    return Select(mailbox, condstore, qresync)


def _qresync(r: _Reader) -> Qresync:
    """ "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"."""
    r.expect(_LPAREN, "(")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.number(nonzero=True, maximum=MAX_MODSEQ)
    known: SequenceSet | None = None
    if r.peek() == _SP:
        r.pos += 1
        if r.peek() != _LPAREN:
            known = _uids_without_star(r)
            if r.peek() == _SP:
                r.pos += 1
                _seq_match_data(r)
        else:
            _seq_match_data(r)
    r.expect(_RPAREN, ")")
    return Qresync(uidvalidity, modseq, known)


def _uids_without_star(r: _Reader) -> SequenceSet:
    uids = r.sequence_set()
    if any(part.start is None or part.end is None for part in uids.ranges):
        raise ParseError("Known UIDs cannot contain *")
    return uids


def _seq_match_data(r: _Reader) -> None:
    """ "(" known-sequence-set SP known-uid-set ")", both without "*"."""
    r.expect(_LPAREN, "(")
    _uids_without_star(r)
    r.sp()
    _uids_without_star(r)
    r.expect(_RPAREN, ")")


def _mailbox_command(r: _Reader, uid: bool) -> MailboxArg:
    r.sp()
    mailbox = r.mailbox()
    r.finish()
    return MailboxArg(mailbox)


def _rename(r: _Reader, uid: bool) -> Rename:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = r.mailbox()
    r.finish()
    return Rename(old, new)


_LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURNS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})


def _list(r: _Reader, uid: bool) -> List:
    r.sp()
    selection: set[str] = set()
    if r.peek() == _LPAREN:
        for option in r.paren_list(_word_item, empty_ok=True):
            # RFC 5258 §3: unknown selection options are an error (tagged BAD).
            if option not in _LIST_SELECTION:
                raise ParseError("Unknown LIST selection option")
            selection.add(option)
        # RFC 5258 §3.1: RECURSIVEMATCH alone (or only with REMOTE) is a BAD.
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
        r.sp()
    reference = r.mailbox()
    r.sp()
    if r.peek() == _LPAREN:  # RFC 5258 §3: several patterns
        patterns = tuple(r.paren_list(_Reader.list_mailbox, empty_ok=False))
    else:
        patterns = (r.list_mailbox(),)
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if r.more():
        if r.word() != "RETURN":
            raise ParseError("Expected RETURN")
        r.sp()
        r.expect(_LPAREN, "(")
        if r.peek() != _RPAREN:
            while True:
                option = r.word()
                if option == "STATUS":  # RFC 5819 §2
                    r.sp()
                    status_items = _status_items(r)
                elif option not in _LIST_RETURNS:
                    raise ParseError("Unknown LIST return option")
                returns.add(option)
                if r.peek() != _SP:
                    break
                r.pos += 1
        r.expect(_RPAREN, ")")
    r.finish()
    return List(reference, patterns, frozenset(selection), frozenset(returns), status_items)


def _lsub(r: _Reader, uid: bool) -> Lsub:
    r.sp()
    reference = r.mailbox()
    r.sp()
    pattern = r.list_mailbox()
    r.finish()
    return Lsub(reference, pattern)


def _status(r: _Reader, uid: bool) -> Status:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    items = _status_items(r)
    r.finish()
    return Status(mailbox, items)


def _append(r: _Reader, uid: bool) -> Append:
    # RFC 3502 §6.3.11: append = "APPEND" SP mailbox 1*append-message;
    # append-message = append-opts SP literal; append-opts = [SP flag-list] [SP date-time]
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    messages: list[AppendMessage] = []
    while True:
        flags: tuple[str, ...] = ()
        when: datetime | None = None
        if r.peek() == _LPAREN:
            flags = _flag_list(r)
            r.sp()
        if r.peek() == _DQUOTE:
            when = _date_time(r)
            r.sp()
        if not r.is_literal():
            raise r.fail("a message literal")
        # Message data is stored as given; NUL bytes are the MIME layer's business.
        data = r.literal(allow_nul=True)
        messages.append(AppendMessage(flags, when, bytes(data)))
        if not r.more():
            break
    r.finish()
    return Append(mailbox, tuple(messages))


_SEARCH_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT"})


def _search_return(r: _Reader) -> str:
    option = r.word()
    if option == "SAVE":
        raise ParseError("SEARCHRES (SAVE) is not supported")
    if option not in _SEARCH_RETURNS:
        raise ParseError("Unknown RETURN option")
    return option


def _search(r: _Reader, uid: bool) -> Search:
    # RFC 4731 §3: search = "SEARCH" [search-return-opts] SP search-criteria;
    # search-criteria = ["CHARSET" SP astring SP] search-key *(SP search-key)
    r.sp()
    returns: tuple[str, ...] | None = None
    charset: str | None = None
    mark = r.pos
    word = r.match(_ATOM)
    if word is not None and word.upper() == b"RETURN":
        r.sp()
        # RFC 4731 §3.1: an empty RETURN list means ALL.
        returns = _dedupe(r.paren_list(_search_return, empty_ok=True)) or ("ALL",)
        r.sp()
        mark = r.pos
        word = r.match(_ATOM)
    if word is not None and word.upper() == b"CHARSET":
        r.sp()
        name = bytes(r.astring()).decode("ascii", "replace").upper()
        if name not in ("UTF-8", "US-ASCII"):
            # RFC 3501 §6.4.4: an unsupported charset is NO [BADCHARSET], not BAD.
            raise ParseError("Unsupported charset", code="BADCHARSET")
        charset = name
        r.sp()
    else:
        r.pos = mark
    key = _search_program(r)
    r.finish()
    return Search(charset, key, returns)


_FETCH_MACROS = {
    # RFC 3501 §6.4.5
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_FETCH_MACRO = re.compile(rb"(?i:ALL|FAST|FULL)(?![^ ])")
_FETCH_SIMPLE = frozenset(
    {
        "UID",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",  # RFC 7162 §3.1.4.1
    }
)
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_TOKEN = re.compile(rb"[A-Za-z0-9.]*")
_SECTION_TEXT = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
# Header field names are echoed unquoted in the response, so they must be RFC 5322 ftext
# that is also ATOM-CHAR.
_FIELD_NAME = re.compile(rb'[^\x00-\x20\x7f-\xff:(){%*"\\\]]+')


def _fetch_att(r: _Reader) -> FetchItem:
    token = r.match(_FETCH_NAME)
    if token is None:
        raise r.fail("a FETCH item")
    name = token.decode("ascii").upper()
    has_section = r.peek() == _LBRACKET
    if name in _FETCH_SIMPLE or (name == "BODY" and not has_section):
        if has_section:
            raise ParseError("Unexpected section")
        return FetchItem(name)
    peek = name.endswith(".PEEK")
    base = name.removesuffix(".PEEK")
    if base not in ("BODY", "BINARY", "BINARY.SIZE") or (peek and base == "BINARY.SIZE"):
        raise ParseError("Unknown FETCH item")
    if not has_section:
        raise ParseError("Expected a section")
    r.pos += 1
    section = _section(r, binary=base != "BODY")
    partial: tuple[int, int] | None = None
    if r.peek() == _LT and base != "BINARY.SIZE":
        # "<" number "." nz-number ">"
        r.pos += 1
        start = r.number()
        r.expect(_DOT, ".")
        length = r.number(nonzero=True)
        r.expect(_GT, ">")
        partial = (start, length)
    return FetchItem(base, section, partial, peek)


def _section(r: _Reader, *, binary: bool) -> Section:
    token = r.match(_SECTION_TOKEN) or b""
    parts: list[int] = []
    text = ""
    if token:
        components = token.split(b".")
        i = 0
        while i < len(components) and components[i].isdigit():
            component = components[i]
            # section-part = nz-number *("." nz-number)
            if component[0] == 0x30 or len(component) > 10 or int(component) > MAX_NUMBER:
                raise ParseError("Invalid section")
            parts.append(int(component))
            i += 1
        text = b".".join(components[i:]).decode("ascii").upper()
        if text and (binary or text not in _SECTION_TEXT or (text == "MIME" and not parts)):
            raise ParseError("Invalid section")
        if not text and i < len(components):  # e.g. "1." or an empty component
            raise ParseError("Invalid section")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        r.sp()
        fields = _dedupe(r.paren_list(_header_field, empty_ok=False))
    r.expect(_RBRACKET, "]")
    return Section(tuple(parts), text, fields)


def _header_field(r: _Reader) -> str:
    raw = r.astring()
    if not _FIELD_NAME.fullmatch(raw):
        raise ParseError("Invalid header field name")
    return bytes(raw).decode("ascii").upper()


def _fetch(r: _Reader, uid: bool) -> Fetch:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    items: list[FetchItem]
    macro = r.match(_FETCH_MACRO)
    if macro is not None:
        items = [FetchItem(n) for n in _FETCH_MACROS[macro.decode("ascii").upper()]]
    elif r.peek() == _LPAREN:
        items = r.paren_list(_fetch_att, empty_ok=False)
    else:
        items = [_fetch_att(r)]
    changedsince: int | None = None
    vanished = False
    if r.more():
        # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED.
        r.expect(_LPAREN, "(")
        while True:
            modifier = r.word()
            if modifier == "CHANGEDSINCE" and changedsince is None:
                r.sp()
                changedsince = r.number(maximum=MAX_MODSEQ)
            elif modifier == "VANISHED" and not vanished:
                vanished = True
            else:
                raise ParseError("Unknown FETCH modifier")
            if r.peek() != _SP:
                break
            r.pos += 1
        r.expect(_RPAREN, ")")
    r.finish()
    if vanished and not (uid and changedsince is not None):
        raise ParseError("VANISHED needs UID FETCH with CHANGEDSINCE")
    implicit: list[FetchItem] = []
    names = {i.name for i in items}
    if uid and "UID" not in names:  # RFC 3501 §6.4.8: UID FETCH always returns UID
        implicit.append(FetchItem("UID"))
    if changedsince is not None and "MODSEQ" not in names:  # RFC 7162 §3.1.4.1
        implicit.append(FetchItem("MODSEQ"))
    return Fetch(sequence, _dedupe(implicit + items), changedsince, vanished)


_STORE_ATT = re.compile(rb"[+-]?[A-Za-z.]+")


def _store(r: _Reader, uid: bool) -> Store:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    unchangedsince: int | None = None
    if r.peek() == _LPAREN:
        # RFC 7162 §3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer
        r.pos += 1
        if r.word() != "UNCHANGEDSINCE":
            raise ParseError("Unknown STORE modifier")
        r.sp()
        unchangedsince = r.number(maximum=MAX_MODSEQ)
        r.expect(_RPAREN, ")")
        r.sp()
    token = r.match(_STORE_ATT)
    if token is None:
        raise r.fail("FLAGS")
    att = token.decode("ascii").upper()
    mode = att[0] if att[0] in "+-" else ""
    att = att.removeprefix(mode)
    if att not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("Expected FLAGS")
    r.sp()
    if r.peek() == _LPAREN:
        flags = _flag_list(r)
    else:
        bare = [_flag(r)]
        while r.more():
            bare.append(_flag(r))
        flags = _dedupe(bare)
    r.finish()
    return Store(sequence, mode, att == "FLAGS.SILENT", flags, unchangedsince)


def _copy_move(r: _Reader, uid: bool) -> CopyMove:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    mailbox = r.mailbox()
    r.finish()
    return CopyMove(sequence, mailbox)


def _expunge(r: _Reader, uid: bool) -> UidExpunge | None:
    if not uid:
        r.finish()
        return None
    r.sp()
    sequence = r.sequence_set()
    r.finish()
    return UidExpunge(sequence)


# RFC 2971 §3.3: fields at most 30 octets, values at most 1024, at most 30 pairs.
_ID_MAX_PAIRS, _ID_MAX_FIELD, _ID_MAX_VALUE = 30, 30, 1024


def _id(r: _Reader, uid: bool) -> Id:
    r.sp()
    if r.peek() != _LPAREN:
        if r.word() != "NIL":
            raise ParseError("Expected ( or NIL")
        r.finish()
        return Id(None)
    r.pos += 1
    pairs: list[tuple[str, str | None]] = []
    while r.peek() != _RPAREN:
        if pairs:
            r.sp()
        if len(pairs) == _ID_MAX_PAIRS:
            raise ParseError("Too many ID fields")
        field = r.string()
        r.sp()
        value = r.nstring()
        if len(field) > _ID_MAX_FIELD or (value is not None and len(value) > _ID_MAX_VALUE):
            raise ParseError("ID field or value too long")
        # ID data is informational (logs): decode leniently rather than refuse the client.
        pairs.append(
            (
                bytes(field).decode("utf-8", "replace"),
                None if value is None else bytes(value).decode("utf-8", "replace"),
            )
        )
    r.pos += 1
    r.finish()
    return Id(tuple(pairs))


def _enable(r: _Reader, uid: bool) -> Enable:
    r.sp()
    capabilities = [r.word()]
    while r.more():
        capabilities.append(r.word())
    r.finish()
    return Enable(_dedupe(capabilities))


_COMMANDS: dict[str, Callable[[_Reader, bool], Arguments]] = {
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "STARTTLS": _no_args,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _mailbox_command,
    "DELETE": _mailbox_command,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_command,
    "UNSUBSCRIBE": _mailbox_command,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "IDLE": _no_args,
    "NAMESPACE": _no_args,
    "ID": _id,
    "UNSELECT": _no_args,
    "ENABLE": _enable,
}
_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"})


def parse_tag(chunks: Sequence[bytes]) -> str | None:
    """The command's tag if the first line starts with a valid one followed by SP or the end."""
    try:
        line = chunks[0]
        m = _TAG.match(line)
        if m is None or (m.end() < len(line) and line[m.end()] != _SP):
            return None
        return bytes(m.group()).decode("ascii")
    except Exception:  # the contract is "never raise": garbage in, None out
        return None


def parse_request(chunks: Sequence[bytes]) -> Request:
    """Parse one framed command; raises ParseError (and only ParseError) if it is malformed."""
    tag = parse_tag(chunks)
    try:
        if tag is None:
            raise ParseError("Missing or invalid tag")
        r = _Reader(chunks)
        r.pos = len(tag)
        if r.at_end():
            raise ParseError("Missing command")
        r.sp()
        name = r.word()
        uid = name == "UID"
        if uid:
            r.sp()
            name = r.word()
            if name not in _UID_COMMANDS:
                raise ParseError("Unknown UID command")
        handler = _COMMANDS.get(name)
        if handler is None:
            raise ParseError("Unknown command")
        return Request(tag, name, uid, handler(r, uid))
    except ParseError as exc:
        if exc.tag is None:
            exc.tag = tag
        raise
    except Exception as exc:
        # Belt and braces: the server must only ever see ParseError. The original exception
        # is kept as __cause__ (the fuzz test asserts there never is one).
        raise ParseError("Malformed command", tag) from exc


# --------------------------------------------------------------------------------------------
# SEARCH programs (RFC 3501 §6.4.4, RFC 7162 §3.1.5)
# --------------------------------------------------------------------------------------------
#
# Parsed without recursion, on an explicit stack of frames, so no input can exhaust the Python
# stack; OR chains are flattened as they are built ("OR OR OR a b c d" -> Or((a, b, c, d)))
# and lists are flattened into their parent And, so the depth check below only rejects
# genuinely deep trees. Every key travels with its tree depth (a leaf is 1).

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


def _search_program(r: _Reader) -> SearchKey:
    """search-key *(SP search-key), as one key (an And when there are several)."""
    stack = [_Frame(_ROOT)]
    parens = 0
    while True:
        frame = stack[-1]
        if frame.kind == _ROOT and frame.keys:
            if not r.more():
                break
        elif frame.kind == _PAREN and frame.keys:
            if r.peek() == _RPAREN:
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
        if c == _LPAREN:
            if parens >= MAX_SEARCH_DEPTH:
                raise ParseError("Search program nested too deeply")
            r.pos += 1
            parens += 1
            stack.append(_Frame(_PAREN))
            continue
        if c in (_STAR, _DOLLAR) or 0x30 <= c <= 0x39:
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
_SEARCH_DATES: dict[str, tuple[Literal["internal", "sent"], Literal["before", "on", "since"]]] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}
# RFC 3501 §6.4.4: NEW is "RECENT UNSEEN".
_NEW = And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))


def _search_key(r: _Reader, word: str) -> tuple[SearchKey, int]:
    """One search key other than NOT, OR, a list or a sequence set; ``word`` is consumed."""
    if word == "ALL":
        return All(), 1
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
        return DateKey(when[0], when[1], _search_date(r)), 1
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
    if word == "UID":
        r.sp()
        return UidKey(r.sequence_set()), 1
    if word == "MODSEQ":
        r.sp()
        # RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer;
        # the per-flag entry is accepted and ignored (we keep one mod-sequence per message).
        if r.peek() == _DQUOTE:
            r.quoted()
            r.sp()
            if r.word() not in ("PRIV", "SHARED", "ALL"):
                raise ParseError("Invalid MODSEQ entry type")
            r.sp()
        return ModSeqKey(r.number(maximum=MAX_MODSEQ)), 1
    raise ParseError("Unknown search key")
