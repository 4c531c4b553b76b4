"""The PROXY protocol (v1 and v2) for nodes behind a load balancer that sends it.

A TCP balancer hides each client's address, so login throttling, Received headers and SPF would
all see the balancer's. With `[server] proxy_networks` set, each listener takes connections only
from those networks, reads the header the balancer sends first (before any TLS, with aiosmtpd's
parser) and hands the socket to the IMAP or SMTP server with the client's address as its peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

from aiosmtpd.proxy_protocol import V2_CMD, ProxyData, get_proxy

log = logging.getLogger(__name__)

# How long a balancer has to send the header after connecting (HAProxy sends it at once).
HEADER_TIMEOUT = 10.0
# The longest v1 header, CRLF included (the PROXY protocol specification, section 2.1).
V1_MAX = 107

Address = tuple[str, int]
# Takes over an accepted socket whose header has been read, with the client's address.
Handoff = Callable[[socket.socket, Address], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _SocketReader:
    """What aiosmtpd's parser reads through, straight from the socket and never past the
    header: the client's first bytes (a TLS ClientHello) stay for the server it is handed to."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    async def read(self, n: int = -1) -> bytes:
        return await self._loop.sock_recv(self._sock, n if n > 0 else V1_MAX)

    async def readexactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = await self._loop.sock_recv(self._sock, n - len(data))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(data), n)
            data += chunk
        return bytes(data)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        # A byte at a time, so not one byte too many; it is one short line per connection.
        data = bytearray()
        while not data.endswith(separator) and len(data) < V1_MAX:
            data += await self.readexactly(1)
        return bytes(data)


class ProxyListener:
    """A listening socket whose connections come from a balancer and begin with a header."""

    def __init__(self, sock: socket.socket, networks: Sequence[Network], handoff: Handoff) -> None:
        self._sock = sock
        self._networks = networks
        self._handoff = handoff
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        """Stop accepting; connections still waiting for their header are dropped."""
        self._accepting.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError as exc:
                # Out of file descriptors, say: keep the listener, give the system a moment.
                log.warning("accepting a connection failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            task = loop.create_task(self._serve(conn, (str(peer[0]), int(peer[1]))))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket, peer: Address) -> None:
        conn.setblocking(False)
        client = await self._client(conn, peer)
        if client is None:
            conn.close()
            return
        try:
            await self._handoff(conn, client)
        except Exception as exc:  # a failed TLS handshake, a client already gone
            log.info("connection from %s (via %s) ended at once: %s", client[0], peer[0], exc)
            conn.close()

    async def _client(self, conn: socket.socket, peer: Address) -> Address | None:
        """The client's address from the header; None when the connection must be dropped."""
        if not trusted(peer[0], self._networks):
            log.warning("connection from %s refused: not in [server] proxy_networks", peer[0])
            return None
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                header = await read_header(conn)
        except (OSError, EOFError, TimeoutError) as exc:
            log.warning("no PROXY header from %s: %s", peer[0], str(exc) or "timed out")
            return None
        if not header.valid:
            log.warning("bad PROXY header from %s: %s", peer[0], header.error)
            return None
        if header.command == V2_CMD.LOCAL or header.src_addr is None:
            # The balancer's own connection (a health check), or a client it cannot describe.
            return peer
        return str(header.src_addr), int(header.src_port or 0)


async def read_header(conn: socket.socket) -> ProxyData:
    """The PROXY header at the start of a non-blocking socket, and not a byte more: whatever
    the bytes, a header (valid or not, with its error) or OSError/EOFError."""
    return await get_proxy(_SocketReader(conn))


def trusted(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def listen(bind: str, port: int, nets: Sequence[Network], handoff: Handoff) -> ProxyListener:
    """Listen on bind:port (OSError if that fails) for connections from `nets`."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.create_server((bind, port), family=family, backlog=128)
    sock.setblocking(False)
    try:
        return ProxyListener(sock, nets, handoff)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
