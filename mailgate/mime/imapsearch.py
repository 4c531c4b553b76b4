"""What IMAP SEARCH matches in a message (RFC 3501 §6.4.4): the decoded values of a header field,
the header section as text (TEXT), the decoded text of the body (BODY, TEXT). Pure: no I/O.

The same functions serve the per-message matcher (imap/matching.py, through imap/search.py)
and the text index built at ingest (store/ingest.py), so that both see the same text.

The index keeps each text case-folded, as the matcher compares it, with "\\n" in front of every
value. A needle without "\\n" (or NUL, which is stored as "\\n": PostgreSQL's text cannot hold
it) then occurs in the stored text exactly where it occurs in one of the values, so a substring
test in SQL gives the matcher's answer (see `searchable`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailgate.mime.addresses import Address, parse_addresses
from mailgate.mime.decoding import decode_words, encode_utf8
from mailgate.mime.headers import fields_by_name
from mailgate.mime.parts import body_text

ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})
# The fields SUBJECT, FROM, TO, CC and BCC search, each kept on its own by the index.
INDEXED_FIELDS = ("subject", "from", "to", "cc", "bcc")
# Characters of a body's text the index keeps; a longer body is searched in its bytes.
BODY_INDEXED = 128 * 1024


def address_text(address: Address) -> str:
    """``Name <mailbox@host>``, or ``mailbox@host`` without a name: what SEARCH matches."""
    mailbox = (address.mailbox or b"").decode("utf-8", "replace")
    if address.host:
        mailbox += "@" + address.host.decode("utf-8", "replace")
    if address.name:
        return f"{decode_words(address.name)} <{mailbox}>"
    return mailbox


def header_values(fields: dict[bytes, list[bytes]], name: str) -> list[str]:
    """The decoded values of every `name` field of a header split by fields_by_name."""
    raw = fields.get(encode_utf8(name).lower(), ())
    values = [decode_words(v) for v in raw]
    if name.lower() in ADDRESS_FIELDS:
        # Address fields also match as parsed, without comments and quoting (as Dovecot):
        # "<user (c)@ (c) host>" is found by FROM user@host. Values with neither say the
        # same parsed as raw, so they are not parsed again.
        values += [
            address_text(a)
            for v in raw
            if b"(" in v or b'"' in v
            for a in parse_addresses(v)
            if not a.group
        ]
    return values


def header_text(header: bytes) -> str:
    """The header section as TEXT searches it."""
    return header.decode("utf-8", "replace")


def searchable(needle: str) -> str | None:
    """The needle as the index compares it (case-folded), or None where the index cannot say:
    a "\\n" or NUL in it could match across two stored values."""
    if "\n" in needle or "\0" in needle:
        return None
    return needle.casefold()


def _stored(text: str) -> str:
    return text.casefold().replace("\0", "\n")


def _lines(values: Iterable[str]) -> str:
    return "".join("\n" + _stored(v) for v in values)


@dataclass(frozen=True, slots=True)
class SearchTexts:
    """A message's texts as the index keeps them (see the module's docstring)."""

    fields: dict[str, str]  # INDEXED_FIELDS -> their values; "" where the field is absent
    headers: str  # every field as "\nname:value", for HEADER of any other field
    header: str  # the header section (TEXT)
    body: str  # the body's text, its first BODY_INDEXED characters
    whole: bool  # whether `body` is the whole of it


def index_texts(header: bytes, raw: bytes) -> SearchTexts:
    """What the index keeps of a (CRLF-normalised) message whose header section is `header`."""
    fields = fields_by_name(header)
    headers = "".join(
        f"\n{name.decode('utf-8', 'replace')}:{_lines(header_values(fields, name.decode()))}"
        for name in fields
        if name.isascii()  # as HEADER names them; others are left to the matcher
    )
    body = body_text(raw)
    return SearchTexts(
        fields={f: _lines(header_values(fields, f)) for f in INDEXED_FIELDS},
        headers=headers,
        header=_stored(header_text(header)),
        body=_stored(body[:BODY_INDEXED]),
        whole=len(body) <= BODY_INDEXED,
    )
