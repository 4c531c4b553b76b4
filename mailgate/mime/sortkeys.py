"""What IMAP SORT and THREAD compare (RFC 5256, RFC 5957), computed once per message at ingest.

Each key is kept already mapped by the i;ascii-casemap collation (RFC 4790 §9.2: ASCII letters
upper-cased, everything else compared octet by octet), so that comparing two keys is comparing
their code points (UTF-8 octet order is code point order). Pure: header bytes in, strings out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgate.mime.addresses import Address, parse_addresses
from mailgate.mime.decoding import decode_words
from mailgate.mime.headers import first_fields

_FIELDS = frozenset({b"subject", b"from", b"to", b"cc"})
# What a key keeps: enough to order any two real messages, bounded for the column.
MAX_KEY = 512
MAX_SUBJECT = 16 * 1024

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def casemap(text: str) -> str:
    """The i;ascii-casemap form of a string (str.upper() would map non-ASCII letters too)."""
    return text.translate(_ASCII_UPPER)


@dataclass(frozen=True, slots=True)
class SortKeys:
    subject: str  # the base subject (RFC 5256 §2.1)
    reply: bool  # whether the subject said it was a reply or a forward (RFC 5256 §3 step 5)
    from_: str  # addr-mailbox of the first From address (RFC 5256 §3 "FROM")
    to: str
    cc: str
    display_from: str  # display name of the first From address, else its addr-spec (RFC 5957)
    display_to: str


# RFC 5256 §5: subj-blob = "[" *BLOBCHAR "]" *WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP
# [subj-blob] ":"; subj-leader = (*subj-blob subj-refwd) / WSP; subj-trailer = "(fwd)" / WSP.
_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = r"(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:"
_LEADER = re.compile(r"(?:" + _BLOB + r")*" + _REFWD + r"| +", re.IGNORECASE)
_LEADING_BLOB = re.compile(_BLOB)
_SPACE = re.compile(r"[ \t\r\n]+")
_FWD_HEADER = "[FWD:"


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(RFC 5256 §2.1's base subject, casemapped; whether extracting it removed a reply or
    forward marker: a subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper).

    `subject` is already RFC 2047-decoded (step 1's first half)."""
    if not subject:
        return "", False
    # Step 1: tabs and continuations become a space, runs of spaces one space. A subject
    # longer than any key is cut first, bounding the work.
    text = _SPACE.sub(" ", subject[:MAX_SUBJECT])
    reply = False
    while True:
        # Step 2: trailers.
        while True:
            text = text.rstrip(" ")
            if not text.lower().endswith("(fwd)"):
                break
            text = text[: -len("(fwd)")]
            reply = True
        # Steps 3 to 5: leaders, and a leading blob unless nothing would be left.
        while True:
            m = _LEADER.match(text)
            if m is not None:
                reply = reply or not m.group().isspace()
                text = text[m.end() :]
                continue
            m = _LEADING_BLOB.match(text)
            if m is not None and text[m.end() :].strip():
                text = text[m.end() :]
                continue
            break
        # Step 6: a "[fwd: ...]" wrapper, then from step 2 again.
        if casemap(text[: len(_FWD_HEADER)]) == _FWD_HEADER and text.endswith("]"):
            text = text[len(_FWD_HEADER) : -1]
            reply = True
            continue
        return casemap(text)[:MAX_KEY], reply


def _mailbox(first: Address | None) -> str:
    if first is None:
        return ""
    # A group's start marker carries the group's name as its mailbox (as in ENVELOPE).
    return decode_words(first.mailbox or b"")


def _display(first: Address | None) -> str:
    if first is None:
        return ""
    if first.name is not None and (name := decode_words(first.name).strip()):
        return name
    spec = decode_words(first.mailbox or b"")
    if first.host:
        spec += "@" + decode_words(first.host)
    return spec


def _first(value: bytes | None) -> Address | None:
    if not value:
        return None
    found = parse_addresses(value)
    return found[0] if found else None


def _key(text: str) -> str:
    # NUL fits no text column; SORT only compares, so the replacement is as good.
    return casemap(text.replace("\x00", "\ufffd"))[:MAX_KEY]


def sort_keys(header: bytes) -> SortKeys:
    """The keys of a message from its header section."""
    fields = first_fields(header, _FIELDS)
    raw_subject = fields.get(b"subject")
    subject, reply = base_subject(
        None if raw_subject is None else decode_words(raw_subject).replace("\x00", "\ufffd")
    )
    sender, recipient = _first(fields.get(b"from")), _first(fields.get(b"to"))
    return SortKeys(
        subject=subject,
        reply=reply,
        from_=_key(_mailbox(sender)),
        to=_key(_mailbox(recipient)),
        cc=_key(_mailbox(_first(fields.get(b"cc")))),
        display_from=_key(_display(sender)),
        display_to=_key(_display(recipient)),
    )
