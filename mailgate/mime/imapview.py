"""The IMAP view of a message, computed once at ingest: message bytes in, IMAP wire values out.

Everything IMAP FETCH needs often (size, ENVELOPE, BODY, BODYSTRUCTURE, a map of part offsets)
is computed here once, so a FETCH never parses a message again. Section fetches are then byte
slices of the stored message located through the part map. IMAP's string syntax (quoted,
literal, NIL) lives here too: the one place that encodes IMAP strings below the IMAP package.

The rules come from RFC 3501 §6.4.5 (section numbers), §7.4.2 (ENVELOPE, BODYSTRUCTURE) and
§4.3 (strings). Input is untrusted: nothing here may raise on malformed bytes.

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
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from mailgate.mime.addresses import Address, parse_addresses
from mailgate.mime.decoding import decode_quoted_printable, decode_words, encode_utf8
from mailgate.mime.headers import (
    MAX_STRUCTURED,
    first_fields,
    header_fields,
    msg_ids,
    strip_comments,
)
from mailgate.mime.parts import TOKEN, Entity, Params, mime_value, parse, transfer_encoding

__all__ = [
    "MAX_REFERENCES",
    "NIL",
    "MessageIndex",
    "UnknownTransferEncoding",
    "binary_section",
    "extract_section",
    "index_message",
    "nstring",
    "quoted",
    "string",
    "utf8_quoted",
]

NIL = b"NIL"
_MULTIPART = 1  # part-map tags
_MESSAGE = 2

# ---------------------------------------------------------------------------------------------
# IMAP string encoders (RFC 3501 §4.3)

_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
# RFC 6855 §3: a client that enabled UTF8=ACCEPT takes UTF-8 in quoted strings.
_NEEDS_LITERAL_UTF8 = re.compile(rb"[\x00\r\n]")


def quoted(value: bytes) -> bytes:
    """A quoted string; the caller guarantees no CR, LF or NUL, and 8-bit bytes only as UTF-8
    to a client that takes them."""
    if b"\\" in value or b'"' in value:
        value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + value + b'"'


def string(value: bytes | str, *, utf8: bool = False) -> bytes:
    """A quoted string when it can be one, else a literal (which may carry any octet).
    `utf8`: the client takes UTF-8 in quoted strings, and `value` is valid UTF-8."""
    if isinstance(value, str):
        value = encode_utf8(value)
    needs_literal = _NEEDS_LITERAL_UTF8 if utf8 else _NEEDS_LITERAL
    if len(value) < 1000 and needs_literal.search(value) is None:
        return quoted(value)
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | str | None) -> bytes:
    return NIL if value is None else string(value)


def utf8_quoted(wire: bytes) -> bytes:
    """Wire values built at ingest (ENVELOPE, BODYSTRUCTURE) for a client that takes UTF-8 in
    quoted strings (RFC 6855 §3): each literal that is short, valid UTF-8 and free of CR, LF
    and NUL becomes a quoted string, as Dovecot answers such a client. A quoted string never
    holds CRLF, so every "}" CRLF outside literal data ends a literal's "{n}"."""
    if b"}\r\n" not in wire:
        return wire
    out: list[bytes] = []
    pos = 0
    while (mark := wire.find(b"}\r\n", pos)) >= 0:
        brace = wire.rfind(b"{", pos, mark)
        end = mark + 3 + int(wire[brace + 1 : mark])
        data = wire[mark + 3 : end]
        out.append(wire[pos:brace])
        out.append(quoted(data) if _quotable_utf8(data) else wire[brace:end])
        pos = end
    out.append(wire[pos:])
    return b"".join(out)


def _quotable_utf8(data: bytes) -> bool:
    if len(data) >= 1000 or _NEEDS_LITERAL_UTF8.search(data) is not None:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# ENVELOPE, BODY, BODYSTRUCTURE (RFC 3501 §7.4.2)


def _address_wire(addresses: list[Address]) -> bytes:
    if not addresses:
        return NIL
    items = [
        b"(%s %s %s %s)" % (nstring(a.name), nstring(a.route), nstring(a.mailbox), nstring(a.host))
        for a in addresses
    ]
    return b"(" + b"".join(items) + b")"


def _envelope(fields: dict[bytes, bytes]) -> bytes:
    def addresses(name: bytes) -> list[Address]:
        value = fields.get(name)
        return [] if value is None else parse_addresses(value)

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
    main, params = mime_value(value)
    if not TOKEN.match(main):
        return NIL
    return b"(%s %s)" % (string(main.lower()), _params_wire(params))


def _language_wire(value: bytes | None) -> bytes:
    # RFC 3282 lists language tags separated by commas; body-fld-lang is a list of strings.
    if value is None:
        return NIL
    tags = [t.strip() for t in strip_comments(value[:MAX_STRUCTURED]).split(b",") if t.strip()]
    return b"(%s)" % b" ".join(string(t) for t in tags) if tags else NIL


def _extension(entity: Entity) -> list[bytes]:
    fields = entity.fields
    return [
        _disposition_wire(fields.get(b"content-disposition")),
        _language_wire(fields.get(b"content-language")),
        nstring(fields.get(b"content-location")),
    ]


def _structures(entity: Entity, raw: bytes) -> tuple[bytes, bytes]:
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
            string(transfer_encoding(fields)),
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


def _part_map(entity: Entity) -> list[Any]:
    node: list[Any] = [entity.start, entity.body, entity.end]
    if entity.children:
        node.append(_MULTIPART)
        node.extend(_part_map(c) for c in entity.children)
    elif entity.message is not None:
        node += [_MESSAGE, _part_map(entity.message)]
    return node


# ---------------------------------------------------------------------------------------------
# The index


# References kept per message: the last ones, as they are the nearest ancestors. Threading needs
# no more (RFC 5256 §2.2 links a message to its parent, and each ancestor to the one before).
MAX_REFERENCES = 100


@dataclass(frozen=True, slots=True)
class MessageIndex:
    """What the store keeps per message so that FETCH (and threading) never parses it again."""

    size: int
    header: bytes
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: bytes
    sent_date: datetime.datetime | None
    message_id: str | None  # the Message-ID field as found, unfolded
    in_reply_to: str | None  # the first msg-id of In-Reply-To, "<id@host>"
    references: tuple[str, ...]  # the msg-ids of References, oldest first, "<id@host>" each
    subject: str | None  # unfolded and RFC 2047-decoded


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
    top = parse(raw)
    body, bodystructure = _structures(top, raw)
    message_id = top.fields.get(b"message-id")
    in_reply_to = msg_ids(top.fields.get(b"in-reply-to", b"")[:MAX_STRUCTURED])
    # The tail of a long References field holds the nearest ancestors: bound it from the end.
    references = msg_ids(top.fields.get(b"references", b"")[-MAX_STRUCTURED:])
    subject = top.fields.get(b"subject")
    return MessageIndex(
        size=len(raw),
        header=raw[: top.body],
        envelope=_envelope(top.fields),
        body=body,
        bodystructure=bodystructure,
        parts=json.dumps(_part_map(top), separators=(",", ":")).encode("ascii"),
        sent_date=_sent_date(top.fields.get(b"date")),
        message_id=message_id.decode("utf-8", "replace") if message_id else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references[-MAX_REFERENCES:]),
        subject=None if subject is None else _no_nul(decode_words(subject)),
    )


def _no_nul(text: str) -> str:
    # An encoded-word may decode to NUL, which no text column (nor IMAP string) may hold.
    return text.replace("\x00", "\ufffd")


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
    node = _part_at(top, part)
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


def _part_at(top: _Node, part: tuple[int, ...]) -> _Node | None:
    """The node of a non-empty part number (1.2.3) in a message's part map; None if absent."""
    node: _Node | None = _message_part(top, part[0])
    for number in part[1:]:
        if node is None:
            return None
        node = _subpart(node, number)
    return node


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
# Decoded sections (RFC 3516 BINARY)


class UnknownTransferEncoding(ValueError):
    """A part's Content-Transfer-Encoding is not one we know, or its content does not decode
    (RFC 3516 §4.3: the server answers NO [UNKNOWN-CTE])."""


_CTE = frozenset({b"content-transfer-encoding"})
_IDENTITY = frozenset({b"", b"7bit", b"8bit", b"binary"})


def binary_section(raw: bytes, parts: bytes, part: tuple[int, ...]) -> bytes | None:
    """The content of BINARY[part]: a leaf part's body with its transfer encoding undone; the
    whole message for ``()``, and a multipart or message/rfc822 part as it is (only leaves are
    encoded, RFC 2045 §6.4). None when the part does not exist."""
    if not part:
        return raw
    node = _part_at(json.loads(parts), part)
    if node is None:
        return None
    start, body, end = node[0], node[1], node[2]
    content = raw[body:end]
    if len(node) > 3:
        return content
    value = first_fields(raw[start:body], _CTE).get(b"content-transfer-encoding", b"")
    encoding = strip_comments(value[:MAX_STRUCTURED]).strip().lower()
    if encoding in _IDENTITY:
        return content
    if encoding == b"quoted-printable":
        return decode_quoted_printable(content)
    if encoding == b"base64":
        try:
            return binascii.a2b_base64(content)
        except binascii.Error:
            raise UnknownTransferEncoding("The part's base64 content is broken") from None
    raise UnknownTransferEncoding("The part's Content-Transfer-Encoding is unknown")
