"""RFC 5322 header sections: line ends, where the header ends, finding and unfolding fields, and
the lexical pieces of structured field values (comments, quoted strings, msg-ids).

Input is untrusted: nothing here raises on malformed bytes.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailgate.mime.decoding import decode_words, encode_utf8

__all__ = [
    "MAX_STRUCTURED",
    "all_fields",
    "body_offset",
    "field_values",
    "first_fields",
    "header_fields",
    "header_values",
    "msg_ids",
    "normalize_crlf",
    "split_header",
    "strip_comments",
    "unquote",
]

# Only this much of a structured field (addresses, Content-*) is parsed: Postfix's default
# header_size_limit, so nothing longer reaches us from a well-behaved relay anyway.
MAX_STRUCTURED = 102_400

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


def body_offset(raw: bytes, start: int, end: int) -> int:
    """Where the body of the entity raw[start:end] begins (just after the blank line).

    Without a blank line the whole entity is header and the body is empty.
    """
    if raw.startswith(b"\r\n", start, end):  # no header fields at all
        return start + 2
    i = raw.find(b"\r\n\r\n", start, end)
    return end if i < 0 else i + 4


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header section with its blank line, body) of a CRLF-normalized message."""
    cut = body_offset(raw, 0, len(raw))
    return raw[:cut], raw[cut:]


def _unfold(value: bytes) -> bytes:
    # RFC 5322 §2.2.3: unfolding removes each CRLF that precedes WSP.
    return value.replace(b"\r\n", b"").strip()


def first_fields(header: bytes, names: frozenset[bytes]) -> dict[bytes, bytes]:
    """The first occurrence of each named field (lower-case names) -> its unfolded raw value."""
    found: dict[bytes, bytes] = {}
    for m in _FIELD.finditer(header):
        name = m.group(1).lower()
        if name in names and name not in found:
            found[name] = _unfold(m.group(2))
    return found


def fields_by_name(header: bytes) -> dict[bytes, list[bytes]]:
    """Every field of a header section, in one pass: lower-case name -> its unfolded raw values
    in order. For callers that look up many names in one header (a SEARCH with many keys)."""
    found: dict[bytes, list[bytes]] = {}
    for m in _FIELD.finditer(header):
        found.setdefault(m.group(1).lower(), []).append(_unfold(m.group(2)))
    return found


def all_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """Every field of a header section in order: (name as written, unfolded raw value)."""
    return [(m.group(1), _unfold(m.group(2))) for m in _FIELD.finditer(header)]


@lru_cache(maxsize=256)
def _fields_pattern(fields: tuple[str, ...]) -> re.Pattern[bytes] | None:
    names = [re.escape(encode_utf8(f)) for f in fields if f]
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


def field_values(header: bytes, name: str) -> list[bytes]:
    """Every occurrence of a field, unfolded, as raw bytes."""
    pattern = _fields_pattern((name,))
    if pattern is None:
        return []
    return [_unfold(m.partition(b":")[2]) for m in pattern.findall(header)]


def header_values(header: bytes, name: str) -> list[str]:
    """Every occurrence of a field, unfolded and RFC 2047-decoded, for SEARCH."""
    return [decode_words(v) for v in field_values(header, name)]


# ---------------------------------------------------------------------------------------------
# Structured field values: comments and quoted strings (RFC 5322 §3.2.2, §3.2.4)

_COMMENT_SPECIALS = re.compile(rb'[()"\\]')
_ESCAPED = re.compile(rb"\\(.)", re.S)


def strip_comments(value: bytes) -> bytes:
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


def unquote(value: bytes) -> bytes:
    """The content of a quoted string, quoted-pairs resolved; other values as they are."""
    if not value.startswith(b'"'):
        return value
    value = value[1:-1] if len(value) > 1 and value.endswith(b'"') else value[1:]
    return _ESCAPED.sub(rb"\1", value) if b"\\" in value else value


# ---------------------------------------------------------------------------------------------
# Identification fields: Message-ID, In-Reply-To, References (RFC 5322 §3.6.4)

_MSG_ID = re.compile(rb"<([^<>]*)>")
_BARE_MSG_ID = re.compile(rb'[^\s<>()",;:@]+@[^\s<>()",;:@]+')
_WHITESPACE = re.compile(rb"\s+")


def msg_ids(value: bytes) -> list[str]:
    """The msg-ids of a field value, in order, each as ``<id-left@id-right>``.

    Comments and anything between the msg-ids are ignored, and whitespace inside one is dropped
    (obs-id-left allows CFWS around its dots). A value that is one bare ``id@host`` without
    angle brackets, as some senders write, is taken as one msg-id.
    """
    value = strip_comments(value)
    ids = [i for i in (_WHITESPACE.sub(b"", m) for m in _MSG_ID.findall(value)) if i]
    if not ids and (bare := _BARE_MSG_ID.fullmatch(value.strip())):
        ids = [bare.group(0)]
    return ["<" + i.decode("utf-8", "replace") + ">" for i in ids]


# RFC 5256 §2.1's "base subject", with the reply and forward prefixes mail clients write in other
# languages too (AW, SV, VS, WG, Antw…), and mailing-list tags in brackets.
_SUBJECT_PREFIX = re.compile(
    r"^(?:\s*(?:\[[^\]]{0,64}\]\s*)*(?:re|fwd?|aw|sv|vs|wg|antw|tr|rv|ref|r)\s*(?:\[\d+\])?\s*:)+",
    re.I,
)
_SUBJECT_TRAILER = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.I)
_SUBJECT_SPACE = re.compile(r"\s+")
_SUBJECT_TAGS = re.compile(r"^(?:\[[^\]]{0,64}\]\s*)+")


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(the subject without reply/forward prefixes and list tags, case-folded and with its
    whitespace collapsed; whether it had such a prefix): what threads group replies by."""
    if not subject:
        return "", False
    text = _SUBJECT_SPACE.sub(" ", subject).strip()
    stripped, prefixes = _SUBJECT_PREFIX.subn("", text)
    stripped, trailers = _SUBJECT_TRAILER.subn("", stripped)
    stripped = _SUBJECT_TAGS.sub("", stripped.strip())
    return stripped.casefold(), bool(prefixes or trailers)
