"""Domains: created with their DKIM keys, and the DNS records their owner must publish.

Creating the first inbox of a domain adds the domain (with an RSA-2048 and an Ed25519 key,
RFC 8463), so that mail from a new inbox can be signed at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mailgate.delivery import dkim
from mailgate.mime.addresses import domain_of
from mailgate.store.api import Store
from mailgate.store.errors import DomainExists, DomainNotFound
from mailgate.store.records import Domain, DomainKey, Inbox
from mailgate.store.tenancy import DEFAULT_POD

DEFAULT_SPF = "v=spf1 mx -all"
DEFAULT_DMARC_POLICY = "quarantine"


def default_dmarc(domain: str, policy: str = DEFAULT_DMARC_POLICY) -> str:
    # No rua=: aggregate reports would go to an address no inbox may exist for, and mailgate
    # does not read them. An owner who wants them adds rua= to their published record.
    return f"v=DMARC1; p={policy}; adkim=r; aspf=r"


async def new_keys() -> tuple[DomainKey, ...]:
    """A fresh RSA + Ed25519 pair; key generation is CPU work, done off the event loop."""
    generated = await asyncio.to_thread(dkim.generate_keys)
    now = int(time.time())
    return tuple(
        DomainKey(
            selector=k.selector,
            algorithm=k.algorithm,
            private_key=k.private_key,
            public_key=k.public_key,
            active=True,
            created_at=now,
        )
        for k in generated
    )


async def add_domain(
    store: Store, name: str, *, spf: str = DEFAULT_SPF, dmarc_policy: str = DEFAULT_DMARC_POLICY
) -> Domain:
    return await store.add_domain(
        name, spf=spf, dmarc=default_dmarc(name.lower(), dmarc_policy), keys=await new_keys()
    )


async def ensure_domain(store: Store, name: str) -> Domain:
    try:
        return await store.get_domain(name)
    except DomainNotFound:
        pass
    try:
        return await add_domain(store, name)
    except DomainExists:
        # Another node (or command) created it meanwhile.
        return await store.get_domain(name)


async def create_inbox(store: Store, address: str, pod: str = DEFAULT_POD) -> Inbox:
    """An inbox, and its domain with DKIM keys if this is the domain's first inbox."""
    inbox = await store.create_inbox(address, pod)
    await ensure_domain(store, domain_of(inbox.address))
    return inbox


async def backfill(store: Store) -> None:
    """Give a domain (and keys) to every inbox domain that has none: inboxes created before
    mailgate managed domains, by an older version."""
    known = {d.name for d in await store.list_domains()}
    for name in sorted({domain_of(i.address) for i in await store.list_inboxes()} - known):
        await ensure_domain(store, name)


async def rotate_keys(store: Store, name: str) -> Domain:
    """New selectors sign from now on; the old public keys stay published until removed."""
    return await store.add_dkim_keys(name, await new_keys())


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # fully qualified, with the final dot
    type: str  # MX, TXT
    value: str  # for TXT: the whole text; `strings` has it split for a zone file

    @property
    def strings(self) -> list[str]:
        return dkim.zone_strings(self.value) if self.type == "TXT" else [self.value]

    def zone_line(self) -> str:
        if self.type == "TXT":
            text = " ".join(
                '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in self.strings
            )
            return f"{self.name}\t3600\tIN\tTXT\t{text}"
        return f"{self.name}\t3600\tIN\t{self.type}\t{self.value}"


def dns_records(domain: Domain, hostname: str) -> list[Record]:
    """Exactly what to publish for `domain`: MX, SPF, every DKIM key still published, DMARC."""
    name = domain.name + "."
    records = [
        Record(name, "MX", f"10 {hostname.rstrip('.')}."),
        Record(name, "TXT", domain.spf),
    ]
    for key in domain.keys:
        published = dkim.DKIMKey(key.selector, key.algorithm, key.private_key, key.public_key)
        records.append(
            Record(f"{key.selector}._domainkey.{name}", "TXT", dkim.dns_record(published))
        )
    records.append(Record(f"_dmarc.{name}", "TXT", domain.dmarc))
    return records
