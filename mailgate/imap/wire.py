"""IMAP response syntax (RFC 3501 §9), shared by the command modules: flag lists, dates,
literals, mailbox names and UID sets. IMAP strings (quoted or literal) are encoded where
ENVELOPE and BODYSTRUCTURE are built at ingest; mailbox() takes them from there."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from functools import lru_cache

from mailgate.imap.syntax.utf7 import encode_mailbox
from mailgate.mime.imapview import string

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=4096)
def flag_list(flags: tuple[str, ...]) -> bytes:
    return b"(" + " ".join(flags).encode() + b")"


def flags_fetch(
    seq: int, flags: tuple[str, ...], *, uid: int | None = None, modseq: int | None = None
) -> bytes:
    """An untagged FETCH (without "* ") telling a message's flags: after STORE, or a change
    made elsewhere (RFC 3501 §7.4.2), with its UID and RFC 7162 MODSEQ where wanted."""
    items = b"FLAGS " + flag_list(flags)
    if uid is not None:
        items = b"UID %d " % uid + items
    if modseq is not None:
        items += b" MODSEQ (%d)" % modseq
    return b"%d FETCH (%s)" % (seq, items)


def internaldate(when: datetime.datetime) -> bytes:
    """date-time: "17-Jul-1996 02:44:25 -0700" (RFC 3501 §9)."""
    offset = when.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} '
        f'{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{hours:02d}{mins:02d}"'
    ).encode()


def literal(data: bytes | None) -> bytes:
    """Bytes as a literal, NIL for None (nstring, RFC 3501 §9): message data goes this way."""
    if data is None:
        return b"NIL"
    return b"{%d}\r\n%s" % (len(data), data)


def literal8(data: bytes) -> bytes:
    """Bytes that may hold NUL, as RFC 3516's literal8 (only in answer to BINARY)."""
    return b"~{%d}\r\n%s" % (len(data), data)


def mailbox(name: str, utf8: bool) -> bytes:
    """A mailbox name as it goes on the wire: modified UTF-7, then quoted (or a literal); to a
    session with UTF-8 names (UTF8=ACCEPT, IMAP4rev2) UTF-8, quoted."""
    if utf8:
        return string(name, utf8=True)
    return string(encode_mailbox(name))


def uid_set(uids: Iterable[int]) -> bytes:
    """Compact sequence-set syntax: ascending runs become ranges, 1:3,7,9:10 (used by COPYUID,
    ESEARCH; ESORT passes numbers in sort order, whose order it keeps)."""
    parts: list[str] = []
    start = prev = None
    for uid in uids:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:  # type: ignore[operator]
            prev = uid
        else:
            parts.append(f"{start}" if start == prev else f"{start}:{prev}")
            start = prev = uid
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(parts).encode()
