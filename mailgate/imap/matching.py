"""Whether a message matches a SEARCH key (RFC 3501 §6.4.4, RFC 7162 §3.1.5). Pure: no I/O.

The grammar (:mod:`mailgate.imap.syntax.search`) turns the search program into a tree of keys
(:mod:`mailgate.imap.syntax.values`); :func:`matches` evaluates that tree against one message at
a time, and :func:`needs` tells the server which expensive parts of a message (headers, body)
the tree reads, so it loads them only when they are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

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
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
    UidKey,
)


class SearchMessage(Protocol):
    """What the server offers per message; the three methods may be expensive (see needs())."""

    @property
    def seq(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def flags(self) -> frozenset[str]: ...
    @property
    def internaldate(self) -> datetime: ...
    @property
    def size(self) -> int: ...
    @property
    def modseq(self) -> int: ...
    @property
    def sent_date(self) -> datetime | None: ...
    @property
    def saved_date(self) -> datetime:
        """RFC 8514's save date: when the message was put into this mailbox."""
        ...

    @property
    def email_id(self) -> str:
        """RFC 8474's EMAILID."""
        ...

    @property
    def thread_id(self) -> str | None:
        """RFC 8474's THREADID."""
        ...

    def header_values(self, name: str) -> list[str]:
        """Decoded values of every ``name`` field (``name`` is lower-case), [] if absent."""
        ...

    def header_text(self) -> str:
        """The whole decoded header section (for TEXT)."""
        ...

    def body_text(self) -> str:
        """The decoded body text (for BODY and TEXT)."""
        ...


@dataclass(frozen=True, slots=True)
class Needs:
    """Which costly message parts a search reads. ``sent_date`` counts as cheap metadata."""

    headers: bool
    body: bool


def needs(key: SearchKey) -> Needs:
    """What data ``key`` reads, so the server can skip loading headers or bodies."""
    headers, body = _needs(key)
    return Needs(headers=headers, body=body)


def _needs(key: SearchKey) -> tuple[bool, bool]:
    if isinstance(key, HeaderKey):
        return True, False
    if isinstance(key, BodyKey):
        return False, True
    if isinstance(key, TextKey):
        return True, True
    if isinstance(key, Not):
        return _needs(key.key)
    if isinstance(key, And | Or):
        headers = body = False
        for sub in key.keys:
            h, b = _needs(sub)
            headers, body = headers or h, body or b
            if headers and body:
                break
        return headers, body
    return False, False


def matches(
    key: SearchKey,
    msg: SearchMessage,
    largest_seq: int,
    largest_uid: int,
    now: datetime | None = None,
) -> bool:
    """Whether ``msg`` satisfies ``key``.

    ``largest_seq``/``largest_uid`` are what ``*`` stands for (RFC 3501 §9, seq-number);
    ``now`` is the time OLDER and YOUNGER count back from (one for the whole search).
    Header and body text are fetched from ``msg`` at most once per call.
    """
    return _Evaluation(msg, largest_seq, largest_uid, now or datetime.now(UTC)).test(key)


class _Evaluation:
    """One message under test, with its casefolded texts cached for the whole key tree."""

    __slots__ = ("_body", "_header_text", "_headers", "largest_seq", "largest_uid", "msg", "now")

    def __init__(
        self, msg: SearchMessage, largest_seq: int, largest_uid: int, now: datetime
    ) -> None:
        self.msg = msg
        self.now = now
        self.largest_seq = largest_seq
        self.largest_uid = largest_uid
        self._headers: dict[str, list[str]] = {}
        self._header_text: str | None = None
        self._body: str | None = None

    def header_values(self, name: str) -> list[str]:
        values = self._headers.get(name)
        if values is None:
            values = [v.casefold() for v in self.msg.header_values(name)]
            self._headers[name] = values
        return values

    def header_text(self) -> str:
        if self._header_text is None:
            self._header_text = self.msg.header_text().casefold()
        return self._header_text

    def body_text(self) -> str:
        if self._body is None:
            self._body = self.msg.body_text().casefold()
        return self._body

    def test(self, key: SearchKey) -> bool:
        msg = self.msg
        match key:
            case All():
                return True
            case And(keys=keys):
                return all(self.test(k) for k in keys)
            case Or(keys=keys):
                return any(self.test(k) for k in keys)
            case Not(key=sub):
                return not self.test(sub)
            case FlagKey(flag=flag, present=present):
                return _has_flag(msg.flags, flag) == present
            case HeaderKey(field=field, value=value):
                values = self.header_values(field)
                # RFC 3501 §6.4.4 HEADER: an empty string matches every message that has
                # the field, whatever its content.
                if not value:
                    return bool(values)
                needle = value.casefold()
                return any(needle in v for v in values)
            case BodyKey(value=value):
                return value.casefold() in self.body_text()
            case TextKey(value=value):
                needle = value.casefold()
                return needle in self.header_text() or needle in self.body_text()
            case DateKey(field=field, op=op, date=when):
                if field == "internal":
                    day = msg.internaldate.date()
                elif field == "saved":
                    day = msg.saved_date.date()
                else:
                    sent = msg.sent_date
                    if sent is None:  # no (parsable) Date: header: no SENT* key matches
                        return False
                    # RFC 3501 §6.4.4: SENT* ignore time and timezone; the date as written
                    # in the header, i.e. in the message's own timezone.
                    day = sent.date()
                return _compare_date(day, op, when)
            case AgeKey(op=op, seconds=seconds):
                # RFC 5032 §3: YOUNGER n is "within the last n seconds", OLDER n the rest.
                young = msg.internaldate >= self.now - timedelta(seconds=seconds)
                return young if op == "younger" else not young
            case SizeKey(op=op, size=size):
                return msg.size > size if op == "larger" else msg.size < size
            case SeqKey(sequence=sequence):
                return sequence.contains(msg.seq, self.largest_seq)
            case UidKey(sequence=sequence):
                return sequence.contains(msg.uid, self.largest_uid)
            case ModSeqKey(modseq=modseq):
                return msg.modseq >= modseq
            case ObjectIdKey(kind=kind, value=value):
                return (msg.email_id if kind == "email" else msg.thread_id) == value
        raise TypeError(f"not a search key: {type(key).__name__}")


def _compare_date(day: date, op: str, when: date) -> bool:
    # RFC 3501 §6.4.4: BEFORE is strictly earlier, SINCE is "on or after".
    if op == "before":
        return day < when
    if op == "on":
        return day == when
    return day >= when


def _has_flag(flags: frozenset[str], flag: str) -> bool:
    if flag in flags:
        return True
    if flag.startswith("\\"):
        # A system flag: the keys name it, and the store shows it, in one spelling (a keyword
        # atom cannot hold a backslash), so a miss is a miss; UNSEEN asks this of every row.
        return False
    # Flag and keyword names match case-insensitively, as in Cyrus and Courier: a keyword
    # stored as "$Junk" matches KEYWORD $junk.
    folded = flag.casefold()
    return any(f.casefold() == folded for f in flags)
