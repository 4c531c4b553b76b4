"""Email addresses as mailgate accepts them for inboxes: validated, compared lower-cased."""

from __future__ import annotations

import re

# RFC 5322 §3.2.3 atext, as a dot-atom local part (no quoted local parts for inboxes).
# Used with fullmatch: "$" alone would also match before a trailing newline, letting "a\n@b"
# through into headers.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class InvalidAddress(ValueError):
    """Raised with a short reason a person can act on."""


def normalize_address(address: str) -> str:
    """The canonical (lower-cased) form of an inbox address, or InvalidAddress."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{address!r} is not an address of the form name@domain")
    if len(local) > 64:
        raise InvalidAddress(f"{address!r}: the part before @ is longer than 64 characters")
    if not _LOCAL.fullmatch(local):
        raise InvalidAddress(f"{address!r}: the part before @ has characters an address cannot")
    domain = domain.rstrip(".")
    if len(domain) > 253 or not all(_LABEL.fullmatch(label) for label in domain.split(".")):
        raise InvalidAddress(f"{address!r}: {domain!r} is not a valid domain name")
    return f"{local}@{domain}".lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
