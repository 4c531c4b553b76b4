"""The world on loopback for the outbound and inbound phases: an authoritative DNS server
the servers resolve through, the other domains' records, and an SMTP sink as another domain's MX."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import multiprocessing
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients import self_signed
from common import HOST, READY_TIMEOUT, BenchError
from server import mailgate

# The outbound and inbound phases: the world as the loopback DNS server describes it.
SINK_DOMAIN = "sink.test"  # outbound recipients' domain; its MX is the benchmark's SMTP sink
SINK_HOST = "mx.sink.test"
WORLD_DOMAIN = "world.test"  # inbound senders' domain, with SPF, two DKIM keys and DMARC
WORLD_HELO = "mail.world.test"
ZONE_TTL = 300  # seconds: cached by the server's resolver, as real records are


class Zone:
    """An authoritative DNS server on loopback for the outbound and inbound phases, built on
    dnslib like tests/dnsserver.py: UDP and TCP on one free port, answers over 512 bytes
    truncated on UDP (so the resolver retries over TCP, as the RSA DKIM key needs), NXDOMAIN for
    names it has nothing at or below. Records carry a TTL of ZONE_TTL seconds, as real ones do:
    the server's resolver caches them, so a busy MX or delivery worker asks once per name.
    `queries` counts the queries answered."""

    def __init__(self) -> None:
        self.port = 0
        self.queries = 0
        self._records: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        self._servers: list[Any] = []

    @property
    def address(self) -> str:
        """ "host:port", the form `[dns] nameservers` takes."""
        return f"{HOST}:{self.port}"

    def set(self, name: str, rtype: str, values: list[Any]) -> None:
        """Replace `name`'s records of `rtype`. Values: A an address, MX "PREFERENCE HOST",
        TXT a str (cut into 255-byte strings) or a list of str (exactly those strings)."""
        from dnslib import MX, QTYPE, RR, TXT, A  # type: ignore[import-untyped]

        rtype = rtype.upper()
        owner = name.lower().rstrip(".")
        rdata: list[Any] = []
        for value in values:
            if rtype == "A":
                rdata.append(A(value))
            elif rtype == "MX":
                preference, _, host = str(value).partition(" ")
                rdata.append(MX(host.strip(), int(preference)))
            elif rtype == "TXT":
                if isinstance(value, str):
                    data = value.encode()
                    strings = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
                else:
                    strings = [s.encode() for s in value]
                rdata.append(TXT(strings))
            else:
                raise ValueError(f"the benchmark's zone does not serve {rtype} records")
        records = [RR(owner + ".", getattr(QTYPE, rtype), rdata=r, ttl=ZONE_TTL) for r in rdata]
        with self._lock:
            self._records[(owner, rtype)] = records

    def resolve(self, request: Any, handler: Any) -> Any:
        """dnslib's resolver interface: the reply to one query."""
        from dnslib import QTYPE, RCODE

        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        suffix = "." + name
        with self._lock:
            self.queries += 1
            answers = list(self._records.get((name, rtype), []))
            exists = any(
                (owner == name or owner.endswith(suffix)) and records
                for (owner, _), records in self._records.items()
            )
        for rr in answers:
            reply.add_answer(rr)
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def start(self) -> None:
        try:
            from dnslib import DNSHeader, DNSRecord
            from dnslib.server import (  # type: ignore[import-untyped]
                DNSHandler,
                DNSLogger,
                DNSServer,
            )
        except ImportError:
            raise BenchError(
                "the outbound and inbound phases need dnslib: pip install -e '.[test]'"
            ) from None

        class Handler(DNSHandler):
            def get_reply(self, data: bytes) -> bytes:
                request = DNSRecord.parse(data)
                reply = self.server.resolver.resolve(request, self)
                packed: bytes = reply.pack()
                if self.protocol == "udp" and len(packed) > 512:
                    # RFC 1035 §4.2.1, no EDNS here: set TC and keep the question (dnslib's
                    # truncate() drops it, and dnspython rightly refuses such an answer).
                    header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1)
                    packed = DNSRecord(header, q=reply.q).pack()
                return packed

        logger = DNSLogger(logf=lambda _: None)
        for _ in range(20):  # a free TCP port whose UDP twin is free too
            tcp = DNSServer(self, HOST, 0, tcp=True, logger=logger, handler=Handler)
            port = tcp.server.server_address[1]
            try:
                udp = DNSServer(self, HOST, port, logger=logger, handler=Handler)
            except OSError:
                tcp.server.server_close()
                continue
            break
        else:
            raise BenchError("no free port with both UDP and TCP for the DNS server")
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="bench-dns",
                daemon=True,
            ).start()

    def stop(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.server.shutdown()
                server.server.server_close()
        self._servers = []

    def txt(self, name: str) -> bytes | None:
        """A TXT record of `name` asked over the network, as a remote verifier would (the first
        record's strings joined), or None: what dkimpy's `dnsfunc` returns."""
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [HOST]
        resolver.port = self.port
        resolver.timeout = resolver.lifetime = 5.0
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(next(iter(answer)).strings)


def publish_domain(zone: Zone, config: Path, env: dict[str, str], domain: str) -> int:
    """Put what `mailgate domain dns DOMAIN --json` says to publish into the zone; how many
    records that was."""
    records = json.loads(mailgate(config, env, "domain", "dns", domain, "--json"))
    for record in records:
        if record["type"] == "TXT":
            zone.set(record["name"], "TXT", [record["strings"]])
        elif record["type"] == "MX":
            zone.set(record["name"], "MX", [record["value"].rstrip(".")])
    return len(records)


@dataclass(frozen=True)
class SigningKey:
    """A DKIM key of the inbound senders' domain, made by the benchmark."""

    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private: bytes  # what dkimpy's sign() takes: PEM for RSA, base64 of the seed for Ed25519
    record: str  # the TXT record at <selector>._domainkey.<domain>


def world_keys() -> list[SigningKey]:
    """An RSA-2048 and an Ed25519 key (RFC 8463) for WORLD_DOMAIN."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    raw = serialization.Encoding.Raw
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_private = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed = ed_key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ed_public = ed_key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return [
        SigningKey(
            "bench-rsa",
            "rsa-sha256",
            rsa_private,
            f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}",
        ),
        SigningKey(
            "bench-ed",
            "ed25519-sha256",
            base64.b64encode(seed),
            f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}",
        ),
    ]


def publish_world(zone: Zone, keys: list[SigningKey]) -> None:
    """The inbound senders' domain: SPF for this machine's address, both DKIM keys, and a DMARC
    policy of reject, so that a failed evaluation shows as a refused message."""
    zone.set(WORLD_DOMAIN, "TXT", [f"v=spf1 ip4:{HOST} -all"])
    zone.set(WORLD_DOMAIN, "MX", [f"10 {WORLD_HELO}"])
    zone.set(WORLD_HELO, "A", [HOST])
    zone.set(WORLD_HELO, "TXT", [f"v=spf1 ip4:{HOST} -all"])
    for key in keys:
        zone.set(f"{key.selector}._domainkey.{WORLD_DOMAIN}", "TXT", [key.record])
    zone.set(f"_dmarc.{WORLD_DOMAIN}", "TXT", ["v=DMARC1; p=reject; adkim=r; aspf=r"])


def publish_sink(zone: Zone) -> None:
    zone.set(SINK_DOMAIN, "MX", [f"10 {SINK_HOST}"])
    zone.set(SINK_HOST, "A", [HOST])


# One message as the sink got it: (time.monotonic() of its 250, MAIL FROM, RCPT TOs, STARTTLS
# used, the number of the connection it came by, the message bytes, time.monotonic() when the
# sink read its DATA command). time.monotonic() is CLOCK_MONOTONIC, the same clock in every
# process of this machine.
Arrival = tuple[float, str, list[str], bool, int, bytes, float]


async def _run_sink(directory: Path, control: Any) -> None:
    from aiosmtpd.smtp import SMTP

    cert, key = self_signed(directory, SINK_HOST)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    arrivals: list[Arrival] = []
    changed = threading.Condition()
    connections = itertools.count(1)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()
            if not hasattr(session, "bench_connection"):  # one Session per connection
                session.bench_connection = next(connections)
            with changed:
                arrivals.append(
                    (
                        now,
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        session.ssl is not None,
                        session.bench_connection,
                        bytes(envelope.original_content),
                        session.data_began,
                    )
                )
                changed.notify_all()
            return "250 2.0.0 Ok: queued"

    class Sink(SMTP):
        async def smtp_DATA(self, arg: str) -> None:
            # the sender was alive then: crash's verdict needs it (see tests/e2e/crash.py)
            self.session.data_began = time.monotonic()
            await super().smtp_DATA(arg)

    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Sink(
            handler,
            hostname=SINK_HOST,
            ident="mailgate bench sink",
            tls_context=tls,
            require_starttls=False,
        ),
        HOST,
        0,
    )
    control.send(("port", server.sockets[0].getsockname()[1]))
    stopping = asyncio.Event()

    def arrived(want: int, timeout: float) -> int:
        """The arrivals so far, once there are `want` or the time is up."""
        with changed:
            changed.wait_for(lambda: len(arrivals) >= want, timeout)
            return len(arrivals)

    def serve_control() -> None:
        """Answers the benchmark: ("wait", n, timeout) -> ("count", arrivals so far, once
        there are n or the time is up); ("arrivals", first) -> ("arrivals", list); ("stop",)."""
        try:
            while True:
                command = control.recv()
                if command[0] == "wait":
                    control.send(("count", arrived(*command[1:])))
                elif command[0] == "arrivals":
                    with changed:
                        snapshot = arrivals[command[1] :]
                    control.send(("arrivals", snapshot))
                else:
                    break
        except (EOFError, OSError):
            pass  # the benchmark is gone
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=serve_control, name="sink-control", daemon=True).start()
    await stopping.wait()
    server.close()


def sink_worker(directory: str, control: Any) -> None:
    """Entry point of the SMTP sink process: accept every message, record when it came."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_run_sink(Path(directory), control))


class Sink:
    """The outbound phase's remote MX: aiosmtpd in a process of its own (so that neither the
    GIL nor the load generator delays it), on loopback, offering STARTTLS, accepting everything.
    """

    def __init__(self, directory: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=sink_worker, args=(str(directory), child), name="bench-sink", daemon=True
        )
        self.proc.start()
        child.close()
        if not self.pipe.poll(READY_TIMEOUT):
            self.close()
            raise BenchError("the SMTP sink did not start")
        try:
            _, self.port = self.pipe.recv()
        except EOFError:
            self.close()
            raise BenchError("the SMTP sink died while starting") from None

    def _ask(self, command: tuple[Any, ...], timeout: float) -> Any:
        try:
            self.pipe.send(command)
            if not self.pipe.poll(timeout):
                raise BenchError("the SMTP sink does not answer")
            return self.pipe.recv()[1]
        except (EOFError, OSError):
            raise BenchError("the SMTP sink died") from None

    def wait(self, count: int, timeout: float) -> int:
        """Messages received so far, once there are `count` or after `timeout` seconds."""
        return int(self._ask(("wait", count, timeout), timeout + 30))

    def arrivals(self, first: int = 0) -> list[Arrival]:
        return list(self._ask(("arrivals", first), 120))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)
        self.pipe.close()
