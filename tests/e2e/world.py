"""Two mailgate servers that mail each other through a real DNS server on loopback.

Server A hosts a.test and listens on 127.0.0.2, server B hosts b.test on 127.0.0.3; both
MX listeners use one port number, which is also each server's [outbound] mx_port, so A's
delivery worker reaches B by looking up b.test's MX in the zone, and B's reaches A. The zone
holds what `mailgate domain dns` tells each domain's owner to publish, plus the A records of
the MX hosts. Both servers send from 127.0.0.1, which each domain's SPF record authorizes.

The second half serves tests of one server sending to the world: its recipients' domains are
in a ZoneServer, their MX hosts are SMTP peers (tests/smtppeer.py) on loopback, and helpers
wait, bounded, for what the delivery worker does.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dns import resolver as dns_resolver

from mailgate.delivery.domains import dns_records
from mailgate.store.records import QueuedRecipient
from tests.dnsserver import ZoneServer
from tests.e2e.process import run_here
from tests.harness import Account, Server, running_server

T = TypeVar("T")

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


def stable_port(*hosts: str) -> int:
    """A TCP port free on every one of `hosts` and below the kernel's range for ephemeral
    ports, for a server that must listen on it again after a restart: in between, no outgoing
    connection or port-0 bind of another test can be given it (one in that range was, once,
    and the restarted server could not listen)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, low)
        with contextlib.ExitStack() as stack:
            try:
                for host in hosts:
                    stack.enter_context(socket.socket()).bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on all hosts below the ephemeral range")


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


# -------------------------------------------------------------------- one server, the world's peers

REMOTE = "remote.test"  # a recipient domain on the internet, served by SMTP peers
REMOTE_MX = "mx.remote.test"


def outbound_settings(dns: ZoneServer, mx_port: int, **outbound: Any) -> dict[str, Any]:
    """make_server / running_server overrides for a server whose delivery worker finds the
    world in `dns` and reaches every MX host on `mx_port`; test-sized retries by default."""
    return {
        "dns": {"nameservers": (dns.address,), "timeout": 1.0},
        "outbound": {
            "mx_port": mx_port,
            "retry_intervals": (1,),
            "max_queue_age": 300,
            "timeout": 10.0,
            **outbound,
        },
    }


def point_mx(dns: ZoneServer, domain: str = REMOTE, *hosts: tuple[int, str, str]) -> None:
    """`domain`'s MX records: (preference, host name, IPv4 address) each."""
    hosts = hosts or ((10, REMOTE_MX, "127.0.0.1"),)
    dns.set(domain, "MX", [f"{preference} {name}" for preference, name, _ in hosts])
    for _, name, address in hosts:
        dns.set(name, "A", [address])


def publish_domain(dns: ZoneServer, server: Server, domain: str) -> None:
    """A hosted domain's records as `mailgate domain dns` prints them, into the zone."""
    record = server.call(server.store.get_domain(domain))
    for r in dns_records(record, server.settings.server.hostname):
        dns.set(r.name, r.type, [r.strings] if r.type == "TXT" else [r.value.rstrip(".")])


def zone_txt(dns: ZoneServer) -> Callable[..., bytes | None]:
    """A dkimpy `dnsfunc` that asks the zone server over the network, as a receiver would."""
    resolver = dns_resolver.Resolver(configure=False)
    resolver.nameservers = [dns.host]
    resolver.port = dns.port
    resolver.lifetime = 5.0

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except (dns_resolver.NXDOMAIN, dns_resolver.NoAnswer):
            return None
        return b"".join(next(iter(answer)).strings)

    return txt


def eventually(check: Callable[[], T | None], timeout: float = 20, what: str = "") -> T:
    """`check()`'s first true result, polled within `timeout` seconds (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        time.sleep(0.05)  # between polls of a bounded wait


def queue_of(server: Server) -> list[QueuedRecipient]:
    return server.call(server.store.list_outbound())


def drained(server: Server, timeout: float = 20) -> None:
    """Wait until the server's outbound queue is empty."""
    eventually(lambda: not queue_of(server) or None, timeout, "the outbound queue to empty")


def attempted(server: Server, times: int = 1, timeout: float = 20) -> list[QueuedRecipient]:
    """The queue once every row has been tried (and deferred) at least `times` times."""

    def check() -> list[QueuedRecipient] | None:
        rows = queue_of(server)
        return rows if rows and all(r.attempts >= times for r in rows) else None

    return eventually(check, timeout, f"every queued recipient tried {times} time(s)")


def cli_config(server: Server, directory: Path) -> Path:
    """A config file with which `mailgate` commands work on `server`'s database."""
    settings = server.settings
    path = directory / "cli.toml"
    path.write_text(
        "[server]\n"
        f'hostname = "{settings.server.hostname}"\n'
        f'data_dir = "{settings.server.data_dir}"\n'
        "[database]\n"
        f'url = "{settings.database.url}"\n'
    )
    return path


# -------------------------------------------------------------------- `mailgate serve` processes


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def write_config(directory: Path, *, database_url: str = "", **sections: dict[str, Any]) -> Path:
    """A mailgate.toml for a `mailgate serve` process of its own in `directory`: loopback, free
    ports, its data there, and `sections` (e.g. outbound_settings(...)) on top."""
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {
        "server": {
            "hostname": "mail.example.test",
            "data_dir": str(directory / "data"),
            "workers": 1,  # one process unless a test is about workers
        },
        "database": {"url": database_url},
        "imap": {"port": 0, "tls_port": 0},
        "smtp": {"submission_port": 0, "tls_port": 0, "mx_port": 0},
        "api": {"port": 0},
        "auth": {"max_failures": 100000, "failure_delay": 0.0},
    }
    for name, values in sections.items():
        tables.setdefault(name, {}).update(values)
    path = directory / "mailgate.toml"
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
            for name, values in tables.items()
        )
    )
    return path


def mailgate(config: Path, *args: str) -> Any:
    """A one-shot `mailgate ... --json --config <config>` command (run as
    tests/e2e/process.py's `run_here` runs it); its parsed answer."""
    done = run_here(*args, "--json", "--config", str(config), cwd=config.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def create_inbox(config: Path, local: str = "alice") -> Account:
    created = mailgate(config, "inbox", "create", f"{local}-{uuid.uuid4().hex[:6]}@example.test")
    return Account(created["inbox"]["address"], created["api_key"])


def queue(config: Path) -> list[dict[str, Any]]:
    """`mailgate queue list --json`."""
    rows: list[dict[str, Any]] = mailgate(config, "queue", "list")
    return rows


def wait_queue(config: Path, check: Any, what: str, timeout: float = 30) -> list[dict[str, Any]]:
    def rows() -> tuple[list[dict[str, Any]]] | None:
        found = queue(config)
        return (found,) if check(found) else None  # a tuple: an empty queue is an answer too

    return eventually(rows, timeout, what)[0]
