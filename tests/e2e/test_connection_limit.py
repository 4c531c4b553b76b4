"""`[limits] connections_per_ip`: one client address holds at most that many IMAP and SMTP
connections together; the next is told so in its protocol's terms and closed, while other
addresses (and the exempt networks) are served."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator

from tests.harness import Server, client_tls

OTHER = "127.0.0.2"  # a second source address on loopback


@contextlib.contextmanager
def connected(server: Server, port: int, source: str = "127.0.0.1") -> Iterator[ssl.SSLSocket]:
    raw = socket.create_connection((server.host, port), timeout=30, source_address=(source, 0))
    with client_tls().wrap_socket(raw) as tls:
        yield tls


def greeting(tls: ssl.SSLSocket) -> bytes:
    return tls.makefile("rb").readline()


def closed(tls: ssl.SSLSocket) -> bool:
    try:
        return tls.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def test_connections_per_address_are_bounded_across_imap_and_smtp(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(limits={"connections_per_ip": 2, "exempt_networks": []})
    with connected(server, server.imaps) as first, connected(server, server.smtps) as second:
        assert greeting(first).startswith(b"* OK")
        assert greeting(second).startswith(b"220 ")
        with connected(server, server.imaps) as third:
            assert (
                greeting(third) == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
            )
            assert closed(third)
        with connected(server, server.smtps) as third:
            assert greeting(third).startswith(b"421 4.7.0 Too many connections")
            assert closed(third)
        # Another address is served meanwhile.
        with connected(server, server.imaps, OTHER) as elsewhere:
            assert greeting(elsewhere).startswith(b"* OK")
    # Closed connections free their places.
    with connected(server, server.imaps) as again, connected(server, server.smtps) as more:
        assert greeting(again).startswith(b"* OK")
        assert greeting(more).startswith(b"220 ")


def test_exempt_networks_are_not_counted(make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"connections_per_ip": 1})  # loopback exempt by default
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(connected(server, server.imaps)) for _ in range(3)]
        assert all(greeting(c).startswith(b"* OK") for c in opened)
