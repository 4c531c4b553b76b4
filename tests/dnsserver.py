"""A real DNS server on loopback, serving a zone the test writes (built on dnslib).

    with ZoneServer() as dns:                                   # UDP and TCP on one free port
        dns.set("example.test", "MX", ["10 mx.example.test"])
        dns.set("mx.example.test", "A", ["127.0.0.1"])
        dns.set("example.test", "TXT", ["v=spf1 mx -all"])
        dns.set("sel._domainkey.example.test", "TXT", [["v=DKIM1; k=rsa; p=MIIB...", "..."]])
        resolver = Resolver((dns.address,), timeout=1.0)        # dns.address: "127.0.0.1:PORT"
        ...
        dns.answering = False                                   # from now on every query times out

Records have TTL 0, so a change is seen by the next lookup even through a caching resolver.
A name with records (or with records below it) answers NOERROR, possibly with no data; any
other name NXDOMAIN. CNAMEs are followed within the zone. Answers over 512 bytes are truncated
on UDP (RFC 1035 §4.2.1, no EDNS here), so the client retries them over TCP, as it must on the
internet. `queries` records every (name, type) asked, for tests that count lookups.

Values per type: A/AAAA an address; MX "PREFERENCE HOST"; CNAME/PTR/NS a host name; TXT either
a str (cut into 255-byte character-strings) or a list of str (exactly those strings, in order).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from dnslib import (
    AAAA,
    CNAME,
    MX,
    NS,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSHeader,
    DNSRecord,
)
from dnslib.server import DNSHandler, DNSLogger, DNSServer

__all__ = ["ZoneServer"]

TXTValue = str | Sequence[str]

_UDP_LIMIT = 512
_MAX_CNAME_CHAIN = 8


def _name(name: str) -> str:
    return name.lower().rstrip(".")


class _Handler(DNSHandler):
    def handle(self) -> None:
        if not self.server.zone.answering:  # type: ignore[attr-defined]
            return  # no reply at all: the client times out
        super().handle()

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)  # type: ignore[attr-defined]
        packed: bytes = reply.pack()
        if self.protocol == "udp" and len(packed) > _UDP_LIMIT:
            # dnslib's own truncate() drops the question section as well, and dnspython
            # rightly refuses an answer to no question; keep it, set TC, send no records.
            header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1)
            packed = DNSRecord(header, q=reply.q).pack()
        return packed


class _Resolver:
    def __init__(self, zone: ZoneServer) -> None:
        self.zone = zone

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname = _name(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        self.zone.queries.append((qname, qtype))
        answers, exists = self.zone.lookup(qname, qtype)
        for rr in answers:
            reply.add_answer(rr)
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        if not answers:
            # RFC 2308 §3: a negative answer carries the zone's SOA, whose minimum bounds how
            # long it may be cached. Without one, resolvers cache it for their own default
            # (dnspython: 300 s), and a record the test publishes later would stay unseen.
            reply.add_auth(
                RR(
                    qname + ".",
                    QTYPE.SOA,
                    rdata=SOA("ns.zone.test.", "hostmaster.zone.test.", (1, 0, 0, 0, 0)),
                    ttl=0,
                )
            )
        return reply


class ZoneServer:
    """An authoritative server for whatever names the test sets; start/stop or use `with`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.answering = True  # False: queries get no reply at all (a DNS timeout)
        self.queries: list[tuple[str, str]] = []
        self._records: dict[tuple[str, str], list[RR]] = {}
        self._lock = threading.Lock()
        self._servers: list[DNSServer] = []

    @property
    def address(self) -> str:
        """ "host:port", the form `[dns] nameservers` and `Resolver` take."""
        return f"{self.host}:{self.port}"

    # -- lifecycle

    def start(self) -> ZoneServer:
        resolver, logger = _Resolver(self), DNSLogger(logf=lambda _: None)
        for _ in range(20):  # a free TCP port whose UDP twin is free too
            tcp = DNSServer(resolver, self.host, 0, tcp=True, logger=logger, handler=_Handler)
            port = tcp.server.server_address[1]
            try:
                udp = DNSServer(resolver, self.host, port, logger=logger, handler=_Handler)
            except OSError:
                tcp.server.server_close()
                continue
            break
        else:
            raise OSError("no free port with both UDP and TCP")
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            server.server.zone = self  # type: ignore[attr-defined]
            # dnslib's start_thread() polls for shutdown every 0.5 s; tests stop servers often.
            thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()
        self._servers = []

    def __enter__(self) -> ZoneServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the zone

    def set(self, name: str, rtype: str, values: Iterable[Any]) -> None:
        """Replace the `rtype` records of `name` (an empty list leaves the name with none)."""
        rtype = rtype.upper()
        records = [
            RR(_name(name) + ".", getattr(QTYPE, rtype), rdata=_rdata(rtype, v), ttl=0)
            for v in values
        ]
        with self._lock:
            self._records[(_name(name), rtype)] = records

    def delete(self, name: str, rtype: str | None = None) -> None:
        """Remove `name`'s records of `rtype`, or all of them."""
        with self._lock:
            for key in list(self._records):
                if key[0] == _name(name) and rtype in (None, key[1].upper()):
                    del self._records[key]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def lookup(self, name: str, rtype: str) -> tuple[list[RR], bool]:
        """(answer records, whether the name exists), CNAMEs followed."""
        answers: list[RR] = []
        with self._lock:
            for _ in range(_MAX_CNAME_CHAIN):
                direct = self._records.get((name, rtype))
                cname = self._records.get((name, "CNAME"))
                if direct or not cname or rtype == "CNAME":
                    return answers + list(direct or []), self._exists(name)
                answers += cname
                name = _name(str(cname[0].rdata.label))
        return answers, True

    def _exists(self, name: str) -> bool:
        suffix = "." + name
        return any(
            (owner == name or owner.endswith(suffix)) and records
            for (owner, _), records in self._records.items()
        )


def _rdata(rtype: str, value: Any) -> Any:
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        preference, _, host = str(value).partition(" ")
        return MX(host.strip(), int(preference))
    if rtype == "TXT":
        return TXT(_strings(value))
    kinds = {"CNAME": CNAME, "PTR": PTR, "NS": NS}
    if rtype in kinds:
        return kinds[rtype](value)
    raise ValueError(f"ZoneServer does not serve {rtype} records")


def _strings(value: TXTValue) -> list[bytes]:
    if isinstance(value, str):
        data = value.encode()
        return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return [s.encode() for s in value]
