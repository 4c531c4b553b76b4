"""Where mail for an address goes: to an inbox here, nowhere (an address at one of our domains
that no inbox has), or to another server. Submission and the MX route alike.

Plus addressing, like Postfix's recipient_delimiter: name+tag@domain reaches the inbox
name@domain, unless name+tag@domain is itself an inbox.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from mailgate.mime.addresses import domain_of, normalize_address
from mailgate.store.api import Store
from mailgate.store.records import Inbox


class Route(Enum):
    LOCAL = "local"  # an inbox here
    UNKNOWN = "unknown"  # one of our domains, but no such inbox
    REMOTE = "remote"  # another server's


@dataclass(frozen=True, slots=True)
class Routed:
    route: Route
    address: str  # for Route.LOCAL the inbox's address, else the recipient's


def candidates(address: str) -> list[str]:
    """The inbox addresses mail to `address` (normalised) may reach; the first hosted wins."""
    local, _, domain = address.rpartition("@")
    if "+" not in local:
        return [address]
    return [address, f"{local.split('+', 1)[0]}@{domain}"]


class Router:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def route(self, recipient: str) -> tuple[Route, Inbox | None]:
        """Where mail to `recipient` goes, and for Route.LOCAL the inbox it reaches;
        InvalidAddress if it is malformed."""
        address = normalize_address(recipient, utf8=True)
        found = await self.store.find_inboxes(candidates(address))
        routed = (await self.route_all([address], found))[address]
        return routed.route, found.get(routed.address)

    async def route_all(
        self, addresses: Iterable[str], hosted: Collection[str]
    ) -> dict[str, Routed]:
        """Where mail to each of `addresses` (normalised) goes, given which of their
        candidates are hosted inboxes (found by the caller, in one query for them all); the
        domain of each address not hosted is looked up, once per domain."""
        ours: dict[str, bool] = {}
        routed: dict[str, Routed] = {}
        for address in addresses:
            inbox = next((c for c in candidates(address) if c in hosted), None)
            if inbox is not None:
                routed[address] = Routed(Route.LOCAL, inbox)
                continue
            domain = domain_of(address)
            if domain not in ours:
                ours[domain] = await self.store.is_local_domain(domain)
            routed[address] = Routed(Route.UNKNOWN if ours[domain] else Route.REMOTE, address)
        return routed
