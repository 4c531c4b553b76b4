"""Behind a load balancer that sends the PROXY protocol (`[server] proxy_networks`): mailgate
sees each client's own address (login throttling, Received headers) on every listener, over
implicit TLS and STARTTLS, with v1 and v2 headers; it drops connections from outside those
networks and connections without a valid header, and keeps serving everyone else."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from tests.dnsserver import ZoneServer
from tests.harness import Account, Server, client_tls
from tests.smtp.helpers import SMTPSession, plain, tls, wait_closed
from tests.transcript import Transcript

# The test plays the balancer from 127.0.0.1; 127.0.0.2 is a machine outside its network.
BALANCER = "127.0.0.1"
OUTSIDER = "127.0.0.2"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# A v2 LOCAL header: the balancer's own connection, a health check.
V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def v1(client: str, port: int = 40000) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 {port} 993\r\n".encode()


def v2(client: str, port: int = 40000) -> bytes:
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1")
    addresses += struct.pack("!HH", port, 993)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def forwarded(port: int, header: bytes, *, source: str = BALANCER) -> socket.socket:
    """A connection as the balancer opens it: the header, then the client's own bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(header)
    return sock


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    """sender.example: only 192.0.2.44 may send its mail, and forgeries are to be rejected."""
    with ZoneServer() as z:
        z.set("sender.example", "TXT", ["v=spf1 ip4:192.0.2.44 -all"])
        z.set("_dmarc.sender.example", "TXT", ["v=DMARC1; p=reject"])
        yield z


@pytest.fixture
def proxied(make_server: Callable[..., Server], zone: ZoneServer) -> Server:
    return make_server(
        server={"proxy_networks": (f"{BALANCER}/32",)},
        dns={"nameservers": (zone.address,), "timeout": 1.0},
        auth={"ban_after": 3, "failure_window": 600, "lockout": 60, "failure_delay": 0.0},
    )


def imap_login(server: Server, header: bytes, account: Account, *, tls: bool = True) -> str:
    """LOGIN through the balancer: "OK", or the status and code, e.g. "NO UNAVAILABLE"."""
    sock = forwarded(server.imaps if tls else server.imap, header)
    with Transcript(client_tls().wrap_socket(sock) if tls else sock) as t:
        if not tls:
            t.starttls()
        r = t.command(f'LOGIN "{account.address}" "{account.key}"')
        return r.status if r.status == "OK" else f"{r.status} {r.code}"


def trace_headers(server: Server, account: Account, mailbox: str) -> list[str]:
    """The Received and Authentication-Results headers of each message in a mailbox, read
    over IMAP through the balancer."""
    with Transcript(client_tls().wrap_socket(forwarded(server.imaps, V2_LOCAL))) as t:
        t.ok(f'LOGIN "{account.address}" "{account.key}"')
        t.ok(f'EXAMINE "{mailbox}"')
        r = t.command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (RECEIVED AUTHENTICATION-RESULTS)])")
    assert r.status == "OK", r
    return [line.decode() for line in r.untagged if b"FETCH" in line]


def test_login_throttling_counts_the_client_not_the_balancer(proxied: Server) -> None:
    account = proxied.account()
    wrong = Account(account.address, "mgk_bad_key")
    for _ in range(3):
        assert imap_login(proxied, v1("203.0.113.7"), wrong) == "NO AUTHENTICATIONFAILED"
    # That client is locked out, on both protocols ...
    assert imap_login(proxied, v1("203.0.113.7"), account) == "NO UNAVAILABLE"
    with SMTPSession(tls().wrap_socket(forwarded(proxied.smtps, v2("203.0.113.7")))) as s:
        s.ehlo()
        s.expect(f"AUTH PLAIN {plain(account.address, account.key)}", "454 4.7.0")
    # ... while every other client behind the same balancer logs in, over STARTTLS too.
    assert imap_login(proxied, v2("203.0.113.8"), account) == "OK"
    assert imap_login(proxied, v1("203.0.113.8"), account, tls=False) == "OK"


@pytest.mark.parametrize("starttls", [False, True], ids=["implicit-tls", "starttls"])
def test_received_header_names_the_client(proxied: Server, starttls: bool) -> None:
    account = proxied.account()
    client = "198.51.100.23" if starttls else "198.51.100.24"
    port = proxied.submission if starttls else proxied.smtps
    sock = forwarded(port, v2(client) if starttls else v1(client))
    with SMTPSession(sock if starttls else tls().wrap_socket(sock)) as s:
        s.ehlo()
        if starttls:
            s.starttls()
            s.ehlo()
        s.login(account)
        message = f"From: {account.address}\r\nTo: {account.address}\r\nSubject: hi\r\n\r\nhi\r\n"
        assert s.send_mail(account.address, [account.address], message.encode()).code == 250
    (headers,) = trace_headers(proxied, account, "Sent")
    assert f"[{client}]" in headers


def test_mx_checks_spf_for_the_sending_server(proxied: Server) -> None:
    """SPF is evaluated for the address in the header, not the balancer's."""
    account = proxied.account()
    message = f"From: a@sender.example\r\nTo: {account.address}\r\nSubject: in\r\n\r\nin\r\n"
    for client, answer in (("192.0.2.44", "250 2.0.0"), ("192.0.2.45", "550 5.7.1")):
        with SMTPSession(forwarded(proxied.port("mx"), v1(client))) as s:
            s.ehlo("mx.sender.example")
            reply = s.send_mail("a@sender.example", [account.address], message.encode())
            assert reply.line.startswith(answer), (client, reply)
    (headers,) = trace_headers(proxied, account, "INBOX")
    assert "[192.0.2.44]" in headers
    assert "spf=pass" in headers


def test_health_check_is_served(proxied: Server) -> None:
    with SMTPSession(forwarded(proxied.submission, V2_LOCAL)) as s:
        assert s.greeting.code == 220
        s.expect("QUIT", "221 2.0.0")


@pytest.mark.parametrize(
    ("source", "first_bytes"),
    [
        (OUTSIDER, v1("203.0.113.9")),  # a valid header, but not from the balancer
        (BALANCER, b"EHLO client.example\r\n"),  # no header
        (BALANCER, b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n"),  # a malformed one
        (BALANCER, b"PROXY TCP4 " + b"1" * 200 + b"\r\n"),  # an endless one
    ],
    ids=["outside-proxy-networks", "no-header", "bad-address", "too-long"],
)
def test_connection_without_a_trusted_header_is_dropped(
    proxied: Server, source: str, first_bytes: bytes
) -> None:
    for port in (
        proxied.submission,
        proxied.imap,
        proxied.smtps,
        proxied.imaps,
        proxied.port("mx"),
    ):
        sock = forwarded(port, first_bytes, source=source)
        try:
            assert wait_closed(sock), f"port {port} kept the connection open"
        finally:
            sock.close()
    # Everyone else is still served.
    account = proxied.account()
    assert imap_login(proxied, v1("203.0.113.10"), account) == "OK"


def test_header_split_across_packets(proxied: Server) -> None:
    header = v2("203.0.113.11")
    sock = socket.create_connection(("127.0.0.1", proxied.submission), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(header), 5):
        sock.sendall(header[i : i + 5])
    with SMTPSession(sock) as s:
        assert s.greeting.code == 220
