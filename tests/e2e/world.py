"""Two mailgate servers that mail each other through a real DNS server on loopback.

Server A hosts a.test and listens on 127.0.0.2, server B hosts b.test on 127.0.0.3; both
MX listeners use one port number, which is also each server's [outbound] mx_port, so A's
delivery worker reaches B by looking up b.test's MX in the zone, and B's reaches A. The zone
holds what `mailgate domain dns` tells each domain's owner to publish, plus the A records of
the MX hosts. Both servers send from 127.0.0.1, which each domain's SPF record authorizes.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgate.delivery.domains import dns_records
from tests.dnsserver import ZoneServer
from tests.harness import Account, Server, running_server

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
SENDING_IP = "127.0.0.1"


@dataclass
class World:
    dns: ZoneServer
    a: Server
    b: Server
    mx_port: int

    def publish(self, server: Server, domain: str) -> None:
        """Put a domain's records, as `mailgate domain dns` prints them, into the zone."""
        record = server.call(server.store.get_domain(domain))
        for r in dns_records(record, server.settings.server.hostname):
            values: list[Any] = [r.strings] if r.type == "TXT" else [r.value]
            if r.type == "MX":
                values = [r.value.rstrip(".")]
            self.dns.set(r.name, r.type, values)
        # The SPF mailgate suggests is "mx"; these servers send from another loopback address.
        self.dns.set(domain, "TXT", [f"v=spf1 ip4:{SENDING_IP} mx -all"])

    def set_dmarc(self, domain: str, policy: str) -> None:
        self.dns.set(f"_dmarc.{domain}", "TXT", [f"v=DMARC1; p={policy}"])

    def account(self, server: Server, local: str) -> Account:
        domain = "a.test" if server is self.a else "b.test"
        return server.account(f"{local}@{domain}")


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of `hosts` (tried, not reserved: good enough on loopback)."""
    for _ in range(50):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            try:
                for host in hosts[1:]:
                    other = stack.enter_context(socket.socket())
                    other.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on all hosts")


@contextlib.contextmanager
def world(tmp: Path, backend: str, **outbound: Any) -> Iterator[World]:
    """Servers A and B with published domains a.test and b.test; `outbound` overrides
    [outbound] settings on both (e.g. retry_intervals)."""
    port = free_port(A_IP, B_IP)
    with ZoneServer() as dns:
        dns.set("mx.a.test", "A", [A_IP])
        dns.set("mx.b.test", "A", [B_IP])
        common = {
            "dns": {"nameservers": (dns.address,), "timeout": 2.0},
            "outbound": {"mx_port": port, **outbound},
        }
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        with (
            running_server(
                tmp / "a",
                backend,
                server={"hostname": "mx.a.test", "bind": A_IP, "data_dir": str(tmp / "a")},
                smtp={"submission_port": 0, "tls_port": 0, "mx_port": port},
                **common,
            ) as a,
            running_server(
                tmp / "b",
                backend,
                server={"hostname": "mx.b.test", "bind": B_IP, "data_dir": str(tmp / "b")},
                smtp={"submission_port": 0, "tls_port": 0, "mx_port": port},
                **common,
            ) as b,
        ):
            result = World(dns, a, b, port)
            # The first inbox of a domain creates it with its keys; publish both.
            result.account(a, "postmaster")
            result.account(b, "postmaster")
            result.publish(a, "a.test")
            result.publish(b, "b.test")
            yield result
