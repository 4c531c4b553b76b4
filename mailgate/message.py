"""Pure MIME indexing: message bytes in, IMAP wire values out.

Everything IMAP FETCH needs often (size, ENVELOPE, BODY, BODYSTRUCTURE, a map of part offsets)
is computed here once, at ingest, so a FETCH never parses a message again. Section fetches are
then byte slices of the stored message located through the part map.

The rules come from RFC 3501 §6.4.5 (section numbers), §7.4.2 (ENVELOPE, BODYSTRUCTURE),
RFC 5322 (header fields, addresses), RFC 2045/2046 (MIME entities, boundaries), RFC 2047
(encoded-words) and RFC 2231 (parameter continuations). Input is untrusted: nothing here may
raise on malformed bytes, and nesting depth and part count are bounded.

The part map (``MessageIndex.parts``) is compact JSON. Each entity is a list
``[start, body, end]`` of absolute offsets into the message: its header is ``raw[start:body]``
(including the blank line), its body ``raw[body:end]``. A multipart appends ``1`` and its
children, a message/rfc822 part appends ``2`` and the encapsulated message (whose own
``start`` is the part's ``body``). The top-level entity is the message itself.
"""

from __future__ import annotations

import binascii
import datetime
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

__all__ = [
    "MessageIndex",
    "address_list",
    "body_text",
    "extract_section",
    "header_fields",
    "header_values",
    "index_message",
    "normalize_crlf",
    "nstring",
    "quoted",
    "string",
]

# Hostile input bounds: deeper or further entities are indexed as opaque text/plain leaves.
MAX_DEPTH = 50
MAX_PARTS = 10_000
# Only this much of a structured field (addresses, Content-*) is parsed: Postfix's default
# header_size_limit, so nothing longer reaches us from a well-behaved relay anyway.
MAX_STRUCTURED = 102_400
# Lines that start like a delimiter but are not one cost a check each; past this many in one
# message, scanning of the multipart at hand stops as if its close delimiter were missing.
MAX_FALSE_DELIMITERS = 100_000

NIL = b"NIL"
_MULTIPART = 1  # part-map tags
_MESSAGE = 2

# ---------------------------------------------------------------------------------------------
# IMAP string encoders (RFC 3501 §4.3)

_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")


def quoted(value: bytes) -> bytes:
    """A quoted string; the caller guarantees no CR, LF, NUL or 8-bit bytes."""
    if b"\\" in value or b'"' in value:
        value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + value + b'"'


def string(value: bytes | str) -> bytes:
    """A quoted string when it can be one, else a literal (which may carry any octet)."""
    if isinstance(value, str):
        value = _utf8(value)
    if len(value) < 1000 and _NEEDS_LITERAL.search(value) is None:
        return quoted(value)
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | str | None) -> bytes:
    return NIL if value is None else string(value)


def _utf8(value: str) -> bytes:
    try:  # surrogateescape gives back the bytes of a str decoded with it
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Line endings


def normalize_crlf(raw: bytes) -> bytes:
    """Bare LF and bare CR become CRLF: IMAP counts sizes and lines in CRLF (RFC 3501 §2.3.1)."""
    if b"\r" not in raw:
        return raw.replace(b"\n", b"\r\n") if b"\n" in raw else raw
    if raw.count(b"\r\n") == raw.count(b"\r") == raw.count(b"\n"):
        return raw
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


# ---------------------------------------------------------------------------------------------
# Header sections (RFC 5322 §2.2)

# A field is a name, a colon, and the rest of its line plus continuation lines (those that start
# with WSP). RFC 822 allowed WSP before the colon, so we accept it.
_FIELD = re.compile(rb"^([^\x00-\x20\x7f:]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.M)

# Header fields the index needs; only these are unfolded.
_WANTED = frozenset(
    b"date subject from sender reply-to to cc bcc in-reply-to message-id content-type"
    b" content-transfer-encoding content-id content-description content-md5"
    b" content-disposition content-language content-location".split()
)


def _body_offset(raw: bytes, start: int, end: int) -> int:
    """Where the body of the entity raw[start:end] begins (just after the blank line).

    Without a blank line the whole entity is header and the body is empty.
    """
    if raw.startswith(b"\r\n", start, end):  # no header fields at all
        return start + 2
    i = raw.find(b"\r\n\r\n", start, end)
    return end if i < 0 else i + 4


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header section with its blank line, body) of a CRLF-normalized message."""
    cut = _body_offset(raw, 0, len(raw))
    return raw[:cut], raw[cut:]


def _unfold(value: bytes) -> bytes:
    # RFC 5322 §2.2.3: unfolding removes each CRLF that precedes WSP.
    return value.replace(b"\r\n", b"").strip()


def _no_nul(value: bytes) -> bytes:
    # No IMAP string may carry NUL, not even a literal (CHAR8, RFC 3501 §9).
    return value.replace(b"\x00", b"\x80") if b"\x00" in value else value


def _header_dict(header: bytes) -> dict[bytes, bytes]:
    """The first occurrence of each wanted field, lower-case name -> unfolded raw value."""
    found: dict[bytes, bytes] = {}
    for m in _FIELD.finditer(header):
        name = m.group(1).lower()
        if name in _WANTED and name not in found:
            found[name] = _no_nul(_unfold(m.group(2)))
    return found


@lru_cache(maxsize=256)
def _fields_pattern(fields: tuple[str, ...]) -> re.Pattern[bytes] | None:
    names = [re.escape(_utf8(f)) for f in fields if f]
    if not names:
        return None
    return re.compile(
        rb"^(?:" + b"|".join(names) + rb")[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*(?:\n|\Z)",
        re.M | re.I,
    )


def header_fields(header: bytes, fields: tuple[str, ...], exclude: bool = False) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT (RFC 3501 §6.4.5) on a raw header section.

    Matching fields keep their original bytes and order and are followed by the blank line
    that ends a header.
    """
    pattern = _fields_pattern(tuple(fields))
    if exclude:
        kept = header if pattern is None else pattern.sub(b"", header)
        if kept.endswith(b"\r\n\r\n") or kept == b"\r\n":
            return kept
        if not kept:
            return b"\r\n"
        return kept + (b"\r\n" if kept.endswith(b"\r\n") else b"\r\n\r\n")
    if pattern is None:
        return b"\r\n"
    matched = b"".join(pattern.findall(header))
    if matched and not matched.endswith(b"\n"):  # last field of a header without a blank line
        matched += b"\r\n"
    return matched + b"\r\n"


def _field_values(header: bytes, name: str) -> list[bytes]:
    pattern = _fields_pattern((name,))
    if pattern is None:
        return []
    return [_unfold(m.partition(b":")[2]) for m in pattern.findall(header)]


def header_values(header: bytes, name: str) -> list[str]:
    """Every occurrence of a field, unfolded and RFC 2047-decoded, for SEARCH."""
    return [_decode_words(v) for v in _field_values(header, name)]


# ---------------------------------------------------------------------------------------------
# Text decoding: charsets, RFC 2047 encoded-words, transfer encodings


def _decode_text(data: bytes, charset: str | None) -> str:
    """Decode with a MIME charset; unknown or unusable charsets fall back to UTF-8.

    US-ASCII is read as UTF-8 too: mislabelled 8-bit text is common and UTF-8 is a superset.
    """
    if charset and charset.lower() not in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    return data.decode("utf-8", "replace")


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _b64decode(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # bad padding or a stray quad: keep what can be decoded
        clean = _B64_JUNK.sub(b"", data)
        rest = len(clean) % 4
        clean = clean[:-1] if rest == 1 else clean + b"=" * ((4 - rest) % 4)
        try:
            return binascii.a2b_base64(clean)
        except binascii.Error:
            return b""


_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _decode_words(value: bytes) -> str:
    """RFC 2047 decoding that never raises.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 §6.2), and adjacent words
    in one charset are decoded together so a character split across two words survives.
    """
    if b"=?" not in value:
        return value.decode("utf-8", "replace")
    out: list[str] = []
    pending = bytearray()  # decoded octets of the current run of adjacent words, one charset
    charset: str | None = None
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        word_charset = m.group(1).split(b"*", 1)[0].decode("ascii", "replace")  # RFC 2231 §5
        adjacent = pos > 0 and not gap.strip()  # pos > 0: a word came before
        if not adjacent or word_charset != charset:
            out.append(_decode_text(bytes(pending), charset))
            pending.clear()
        if not adjacent:
            out.append(gap.decode("utf-8", "replace"))
        charset = word_charset
        if m.group(2) in b"bB":
            pending += _b64decode(m.group(3))
        else:
            pending += binascii.a2b_qp(m.group(3), header=True)
        pos = m.end()
    out.append(_decode_text(bytes(pending), charset))
    out.append(value[pos:].decode("utf-8", "replace"))
    return "".join(out)


def _decode_transfer(data: bytes, encoding: bytes) -> bytes:
    # RFC 2045 §6: anything but base64 and quoted-printable is the octets as they are.
    if encoding == b"base64":
        return _b64decode(data)
    if encoding == b"quoted-printable":
        return binascii.a2b_qp(data)
    return data


# ---------------------------------------------------------------------------------------------
# MIME header values: Content-Type and friends (RFC 2045 §5.1, RFC 2183, RFC 2231)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_PARAM_PIECE = re.compile(rb'(?:[^;"]+|"[^"\\]*(?:\\.[^"\\]*)*"?)+', re.S)
_RFC2231_NAME = re.compile(rb"(.+?)\*(\d{1,3})?(\*)?\Z", re.S)
_ESCAPED = re.compile(rb"\\(.)", re.S)

Params = list[tuple[bytes, bytes]]


_COMMENT_SPECIALS = re.compile(rb'[()"\\]')


def _strip_comments(value: bytes) -> bytes:
    """Replace RFC 5322 comments (nested parentheses) outside quoted strings with a space."""
    if b"(" not in value:
        return value
    out: list[bytes] = []
    depth = 0
    in_quote = False
    kept_from = 0
    escaped_until = -1
    for m in _COMMENT_SPECIALS.finditer(value):
        i = m.start()
        if i < escaped_until:
            continue
        c = value[i]
        if c == 0x5C:  # quoted-pair: the next byte is literal
            escaped_until = i + 2
        elif in_quote:
            in_quote = c != 0x22
        elif depth == 0:
            if c == 0x22:
                in_quote = True
            elif c == 0x28:
                out.append(value[kept_from:i] + b" ")
                depth = 1
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                kept_from = i + 1
    if depth == 0:
        out.append(value[kept_from:])
    return b"".join(out)


def _unquote(value: bytes) -> bytes:
    if not value.startswith(b'"'):
        return value
    value = value[1:-1] if len(value) > 1 and value.endswith(b'"') else value[1:]
    return _ESCAPED.sub(rb"\1", value) if b"\\" in value else value


def _mime_value(value: bytes) -> tuple[bytes, Params]:
    """Split ``main; a=b; c="d"`` into the main value and its merged parameters."""
    pieces = _PARAM_PIECE.findall(_strip_comments(value[:MAX_STRUCTURED]))
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
        value = _unquote(value.strip())
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
        data = bytearray(_decode_text(bytes(data), charset).encode("utf-8", "replace"))
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
    main, params = _mime_value(value)
    mtype, slash, subtype = main.partition(b"/")
    mtype, subtype = mtype.strip(), subtype.strip()
    if not slash or not _TOKEN.match(mtype) or not _TOKEN.match(subtype):
        return _text_plain()
    mtype_s = mtype.decode("ascii").lower()
    if mtype_s == "text" and _param(params, b"charset") is None:
        params = [(b"charset", b"us-ascii"), *params]
    return mtype_s, subtype.decode("ascii").lower(), params


# ---------------------------------------------------------------------------------------------
# The MIME tree (RFC 2046 §5)


@dataclass(slots=True)
class _Entity:
    """One MIME entity: header raw[start:body], body raw[body:end]."""

    start: int
    body: int
    end: int
    mtype: str
    subtype: str
    params: Params
    fields: dict[bytes, bytes]
    children: list[_Entity] = field(default_factory=list)
    message: _Entity | None = None  # the encapsulated message of a message/rfc822 part

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

    def entity(self, start: int, end: int, depth: int, default: tuple[str, str]) -> _Entity:
        raw = self.raw
        body = _body_offset(raw, start, end)
        fields = _header_dict(raw[start:body])
        mtype, subtype, params = _content_type(fields.get(b"content-type"), default)
        entity = _Entity(start, body, end, mtype, subtype, params, fields)
        self.count += 1
        if mtype == "multipart":
            self._multipart(entity, depth)
        elif mtype == "message" and subtype == "rfc822":
            self._message(entity, depth)
        return entity

    def _multipart(self, entity: _Entity, depth: int) -> None:
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

    def _message(self, entity: _Entity, depth: int) -> None:
        if depth >= MAX_DEPTH or self.count >= MAX_PARTS:
            entity.make_opaque()
        else:
            entity.message = self.entity(entity.body, entity.end, depth + 1, ("text", "plain"))


def _parse(raw: bytes) -> _Entity:
    return _Parser(raw).entity(0, len(raw), 0, ("text", "plain"))


# ---------------------------------------------------------------------------------------------
# Addresses (RFC 5322 §3.4) as IMAP wants them (RFC 3501 §7.4.2)


class _Address(NamedTuple):
    name: bytes | None  # raw display name, quotes removed, encoded-words kept
    mailbox: bytes | None
    host: bytes | None
    group: bool = False  # a group start (mailbox = group name) or end (all None) marker


_ADDR_TOKEN = re.compile(
    rb"""
      (?P<ws>[ \t\r\n]+)
    | (?P<quoted>"[^"\\]*(?:\\.[^"\\]*)*"?)
    | (?P<angle><[^>]*>?)
    | (?P<special>[,:;])
    | (?P<word>[^ \t\r\n"<(,:;]+)
    | (?P<comment>\()
    """,
    re.S | re.X,
)

_Token = tuple[str, bytes]


def _comment_end(value: bytes, pos: int) -> int:
    """End of the (possibly nested, possibly unterminated) comment starting at value[pos]."""
    depth = 0
    i = pos
    n = len(value)
    while i < n:
        c = value[i]
        if c == 0x5C:  # quoted-pair
            i += 1
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _address_tokens(value: bytes) -> Iterator[_Token]:
    pos = 0
    n = len(value)
    while pos < n:
        m = _ADDR_TOKEN.match(value, pos)
        if m is None:  # cannot happen: every byte starts some token; stay safe anyway
            break
        kind = m.lastgroup or "word"
        if kind == "comment":
            end = _comment_end(value, pos)
            yield "comment", value[pos + 1 : end].removesuffix(b")")
            pos = end
            continue
        yield kind, m.group(0)
        pos = m.end()


def _phrase(tokens: list[_Token]) -> bytes | None:
    """A display name: words and dequoted strings, joined by one space where CFWS was."""
    words: list[bytes] = []
    space = False
    for kind, text in tokens:
        if kind in ("ws", "comment"):
            space = True
        elif kind in ("word", "quoted"):
            if words and space:
                words.append(b" ")
            words.append(_unquote(text) if kind == "quoted" else text)
            space = False
    return b"".join(words) or None


def _mailbox(tokens: list[_Token]) -> _Address | None:
    """One mailbox: ``name <addr>``, ``addr`` or ``addr (name)``."""
    angle = next((i for i, (kind, _) in enumerate(tokens) if kind == "angle"), None)
    comments = [text for kind, text in tokens if kind == "comment"]
    if angle is not None:
        name = _phrase(tokens[:angle])
        addr = tokens[angle][1][1:].removesuffix(b">").strip()
        if addr.startswith(b"@") and b":" in addr:  # obsolete route: adl is reported as NIL
            addr = addr.partition(b":")[2].strip()
    else:
        name = None
        addr = b"".join(text for kind, text in tokens if kind in ("word", "quoted"))
    if name is None and comments:  # "user@host (Real Name)", as Dovecot reads it
        name = comments[-1].strip() or None
    if not addr and name is None:
        return None
    mailbox, at, host = addr.rpartition(b"@")
    if not at:
        return _Address(name, addr, None)
    return _Address(name, mailbox, host or None)


def _parse_addresses(value: bytes) -> list[_Address]:
    """An address list with RFC 5322 §3.4 groups kept as IMAP group markers."""
    out: list[_Address] = []
    current: list[_Token] = []
    in_group = False

    def flush() -> None:
        address = _mailbox(current)
        if address is not None:
            out.append(address)
        current.clear()

    for kind, text in _address_tokens(value[:MAX_STRUCTURED]):
        if kind != "special":
            current.append((kind, text))
        elif text == b":" and not in_group:
            out.append(_Address(None, _phrase(current) or b"", None, group=True))
            current.clear()
            in_group = True
        elif text == b";":
            flush()
            if in_group:
                out.append(_Address(None, None, None, group=True))
                in_group = False
        elif text == b",":
            flush()
    flush()
    if in_group:  # unterminated group
        out.append(_Address(None, None, None, group=True))
    return out


def _address_wire(addresses: list[_Address]) -> bytes:
    if not addresses:
        return NIL
    items = [
        b"(%s NIL %s %s)" % (nstring(a.name), nstring(a.mailbox), nstring(a.host))
        for a in addresses
    ]
    return b"(" + b"".join(items) + b")"


def address_list(header: bytes, name: str) -> list[tuple[str, str]]:
    """(decoded display name, addr-spec) for every mailbox in every occurrence of a field.

    Group markers are dropped, their members kept.
    """
    result: list[tuple[str, str]] = []
    for value in _field_values(header, name):
        for a in _parse_addresses(value):
            if a.group:
                continue
            display = _decode_words(a.name) if a.name is not None else ""
            addr = a.mailbox or b""
            if a.host is not None:
                addr += b"@" + a.host
            result.append((display, addr.decode("utf-8", "replace")))
    return result


# ---------------------------------------------------------------------------------------------
# ENVELOPE, BODY, BODYSTRUCTURE (RFC 3501 §7.4.2)


def _envelope(fields: dict[bytes, bytes]) -> bytes:
    def addresses(name: bytes) -> list[_Address]:
        value = fields.get(name)
        return [] if value is None else _parse_addresses(value)

    from_ = addresses(b"from")
    # "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or are present but
    # empty, the server sets the corresponding member of the envelope to be the same value as
    # the from member."
    sender = addresses(b"sender") or from_
    reply_to = addresses(b"reply-to") or from_
    return b"(%s)" % b" ".join(
        [
            nstring(fields.get(b"date")),
            nstring(fields.get(b"subject")),
            _address_wire(from_),
            _address_wire(sender),
            _address_wire(reply_to),
            _address_wire(addresses(b"to")),
            _address_wire(addresses(b"cc")),
            _address_wire(addresses(b"bcc")),
            nstring(fields.get(b"in-reply-to")),
            nstring(fields.get(b"message-id")),
        ]
    )


def _params_wire(params: Params) -> bytes:
    if not params:
        return NIL
    return b"(%s)" % b" ".join(string(k) + b" " + string(v) for k, v in params)


def _disposition_wire(value: bytes | None) -> bytes:
    # RFC 2183; body-fld-dsp = "(" string SP body-fld-param ")" / nil
    if value is None:
        return NIL
    main, params = _mime_value(value)
    if not _TOKEN.match(main):
        return NIL
    return b"(%s %s)" % (string(main.lower()), _params_wire(params))


def _language_wire(value: bytes | None) -> bytes:
    # RFC 3282 lists language tags separated by commas; body-fld-lang is a list of strings.
    if value is None:
        return NIL
    tags = [t.strip() for t in _strip_comments(value[:MAX_STRUCTURED]).split(b",") if t.strip()]
    return b"(%s)" % b" ".join(string(t) for t in tags) if tags else NIL


def _encoding(fields: dict[bytes, bytes]) -> bytes:
    value = fields.get(b"content-transfer-encoding", b"")[:MAX_STRUCTURED]
    value = _strip_comments(value).strip()
    # RFC 2045 §6.1: 7bit is the default; an invalid value is treated like a missing one.
    return value.lower() if _TOKEN.match(value) else b"7bit"


def _extension(entity: _Entity) -> list[bytes]:
    fields = entity.fields
    return [
        _disposition_wire(fields.get(b"content-disposition")),
        _language_wire(fields.get(b"content-language")),
        nstring(fields.get(b"content-location")),
    ]


def _structures(entity: _Entity, raw: bytes) -> tuple[bytes, bytes]:
    """(BODY, BODYSTRUCTURE) of one entity in one pass; they differ only in extension data."""
    if entity.children:  # body-type-mpart: parts, no separator, then SP subtype
        pairs = [_structures(c, raw) for c in entity.children]
        subtype = b" " + string(entity.subtype)
        extension = b" ".join([_params_wire(entity.params), *_extension(entity)])
        return (
            b"(" + b"".join(p[0] for p in pairs) + subtype + b")",
            b"(" + b"".join(p[1] for p in pairs) + subtype + b" " + extension + b")",
        )
    fields = entity.fields
    lines = b"%d" % raw.count(b"\n", entity.body, entity.end)  # LFs, as Dovecot counts them
    basic = b" ".join(
        [
            string(entity.mtype),
            string(entity.subtype),
            _params_wire(entity.params),
            nstring(fields.get(b"content-id")),
            nstring(fields.get(b"content-description")),
            string(_encoding(fields)),
            b"%d" % (entity.end - entity.body),
        ]
    )
    if entity.message is not None:  # body-type-msg: envelope, body, lines
        inner = entity.message
        envelope = _envelope(inner.fields)
        inner_body, inner_structure = _structures(inner, raw)
        body = b" ".join([basic, envelope, inner_body, lines])
        structure = b" ".join([basic, envelope, inner_structure, lines])
    elif entity.mtype == "text":  # body-type-text: lines
        body = structure = basic + b" " + lines
    else:
        body = structure = basic
    extension = b" ".join([nstring(fields.get(b"content-md5")), *_extension(entity)])
    return b"(" + body + b")", b"(" + structure + b" " + extension + b")"


def _part_map(entity: _Entity) -> list[Any]:
    node: list[Any] = [entity.start, entity.body, entity.end]
    if entity.children:
        node.append(_MULTIPART)
        node.extend(_part_map(c) for c in entity.children)
    elif entity.message is not None:
        node += [_MESSAGE, _part_map(entity.message)]
    return node


# ---------------------------------------------------------------------------------------------
# The index


@dataclass(frozen=True, slots=True)
class MessageIndex:
    """What the store keeps per message so that FETCH never parses it again."""

    size: int
    header: bytes
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: bytes
    sent_date: datetime.datetime | None
    message_id: str | None


def _sent_date(value: bytes | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        date = parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # RFC 5322 §3.3: "-0000" means the zone is unknown; the instant is still UTC-based.
    return date if date.tzinfo is not None else date.replace(tzinfo=datetime.UTC)


def index_message(raw: bytes) -> MessageIndex:
    """Everything IMAP FETCH needs from a (CRLF-normalized) message, in wire form."""
    top = _parse(raw)
    body, bodystructure = _structures(top, raw)
    message_id = top.fields.get(b"message-id")
    return MessageIndex(
        size=len(raw),
        header=raw[: top.body],
        envelope=_envelope(top.fields),
        body=body,
        bodystructure=bodystructure,
        parts=json.dumps(_part_map(top), separators=(",", ":")).encode("ascii"),
        sent_date=_sent_date(top.fields.get(b"date")),
        message_id=message_id.decode("utf-8", "replace") if message_id else None,
    )


# ---------------------------------------------------------------------------------------------
# Sections (RFC 3501 §6.4.5)

_Node = list[Any]


def _message_part(message: _Node, number: int) -> _Node | None:
    """Part `number` of a message: a multipart's child, or for any other message only part 1,
    which is the message's own body."""
    if len(message) > 3 and message[3] == _MULTIPART:
        return message[3 + number] if 1 <= number <= len(message) - 4 else None
    return message if number == 1 else None


def _subpart(node: _Node, number: int) -> _Node | None:
    if len(node) > 3 and node[3] == _MULTIPART:
        return node[3 + number] if 1 <= number <= len(node) - 4 else None
    if len(node) > 3 and node[3] == _MESSAGE:  # numbers go on inside the encapsulated message
        return _message_part(node[4], number)
    return None


def extract_section(
    raw: bytes,
    parts: bytes,
    part: tuple[int, ...],
    specifier: str,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """The bytes of BODY[section], or None when the section does not exist.

    Everything but HEADER.FIELDS[.NOT] is a slice of raw.
    """
    top: _Node = json.loads(parts)
    specifier = specifier.upper()
    if not part:
        if specifier == "":
            return raw
        return _message_section(raw, top, specifier, fields)
    node: _Node | None = _message_part(top, part[0])
    for number in part[1:]:
        if node is None:
            return None
        node = _subpart(node, number)
    if node is None:
        return None
    start, body, end = node[0], node[1], node[2]
    if specifier == "":
        return raw[body:end]
    if specifier == "MIME":
        return raw[start:body]
    if len(node) > 3 and node[3] == _MESSAGE:
        return _message_section(raw, node[4], specifier, fields)
    return None  # HEADER and TEXT address messages only


def _message_section(
    raw: bytes, message: _Node, specifier: str, fields: tuple[str, ...]
) -> bytes | None:
    start, body, end = message[0], message[1], message[2]
    if specifier == "HEADER":
        return raw[start:body]
    if specifier == "TEXT":
        return raw[body:end]
    if specifier in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return header_fields(raw[start:body], fields, exclude=specifier.endswith(".NOT"))
    return None


# ---------------------------------------------------------------------------------------------
# Search text


def body_text(raw: bytes) -> str:
    """The decoded text of every text/* part, encapsulated messages included, for SEARCH."""
    texts: list[str] = []
    stack = [_parse(raw)]
    while stack:
        entity = stack.pop()
        if entity.children:
            stack.extend(reversed(entity.children))
        elif entity.message is not None:
            stack.append(entity.message)
        elif entity.mtype == "text":
            data = _decode_transfer(raw[entity.body : entity.end], _encoding(entity.fields))
            charset = _param(entity.params, b"charset")
            texts.append(
                _decode_text(data, charset.decode("ascii", "replace") if charset else None)
            )
    return "\n".join(texts)
