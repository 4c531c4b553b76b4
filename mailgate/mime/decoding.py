"""Decoding MIME text: charsets, RFC 2047 encoded-words and transfer encodings (RFC 2045 §6).

Input is untrusted: nothing here raises on malformed bytes; what cannot be decoded is replaced
or skipped.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["decode_text", "decode_transfer", "decode_words", "encode_utf8"]


def encode_utf8(value: str) -> bytes:
    try:  # surrogateescape gives back the bytes of a str decoded with it
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def decode_text(data: bytes, charset: str | None) -> str:
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


def decode_words(value: bytes) -> str:
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
            out.append(decode_text(bytes(pending), charset))
            pending.clear()
        if not adjacent:
            out.append(gap.decode("utf-8", "replace"))
        charset = word_charset
        if m.group(2) in b"bB":
            pending += _b64decode(m.group(3))
        else:
            pending += binascii.a2b_qp(m.group(3), header=True)
        pos = m.end()
    out.append(decode_text(bytes(pending), charset))
    out.append(value[pos:].decode("utf-8", "replace"))
    return "".join(out)


def decode_transfer(data: bytes, encoding: bytes) -> bytes:
    # RFC 2045 §6: anything but base64 and quoted-printable is the octets as they are.
    if encoding == b"base64":
        return _b64decode(data)
    if encoding == b"quoted-printable":
        return decode_quoted_printable(data)
    return data


_QP_OCTET = re.compile(rb"=([0-9A-Fa-f]{2})")
_LINE_BREAK = re.compile(rb"(\r?\n)")


def _octet(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def decode_quoted_printable(data: bytes) -> bytes:
    """Quoted-printable as RFC 2045 §6.7 has it (binascii.a2b_qp keeps the trailing white space
    of a line, which is transport padding, and misses "=" followed by it as a soft break).
    Line breaks are kept as they come, CRLF or a bare LF."""
    pieces = _LINE_BREAK.split(data)  # line, break, line, break, ..., line
    out: list[bytes] = []
    for i in range(0, len(pieces), 2):
        line = pieces[i].rstrip(b" \t")
        soft = line.endswith(b"=")
        out.append(_QP_OCTET.sub(_octet, line[:-1] if soft else line))
        if not soft and i + 1 < len(pieces):
            out.append(pieces[i + 1])
    return b"".join(out)
