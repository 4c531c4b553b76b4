"""What a domain needs to send and receive mail: fresh DKIM keys (RSA + Ed25519, RFC 8463),
its default SPF and DMARC records, and the DNS records its owner must publish; and, optional,
the records that let mail clients set themselves up (the ports clients use, by SRV, and the
names Thunderbird's autoconfig and Outlook's autodiscover fetch). Adding and changing domains is
provisioning (mailgate/provision.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailgate.config import Settings
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
    type: str  # MX, TXT, SRV, CNAME
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


# The ports mail clients use, by their SRV service names (RFC 6186; `submissions`: RFC 8314),
# which are also the names of mailgate's listeners, preferred first: TLS from the first byte
# before STARTTLS (RFC 8314 §3); each with the [section] and key of its port.
CLIENT_SERVICES: dict[str, tuple[str, str]] = {
    "imaps": ("imap", "tls_port"),
    "imap": ("imap", "port"),
    "submissions": ("smtp", "tls_port"),
    "submission": ("smtp", "submission_port"),
}
# SRV priorities: clients compare them across the service types they support (RFC 6186 §3.4),
# so implicit TLS, the lower number, is tried first.
SRV_PRIORITY = {True: 0, False: 10}
SRV_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class ClientPort:
    """A port mail clients connect to."""

    service: str  # a key of CLIENT_SERVICES
    port: int  # 0 in the settings: a free port, chosen when mailgate starts

    @property
    def protocol(self) -> str:
        """ "imap" or "smtp" (submission), also the section of its setting."""
        return CLIENT_SERVICES[self.service][0]

    @property
    def implicit_tls(self) -> bool:
        """TLS from the first byte; else plain text until STARTTLS."""
        return self.service.endswith("s")

    @property
    def setting(self) -> str:
        section, key = CLIENT_SERVICES[self.service]
        return f"[{section}] {key}"


def client_ports(settings: Settings) -> list[ClientPort]:
    """The client ports as configured, preferred first."""
    return [
        ClientPort(service, getattr(getattr(settings, section), key))
        for service, (section, key) in CLIENT_SERVICES.items()
    ]


def client_records(domain: str, hostname: str, ports: Iterable[ClientPort]) -> list[Record]:
    """What lets mail clients set themselves up for addresses at `domain`: an SRV record for each
    port (RFC 6186, RFC 8314), and autoconfig.DOMAIN (Thunderbird) and autodiscover.DOMAIN
    (Outlook) naming this server, whose HTTP API answers them. A port of 0 has no SRV record:
    it is known only once mailgate has started, and changes with every start."""
    name = domain + "."
    target = f"{hostname.rstrip('.')}."
    records = [
        Record(
            f"_{p.service}._tcp.{name}",
            "SRV",
            f"{SRV_PRIORITY[p.implicit_tls]} {SRV_WEIGHT} {p.port} {target}",
        )
        for p in ports
        if p.port
    ]
    records += [
        Record(f"{label}.{name}", "CNAME", target) for label in ("autoconfig", "autodiscover")
    ]
    return records


def records_to_publish(domain: Domain, settings: Settings) -> list[Record]:
    """Everything its owner publishes for `domain`: what mail needs (`dns_records`, which are
    verified), then what mail clients may use (`client_records`, optional)."""
    hostname = settings.server.hostname
    return dns_records(domain, hostname) + client_records(
        domain.name, hostname, client_ports(settings)
    )


def zone_file(domain: Domain, settings: Settings) -> str:
    """`records_to_publish` as zone-file lines (what `mailgate domain dns` prints), saying of
    each client port without an SRV record why it has none."""
    hostname = settings.server.hostname
    ports = client_ports(settings)
    lines = [f"; DNS records for {domain.name} (mailgate)"]
    lines += [r.zone_line() for r in dns_records(domain, hostname)]
    lines.append(
        "; Optional, for mail clients to set themselves up: SRV records (RFC 6186, RFC 8314), "
        "and the names Thunderbird and Outlook fetch their settings from"
    )
    lines += [
        f"; no _{p.service}._tcp record: {p.setting} is 0 (a free port, chosen at start)"
        for p in ports
        if not p.port
    ]
    lines += [r.zone_line() for r in client_records(domain.name, hostname, ports)]
    return "\n".join(lines)
