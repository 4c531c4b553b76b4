"""The reader: a cursor over the lines and literals of one command, and the tokens that every
command's grammar is made of (RFC 3501 §9): atoms, strings, literals, numbers, mailbox names,
sequence sets, flags and dates. Anything malformed raises ParseError.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from mailgate.imap.syntax.utf7 import decode_mailbox, decode_pattern
from mailgate.imap.syntax.values import REV1, Dialect, ParseError, SeqRange, SequenceSet

MAX_NUMBER = 0xFFFF_FFFF  # RFC 3501 §9: number and nz-number are unsigned 32-bit
MAX_MODSEQ = 2**63 - 1  # RFC 7162 §7: mod-sequence-value is at most 63 bits
MAX_NUMBER64 = 2**63 - 1  # RFC 9051's number64

_T = TypeVar("_T")

SP, DQUOTE, LPAREN, RPAREN = 0x20, 0x22, 0x28, 0x29
STAR, _LBRACE, LBRACKET, RBRACKET = 0x2A, 0x7B, 0x5B, 0x5D
_BACKSLASH, DOLLAR, LT, GT, DOT, _COLON, _COMMA = 0x5C, 0x24, 0x3C, 0x3E, 0x2E, 0x3A, 0x2C

# RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE
# "\" "]"; ASTRING-CHAR adds "]"; list-char adds "%" "*" "]"; a tag is ASTRING-CHARs but "+".
ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_LIST_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_DIGITS = re.compile(rb"[0-9]+")
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ are escapes. 8-bit bytes are tolerated
# (UTF-8, RFC 6855 §3); NUL, CR and LF never appear in a quoted string.
_QUOTED = re.compile(rb'"((?:[^"\\\x00\r\n]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,10})(\+?)\}")

# RFC 3501 §2.3.2: system flags are case-insensitive; keep the canonical spelling.
_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}
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


def _calendar_date(m: re.Match[bytes]) -> dt.date:
    month = _MONTHS.get(m.group(2).upper())
    if month is None:
        raise ParseError("Invalid date")
    try:
        return dt.date(int(m.group(3)), month, int(m.group(1)))
    except ValueError:
        raise ParseError("Invalid date") from None


def _mailbox_name(raw: bytes, *, utf8: bool, pattern: bool = False) -> str:
    name = decode_pattern(raw, utf8=utf8) if pattern else decode_mailbox(raw, utf8=utf8)
    # RFC 3501 §5.1: INBOX is case-insensitive; every other name is case-sensitive.
    if name.isascii() and name.upper() == "INBOX":
        return "INBOX"
    return name


class Reader:
    """Reads one command, token by token, from the framed lines and literals, in the
    session's dialect (what it enabled)."""

    __slots__ = ("_chunks", "_ci", "_end", "_last", "dialect", "line", "pos")

    def __init__(self, chunks: Sequence[bytes], dialect: Dialect = REV1) -> None:
        if len(chunks) % 2 == 0:
            raise ParseError("Malformed command framing")
        self.dialect = dialect
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
        self.expect(SP, "a space")

    def more(self) -> bool:
        """Consume one SP if something other than trailing spaces follows it."""
        if self.peek() == SP and not self.at_end():
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
        token = self.match(ATOM)
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
        value = m.group(1)
        if self.dialect.utf8 and not value.isascii():
            # RFC 6855 §3: 8-bit octets in a quoted string must be UTF-8, else BAD.
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("Quoted string is not valid UTF-8") from None
        return _UNESCAPE.sub(rb"\1", value)

    def literal(self, *, allow_nul: bool = False) -> bytes:
        """A literal; ``allow_nul`` (message data) also takes RFC 3516's literal8 ``~{n}``."""
        m = _LITERAL.fullmatch(self.line, self.pos)
        if m is None:
            raise ParseError("Invalid literal")
        if m.group(1) and not allow_nul:
            raise ParseError("A literal8 (~{n}) is only allowed for message data")
        if self._ci >= self._last:
            raise ParseError("Missing literal data")
        data = self._chunks[self._ci + 1]
        if len(data) != int(m.group(2)):
            raise ParseError("Literal size mismatch")
        # RFC 3501 §9: literal = "{" number "}" CRLF *CHAR8, and CHAR8 excludes NUL (APPEND
        # data is exempt, see _append in commands.py).
        if not allow_nul and b"\x00" in data:
            raise ParseError("NUL in literal")
        self._ci += 2
        self.line = self._chunks[self._ci]
        self.pos = 0
        return data

    def is_literal(self) -> bool:
        c = self.peek()
        return c == _LBRACE or self.is_literal8()

    def is_literal8(self) -> bool:
        return self.line.startswith(b"~{", self.pos)

    def string(self) -> bytes:
        if self.peek() == DQUOTE:
            return self.quoted()
        if self.is_literal():
            return self.literal()
        raise self.fail("a string")

    def astring(self) -> bytes:
        if self.peek() == DQUOTE:
            return self.quoted()
        if self.is_literal():
            return self.literal()
        token = self.match(_ASTRING_ATOM)
        if token is None:
            raise self.fail("a string")
        return token

    def nstring(self) -> bytes | None:
        if self.peek() == DQUOTE or self.is_literal():
            return self.string()
        token = self.match(ATOM)
        if token is None:
            raise self.fail("a string or NIL")
        if token.upper() != b"NIL":
            raise ParseError("Expected a string or NIL")
        return None

    def mailbox(self) -> str:
        return _mailbox_name(self.astring(), utf8=self.dialect.utf8)

    def list_mailbox(self) -> str:
        # RFC 3501 §9: list-mailbox = 1*list-char / string ("%" and "*" may go unquoted).
        if self.peek() == DQUOTE or self.is_literal():
            return _mailbox_name(self.string(), utf8=self.dialect.utf8, pattern=True)
        token = self.match(_LIST_ATOM)
        if token is None:
            raise self.fail("a mailbox pattern")
        return _mailbox_name(token, utf8=self.dialect.utf8, pattern=True)

    def sequence_set(self) -> SequenceSet:
        if self.peek() == DOLLAR:
            # RFC 5182 §3: "$" stands alone, never inside a list of ranges.
            self.pos += 1
            return SequenceSet((), saved=True)
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
        if self.peek() == STAR:
            self.pos += 1
            return None
        if not 0x30 <= self.peek() <= 0x39:
            raise self.fail("a sequence set")
        return self.number(nonzero=True)

    def paren_list(self, item: Callable[[Reader], _T], *, empty_ok: bool) -> list[_T]:
        """``"(" item *(SP item) ")"``, or ``"(" ")"`` when ``empty_ok``."""
        self.expect(LPAREN, "(")
        items: list[_T] = []
        if self.peek() == RPAREN and empty_ok:
            self.pos += 1
            return items
        items.append(item(self))
        while self.peek() == SP:
            self.pos += 1
            items.append(item(self))
        self.expect(RPAREN, ")")
        return items

    def flag(self) -> str:
        if self.peek() == _BACKSLASH:
            self.pos += 1
            name = "\\" + self.atom().decode("ascii")
            canonical = _SYSTEM_FLAGS.get(name.upper())
            if canonical is not None:
                return canonical
            if name.upper() == "\\RECENT":  # RFC 3501 §2.3.2: \Recent cannot be altered
                raise ParseError("\\Recent cannot be set")
            raise ParseError("Unknown system flag")
        return self.atom().decode("ascii")  # a keyword: an atom, case kept

    def flag_list(self) -> tuple[str, ...]:
        return dedupe(self.paren_list(Reader.flag, empty_ok=True))

    def date(self) -> dt.date:
        # RFC 3501 §9: date = date-text / DQUOTE date-text DQUOTE
        if self.peek() == DQUOTE:
            m = _DATE.fullmatch(self.quoted())
        else:
            m = _DATE.match(self.line, self.pos)
            if m is not None:
                self.pos = m.end()
        if m is None:
            raise ParseError("Invalid date")
        return _calendar_date(m)

    def date_time(self) -> dt.datetime:
        m = _DATE_TIME.fullmatch(self.quoted())
        if m is None:
            raise ParseError("Invalid date-time")
        day = _calendar_date(m)
        hour, minute, second, zh, zm = (int(m.group(i)) for i in (4, 5, 6, 8, 9))
        if zh > 23 or zm > 59:
            raise ParseError("Invalid date-time")
        offset = dt.timedelta(hours=zh, minutes=zm)
        try:
            return dt.datetime(
                day.year,
                day.month,
                day.day,
                hour,
                minute,
                second,
                tzinfo=dt.timezone(-offset if m.group(7) == b"-" else offset),
            )
        except ValueError:
            raise ParseError("Invalid date-time") from None


def dedupe(items: Iterable[_T]) -> tuple[_T, ...]:
    """Drop repeats, keep the client's order (a response must not repeat an item)."""
    return tuple(dict.fromkeys(items))
