"""The MIME part tree (RFC 2045, RFC 2046): each entity's Content-* fields, its type and
parameters (RFC 2231 included), and its children; and the decoded text of the text parts.

Input is untrusted: nothing here may raise on malformed bytes, and nesting depth and part count
are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from mailgate.mime.decoding import decode_text, decode_transfer
from mailgate.mime.headers import (
    MAX_STRUCTURED,
    body_offset,
    first_fields,
    strip_comments,
    unquote,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FALSE_DELIMITERS",
    "MAX_PARTS",
    "TOKEN",
    "Entity",
    "Params",
    "body_text",
    "mime_value",
    "parse",
    "transfer_encoding",
]

# Hostile input bounds: deeper or further entities are indexed as opaque text/plain leaves.
MAX_DEPTH = 50
MAX_PARTS = 10_000
# Lines that start like a delimiter but are not one cost a check each; past this many in one
# message, scanning of the multipart at hand stops as if its close delimiter were missing.
MAX_FALSE_DELIMITERS = 100_000

# Header fields the index needs; only these are unfolded.
_WANTED = frozenset(
    b"date subject from sender reply-to to cc bcc in-reply-to message-id references content-type"
    b" content-transfer-encoding content-id content-description content-md5"
    b" content-disposition content-language content-location".split()
)


def _no_nul(value: bytes) -> bytes:
    # No IMAP string may carry NUL, not even a literal (CHAR8, RFC 3501 §9).
    return value.replace(b"\x00", b"\x80") if b"\x00" in value else value


def _fields(header: bytes) -> dict[bytes, bytes]:
    """The first occurrence of each wanted field, lower-case name -> unfolded raw value."""
    return {name: _no_nul(value) for name, value in first_fields(header, _WANTED).items()}


# ---------------------------------------------------------------------------------------------
# MIME header values: Content-Type and friends (RFC 2045 §5.1, RFC 2183, RFC 2231)

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_PARAM_PIECE = re.compile(rb'(?:[^;"]+|"[^"\\]*(?:\\.[^"\\]*)*"?)+', re.S)
_RFC2231_NAME = re.compile(rb"(.+?)\*(\d{1,3})?(\*)?\Z", re.S)

Params = list[tuple[bytes, bytes]]


def mime_value(value: bytes) -> tuple[bytes, Params]:
    """Split ``main; a=b; c="d"`` into the main value and its merged parameters."""
    pieces = _PARAM_PIECE.findall(strip_comments(value[:MAX_STRUCTURED]))
    if not pieces:
        return b"", []
    return pieces[0].strip(), _merge_params(pieces[1:])


def _merge_params(pieces: list[bytes]) -> Params:
    """Parameters in first-seen order, duplicates dropped, RFC 2231 forms decoded and joined.

    An RFC 2231 value wins over a plain one of the same name (senders send both so that old
    readers see something).
    """
    plain: dict[bytes, tuple[bytes, bytes]] = {}
    extended: dict[bytes, tuple[bytes, dict[int, tuple[bytes, bool]]]] = {}
    order: list[bytes] = []
    for piece in pieces:
        name, eq, value = piece.partition(b"=")
        name = name.strip()
        if not eq or not name:
            continue
        value = unquote(value.strip())
        m = _RFC2231_NAME.match(name)
        key = (m.group(1) if m else name).lower()
        if key not in plain and key not in extended:
            order.append(key)
        if m is None:
            plain.setdefault(key, (name, value))
            continue
        index = -1 if m.group(2) is None else int(m.group(2))
        encoded = m.group(2) is None or m.group(3) is not None
        segments = extended.setdefault(key, (m.group(1), {}))[1]
        segments.setdefault(index, (value, encoded))
    return [
        (extended[k][0], _join_rfc2231(extended[k][1])) if k in extended else plain[k]
        for k in order
    ]


def _join_rfc2231(segments: dict[int, tuple[bytes, bool]]) -> bytes:
    """RFC 2231 §3-4: join name*0, name*1...; percent-decode the `*` ones; apply the charset
    given in the first segment. The result is UTF-8 when a charset was named."""
    charset: str | None = None
    data = bytearray()
    for n, index in enumerate(sorted(segments)):
        value, encoded = segments[index]
        if not encoded:
            data += value
            continue
        if n == 0 and value.count(b"'") >= 2:
            name, _lang, value = value.split(b"'", 2)
            charset = name.decode("ascii", "replace") or None
        data += unquote_to_bytes(value)
    if charset is not None:
        data = bytearray(decode_text(bytes(data), charset).encode("utf-8", "replace"))
    return _no_nul(bytes(data))


def _param(params: Params, name: bytes) -> bytes | None:
    for key, value in params:
        if key.lower() == name:
            return value
    return None


def _text_plain() -> tuple[str, str, Params]:
    return "text", "plain", [(b"charset", b"us-ascii")]


def _content_type(value: bytes | None, default: tuple[str, str]) -> tuple[str, str, Params]:
    """(type, subtype, params), lower-cased type names; invalid values get RFC 2045 §5.2's
    text/plain; charset=us-ascii. text/* without a charset gets us-ascii, as Dovecot reports."""
    if value is None:
        return _text_plain() if default == ("text", "plain") else (*default, [])
    main, params = mime_value(value)
    mtype, slash, subtype = main.partition(b"/")
    mtype, subtype = mtype.strip(), subtype.strip()
    if not slash or not TOKEN.match(mtype) or not TOKEN.match(subtype):
        return _text_plain()
    mtype_s = mtype.decode("ascii").lower()
    if mtype_s == "text" and _param(params, b"charset") is None:
        params = [(b"charset", b"us-ascii"), *params]
    return mtype_s, subtype.decode("ascii").lower(), params


def transfer_encoding(fields: dict[bytes, bytes]) -> bytes:
    value = fields.get(b"content-transfer-encoding", b"")[:MAX_STRUCTURED]
    value = strip_comments(value).strip()
    # RFC 2045 §6.1: 7bit is the default; an invalid value is treated like a missing one.
    return value.lower() if TOKEN.match(value) else b"7bit"


# ---------------------------------------------------------------------------------------------
# The MIME tree (RFC 2046 §5)


@dataclass(slots=True)
class Entity:
    """One MIME entity: header raw[start:body], body raw[body:end]."""

    start: int
    body: int
    end: int
    mtype: str
    subtype: str
    params: Params
    fields: dict[bytes, bytes]
    children: list[Entity] = field(default_factory=list)
    message: Entity | None = None  # the encapsulated message of a message/rfc822 part

    def make_opaque(self) -> None:
        """Report an unparseable container as a text/plain leaf (never raise, never guess)."""
        self.mtype, self.subtype, self.params = _text_plain()
        self.children = []
        self.message = None


# RFC 2046 §5.1.1: after CRLF "--" boundary, a delimiter line has either "--" (the close
# delimiter) or optional transport padding and CRLF. The leading CRLF belongs to the delimiter.
_DELIMITER_TAIL = re.compile(rb"(--)|[ \t]*(?:\r\n|\Z)")


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0  # entities so far, for MAX_PARTS
        self.false_delimiters = 0  # for MAX_FALSE_DELIMITERS

    def split_multipart(self, body: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
        """Body-part spans (start, end) of a multipart body, preamble and epilogue excluded.

        A missing close delimiter ends the last part at the end of the body.
        """
        raw = self.raw
        needle = b"\r\n--" + boundary
        spans: list[tuple[int, int]] = []
        part_start: int | None = None
        # The CRLF that ends the header may serve as the first delimiter's leading CRLF.
        pos = body - 2 if raw.startswith(b"\r\n", body - 2, body) else body
        while len(spans) < MAX_PARTS - self.count:
            i = raw.find(needle, pos, end)
            if i < 0:
                break
            tail = _DELIMITER_TAIL.match(raw, i + len(needle), end)
            if tail is None:  # "--boundary" followed by other text is content
                self.false_delimiters += 1
                if self.false_delimiters > MAX_FALSE_DELIMITERS:
                    break
                pos = i + 2
                continue
            if part_start is not None:
                spans.append((part_start, max(part_start, i)))
            if tail.group(1):
                return spans
            part_start = tail.end()
            # The CRLF ending this delimiter line may also start the next one (an empty part).
            pos = part_start - 2 if raw.startswith(b"\r\n", part_start - 2, end) else part_start
        if part_start is not None and len(spans) < MAX_PARTS - self.count:
            spans.append((part_start, max(part_start, end)))
        return spans

    def entity(self, start: int, end: int, depth: int, default: tuple[str, str]) -> Entity:
        raw = self.raw
        body = body_offset(raw, start, end)
        fields = _fields(raw[start:body])
        mtype, subtype, params = _content_type(fields.get(b"content-type"), default)
        entity = Entity(start, body, end, mtype, subtype, params, fields)
        self.count += 1
        if mtype == "multipart":
            self._multipart(entity, depth)
        elif mtype == "message" and subtype == "rfc822":
            self._message(entity, depth)
        return entity

    def _multipart(self, entity: Entity, depth: int) -> None:
        boundary = _param(entity.params, b"boundary")
        if boundary and depth < MAX_DEPTH:
            spans = self.split_multipart(entity.body, entity.end, boundary)
            # RFC 2046 §5.1.5: in a digest the default part type is message/rfc822.
            default = ("message", "rfc822") if entity.subtype == "digest" else ("text", "plain")
            for start, end in spans:
                if self.count >= MAX_PARTS:
                    break
                entity.children.append(self.entity(start, end, depth + 1, default))
        if not entity.children:
            entity.make_opaque()

    def _message(self, entity: Entity, depth: int) -> None:
        if depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            entity.make_opaque()
        else:
            entity.message = self.entity(entity.body, entity.end, depth + 1, ("text", "plain"))


def parse(raw: bytes) -> Entity:
    """The part tree of a (CRLF-normalized) message; the top-level entity is the message."""
    return _Parser(raw).entity(0, len(raw), 0, ("text", "plain"))


# ---------------------------------------------------------------------------------------------
# Search text


def body_text(raw: bytes) -> str:
    """The decoded text of every text/* part, encapsulated messages included, for SEARCH."""
    texts: list[str] = []
    stack = [parse(raw)]
    while stack:
        entity = stack.pop()
        if entity.children:
            stack.extend(reversed(entity.children))
        elif entity.message is not None:
            stack.append(entity.message)
        elif entity.mtype == "text":
            data = decode_transfer(raw[entity.body : entity.end], transfer_encoding(entity.fields))
            charset = _param(entity.params, b"charset")
            texts.append(decode_text(data, charset.decode("ascii", "replace") if charset else None))
    return "\n".join(texts)
