"""Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3), encoded and decoded, and the
UTF-8 names of sessions that enabled UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3, RFC 9051 §5.1)."""

from __future__ import annotations

import base64
import binascii

from mailgate.imap.syntax.values import InvalidMailboxName

_INVALID = "Mailbox name is not valid modified UTF-7"
_MB64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_MB64_VALUE = {c: i for i, c in enumerate(_MB64)}


def encode_mailbox(name: str) -> bytes:
    """``name`` in modified UTF-7, raw (the caller quotes it or sends it as a literal)."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode_mailbox(raw: bytes, *, utf8: bool = False) -> str:
    """Decode a mailbox name from modified UTF-7, or from UTF-8 when the session enabled UTF-8
    names (`utf8`: there "&" is just "&"); raises InvalidMailboxName if it is not valid.

    Names with 8-bit bytes are taken as UTF-8 in every session (what UTF8=ACCEPT clients send,
    and what some clients send anyway) and are not modified-UTF-7 decoded.
    """
    if utf8:
        return _decode_utf8(raw)
    if not raw.isascii():
        try:
            return _decode_utf8(raw)
        except InvalidMailboxName:
            raise InvalidMailboxName(_INVALID) from None
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c < 0x20 or c > 0x7E:  # only printable US-ASCII stands for itself
            raise InvalidMailboxName(_INVALID)
        if c != 0x26:  # "&"
            j = i + 1
            while j < n and raw[j] != 0x26 and 0x20 <= raw[j] <= 0x7E:
                j += 1
            out.append(bytes(raw[i:j]).decode("ascii"))
            i = j
            continue
        end = raw.find(b"-", i + 1)
        if end < 0:
            raise InvalidMailboxName(_INVALID)
        if end == i + 1:  # "&-" is "&"
            out.append("&")
        else:
            out.append(_decode_mb64(bytes(raw[i + 1 : end])))
        i = end + 1
    return "".join(out)


def decode_pattern(raw: bytes, *, utf8: bool = False) -> str:
    """A LIST/LSUB pattern: decoded like a name where it is valid modified UTF-7 (or UTF-8),
    else taken as it is (ASCII, or UTF-8 with bad bytes replaced). Such a pattern is legal
    (RFC 3501's list-mailbox) and simply matches no mailbox that could be named."""
    try:
        return decode_mailbox(raw, utf8=utf8)
    except InvalidMailboxName:
        return bytes(raw).decode("utf-8", "replace")


def _decode_utf8(raw: bytes) -> str:
    """A UTF-8 name, without control characters (RFC 6855 §3), which no name may hold."""
    try:
        name = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMailboxName("Mailbox name is not valid UTF-8") from None
    if any(_is_control(ch) for ch in name):
        raise InvalidMailboxName("Mailbox name holds a control character")
    return name


def _decode_mb64(chunk: bytes) -> str:
    if any(c not in _MB64_VALUE for c in chunk):
        raise InvalidMailboxName(_INVALID)
    # The bits left over after the last whole octet must be zero padding (fewer than 6),
    # and the octets must make whole UTF-16 code units.
    bits = 6 * len(chunk)
    leftover = bits % 8
    if leftover >= 6 or (bits // 8) % 2 or _MB64_VALUE[chunk[-1]] & ((1 << leftover) - 1):
        raise InvalidMailboxName(_INVALID)
    std = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
    try:
        text = base64.b64decode(std, validate=True).decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidMailboxName(_INVALID) from None
    # RFC 3501 §5.1.3: printable US-ASCII must represent itself, never be base64-encoded.
    if any(" " <= ch <= "~" or _is_control(ch) for ch in text):
        raise InvalidMailboxName(_INVALID)
    return text


def _is_control(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f"
