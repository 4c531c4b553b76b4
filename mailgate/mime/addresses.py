"""Email addresses: RFC 5322 address lists as headers carry them, and inbox addresses as
mailgate accepts them (validated, compared lower-cased).

Address lists are untrusted input: parsing never raises and reads at most MAX_STRUCTURED bytes
of a field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

import idna

from mailgate.mime.decoding import decode_words
from mailgate.mime.headers import MAX_STRUCTURED, field_values, unquote

__all__ = [
    "Address",
    "InvalidAddress",
    "a_label",
    "address_list",
    "ascii_domain",
    "domain_of",
    "normalize_address",
    "parse_addresses",
]

# ---------------------------------------------------------------------------------------------
# Address lists (RFC 5322 §3.4)


class Address(NamedTuple):
    name: bytes | None  # raw display name, quotes removed, encoded-words kept
    mailbox: bytes | None
    host: bytes | None
    group: bool = False  # a group start (mailbox = group name) or end (all None) marker
    route: bytes | None = None  # an obsolete source route ("@a,@b"), ENVELOPE's adl


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
            words.append(unquote(text) if kind == "quoted" else text)
            space = False
    return b"".join(words) or None


def _without_cfws(addr: bytes) -> bytes:
    """An angle-addr's content without comments and folding whitespace (RFC 5322 §3.4.1
    allows CFWS around its parts: ``<user (c)@ (c) host>`` is ``user@host``)."""
    if b"(" not in addr and b" " not in addr and b"\t" not in addr:
        return addr
    return b"".join(text for kind, text in _address_tokens(addr) if kind not in ("ws", "comment"))


def _mailbox(tokens: list[_Token]) -> Address | None:
    """One mailbox: ``name <addr>``, ``addr`` or ``addr (name)``."""
    angle = next((i for i, (kind, _) in enumerate(tokens) if kind == "angle"), None)
    comments = [text for kind, text in tokens if kind == "comment"]
    if angle is not None:
        name = _phrase(tokens[:angle])
        addr = _without_cfws(tokens[angle][1][1:].removesuffix(b">"))
        route = None
        if addr.startswith(b"@") and b":" in addr:  # obsolete route (RFC 5322 §4.4): the adl
            route, _, addr = addr.partition(b":")
    else:
        name = route = None
        addr = b"".join(text for kind, text in tokens if kind in ("word", "quoted"))
        if not addr:  # only comments and spaces, e.g. the empty group "g: (foo) ;"
            return None
    if name is None and comments:  # "user@host (Real Name)", as Dovecot reads it
        name = comments[-1].strip() or None
    if not addr and name is None:
        return None
    mailbox, at, host = addr.rpartition(b"@")
    if not at:
        return Address(name, addr, None, route=route)
    return Address(name, mailbox, host or None, route=route)


def parse_addresses(value: bytes) -> list[Address]:
    """An address list with RFC 5322 §3.4 groups kept as IMAP group markers."""
    out: list[Address] = []
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
            out.append(Address(None, _phrase(current) or b"", None, group=True))
            current.clear()
            in_group = True
        elif text == b";":
            flush()
            if in_group:
                out.append(Address(None, None, None, group=True))
                in_group = False
        elif text == b",":
            flush()
    flush()
    if in_group:  # unterminated group
        out.append(Address(None, None, None, group=True))
    return out


def address_list(header: bytes, name: str) -> list[tuple[str, str]]:
    """(decoded display name, addr-spec) for every mailbox in every occurrence of a field.

    Group markers are dropped, their members kept.
    """
    result: list[tuple[str, str]] = []
    for value in field_values(header, name):
        for a in parse_addresses(value):
            if a.group:
                continue
            display = decode_words(a.name) if a.name is not None else ""
            addr = a.mailbox or b""
            if a.host is not None:
                addr += b"@" + a.host
            result.append((display, addr.decode("utf-8", "replace")))
    return result


# ---------------------------------------------------------------------------------------------
# Inbox addresses

# RFC 5322 §3.2.3 atext, as a dot-atom local part (no quoted local parts for inboxes).
# Used with fullmatch: "$" alone would also match before a trailing newline, letting "a\n@b"
# through into headers.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# RFC 6531 §3.3: atext plus UTF8-non-ascii. Not controls, spaces or surrogates (the invalid
# UTF-8 aiosmtpd hands on as surrogate escapes).
_UTF8_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00a1-\ud7ff\ue000-\U0010ffff]"
_UTF8_LOCAL = re.compile(rf"{_UTF8_ATEXT}+(\.{_UTF8_ATEXT}+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class InvalidAddress(ValueError):
    """Raised with a short reason a person can act on."""


def normalize_address(address: str, *, utf8: bool = False) -> str:
    """The canonical form of an address, or InvalidAddress: lower-cased, the domain in ASCII
    (an IDN as its A-labels, so that `例え.jp` and `xn--r8jz45g.jp` are one domain).

    An inbox's local part is ASCII; `utf8` also allows a UTF-8 one (RFC 6531), in Unicode
    NFC, as an envelope address of SMTPUTF8 mail may have."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{address!r} is not an address of the form name@domain")
    if local.isascii():
        valid = _LOCAL.fullmatch(local)
    elif not utf8:
        # Mail to and from UTF-8 addresses is exchanged, but inboxes are not given one: every
        # client and the IMAP login without UTF8=ACCEPT can name an ASCII address.
        raise InvalidAddress(
            f"{address!r}: an inbox address must be ASCII before the @ (the domain may be an IDN)"
        )
    else:
        local = unicodedata.normalize("NFC", local)
        valid = _UTF8_LOCAL.fullmatch(local)
    if len(local.encode("utf-8", "surrogateescape")) > 64:
        raise InvalidAddress(f"{address!r}: the part before @ is longer than 64 octets")
    if not valid:
        raise InvalidAddress(f"{address!r}: the part before @ has characters an address cannot")
    return f"{local.lower()}@{ascii_domain(domain)}"


def ascii_domain(domain: str) -> str:
    """A domain name lower-cased, an IDN as A-labels (IDNA 2008 with UTS #46 mapping), or
    InvalidAddress."""
    domain = domain.rstrip(".")
    if not domain.isascii() or "xn--" in domain.lower():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidAddress(f"{domain!r} is not a valid domain name: {exc}") from None
    if len(domain) > 253 or not all(_LABEL.fullmatch(label) for label in domain.split(".")):
        raise InvalidAddress(f"{domain!r} is not a valid domain name")
    return domain.lower()


def a_label(domain: str) -> str:
    """A domain from elsewhere (a header, a peer's MAIL FROM) as DNS and our records name it:
    lower-cased, an IDN as A-labels; unchanged (but lower-cased) if it is no valid name."""
    try:
        return ascii_domain(domain)
    except InvalidAddress:
        return domain.lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
