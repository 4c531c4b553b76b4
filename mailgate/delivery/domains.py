"""What a domain needs to send and receive mail: fresh DKIM keys (RSA + Ed25519, RFC 8463),
its default SPF and DMARC records, and the DNS records its owner must publish. Adding and
changing domains is provisioning (mailgate/provision.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mailgate.delivery import dkim
from mailgate.store.records import Domain, DomainKey

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
