"""Where a webhook may send: http(s) URLs whose host is a public address (against SSRF).

A URL is refused when its host is, or resolves to, an address that is not the public internet's:
loopback, private, link-local, CGNAT (shared), multicast, unspecified, reserved or documentation
ranges, cloud metadata endpoints, and IPv6 forms that carry such an IPv4 address (mapped,
6to4, NAT64). It is checked when a webhook is created, and again at every delivery, because DNS
can change: the delivery connects to the very address it checked (`pinned`), never resolving
the name a second time. `[api] allow_private_webhooks` lifts the rule (receivers on this machine,
a lab).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mailgate.delivery.dns import Resolver, TemporaryDNSError

MAX_URL = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services (AWS, GCP, Azure, OpenStack; AWS's IPv6 one; Alibaba's).
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
SHARED = ipaddress.ip_network("100.64.0.0/10")  # CGNAT (RFC 6598)
PROTOCOL = ipaddress.ip_network("192.0.0.0/24")  # IETF protocol assignments, not only /29
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4
_KINDS = (
    ("is_loopback", "a loopback address"),
    ("is_unspecified", "the unspecified address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
    ("is_site_local", "a site-local address"),
)


class Refused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


class Unreachable(Exception):
    """The URL's host has no address (now)."""


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str  # http or https
    host: str  # lower-case; an IPv6 address without brackets
    port: int
    netloc: str  # what the Host header says
    target: str  # path and query
    literal: bool  # the host is an IP address


def parse(url: str) -> Destination:
    """The URL's parts; ValueError naming what is wrong with it."""
    if len(url) > MAX_URL:
        raise ValueError(f"at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("may not hold credentials (send them as a webhook header)")
    if not url.isascii() or any(c.isspace() for c in url):
        raise ValueError("must be ASCII without spaces (IDNA and percent-encode the rest)")
    literal = _address(host) is not None
    if not literal and not all(label and len(label) <= 63 for label in host.split(".")):
        raise ValueError(f"{host} is not a valid host name")
    default = 443 if scheme == "https" else 80
    port = default if port is None else port
    shown = f"[{host}]" if ":" in host else host
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    netloc = shown if port == default else f"{shown}:{port}"
    return Destination(scheme, host, port, netloc, target, literal)


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def refusal(address: str) -> str | None:
    """Why webhooks may not reach `address` ("a loopback address" ...), or None for a public
    one."""
    ip = _address(address)
    if ip is None:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that reach an IPv4 address are judged by that address.
        carried: IPAddress | None = ip.ipv4_mapped or ip.sixtofour
        if carried is None and ip in NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None and (why := refusal(str(carried))):
            return why
    if ip in METADATA:
        return "a cloud metadata address"
    for attribute, kind in _KINDS:
        if getattr(ip, attribute, False):
            return kind
    if isinstance(ip, ipaddress.IPv4Address) and ip in SHARED:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in PROTOCOL:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def _local_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")  # RFC 6761: loopback


async def addresses(destination: Destination, resolver: Resolver, allow_private: bool) -> list[str]:
    """The addresses to connect to, every one of them checked (unless `allow_private`).
    Refused, Unreachable, or TemporaryDNSError."""
    host = destination.host
    if destination.literal:
        found = [host]
    elif _local_name(host):
        if not allow_private:
            raise Refused(f"{host} is a loopback name")
        found = ["127.0.0.1"]
    else:
        found = await resolver.addresses(host)
        if not found:
            raise Unreachable(f"{host} has no address")
    if not allow_private:
        for address in found:
            if why := refusal(address):
                shown = host if address == host else f"{host} resolves to {address}, which"
                raise Refused(f"{shown} is {why}")
    return found


async def check(url: str, resolver: Resolver, allow_private: bool) -> str | None:
    """At creation: why the URL may not be used, or None. A host that does not resolve now is
    accepted (each delivery checks again)."""
    try:
        destination = parse(url)
    except ValueError as exc:
        return str(exc)
    if allow_private:
        return None
    try:
        await addresses(destination, resolver, allow_private)
    except Refused as exc:
        return f"webhooks may not reach non-public addresses: {exc}"
    except (Unreachable, TemporaryDNSError):
        return None
    return None


def pinned(destination: Destination, address: str) -> str:
    """The URL that reaches `destination` at `address` (its Host header and TLS name are the
    destination's own)."""
    shown = f"[{address}]" if ":" in address else address
    return f"{destination.scheme}://{shown}:{destination.port}{destination.target}"
