"""The clients every phase uses: a TLS context that trusts the run's certificates, a raw IMAP
client for exact timing, an authenticated SMTP submission client, the official `agentmail` SDK
pointed at the HTTP API and the official `mcp` SDK at its /mcp, client threads that start
together; and the throw-away certificates of the servers the benchmark runs itself."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import itertools
import re
import smtplib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
from agentmail import AgentMail, AgentMailEnvironment
from agentmail.core import RequestOptions
from common import HOST, SOCKET_TIMEOUT, Account, BenchError
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def client_tls() -> ssl.SSLContext:
    """The server's certificate is self-signed and generated for this run: do not verify it."""
    # create_default_context() without the system's CA certificates: never used here, and
    # loading them for each client costs the benchmark's own CPU.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A throw-away ECDSA certificate for a server of the benchmark's own (the SMTP sink, the
    reference servers): the paths of `<name>.crt` and `<name>.key` in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Reply:
    status: bytes  # the tagged line
    lines: list[bytes]  # untagged lines (literal contents not included)
    fetches: int  # "* n FETCH" responses
    received: int  # bytes read while waiting for it


class RawIMAP:
    """A minimal blocking IMAP client over TLS: exact timing and no per-line overhead."""

    def __init__(self, port: int, timeout: float = SOCKET_TIMEOUT) -> None:
        raw = socket.create_connection((HOST, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = client_tls().wrap_socket(raw)
        self.buf = bytearray()
        self._tags = itertools.count(1)
        self._received = 0
        greeting = self.read_line()
        if not greeting.startswith(b"* OK"):
            raise BenchError(f"unexpected IMAP greeting {greeting!r}")

    def tag(self) -> bytes:
        return b"b%d" % next(self._tags)

    def _fill(self) -> float:
        data = self.sock.recv(1 << 18)
        if not data:
            raise BenchError("the IMAP server closed the connection")
        now = time.perf_counter()
        self._received += len(data)
        self.buf += data
        return now

    def read_line(self) -> bytes:
        while (nl := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, text: bytes, *, keep: bool = True) -> Reply:
        tag = self.tag()
        self.send(tag + b" " + text + b"\r\n")
        return self.read_reply(tag, keep=keep)

    def read_reply(self, tag: bytes, *, keep: bool = True) -> Reply:
        """Read up to the tagged reply, skipping literals ({n}) wherever they end a line."""
        buf = self.buf
        prefix = tag + b" "
        lines: list[bytes] = []
        fetches = 0
        start = scan = 0  # start of the current logical line; where to look for CRLF
        self._received = len(buf)
        while True:
            nl = buf.find(b"\r\n", scan)
            if nl < 0:
                if start > 1 << 16:
                    del buf[:start]
                    scan -= start
                    start = 0
                self._fill()
                continue
            if nl > start and buf[nl - 1] == 0x7D:  # "}": a literal follows this CRLF
                brace = buf.rfind(b"{", start, nl)
                digits = buf[brace + 1 : nl - 1].rstrip(b"+") if brace >= 0 else b""
                if digits.isdigit():
                    end = nl + 2 + int(digits)
                    while len(buf) < end:
                        self._fill()
                    scan = end
                    continue
            if buf.startswith(prefix, start):
                status = bytes(buf[start:nl])
                del buf[: nl + 2]
                if not status[len(prefix) :].startswith(b"OK"):
                    raise BenchError(f"IMAP command failed: {status!r}")
                return Reply(status, lines, fetches, self._received)
            if buf.startswith(b"* ", start) and buf.find(b" FETCH (", start, start + 24) > 0:
                fetches += 1
            if keep:
                lines.append(bytes(buf[start:nl]))
            start = scan = nl + 2

    def login(self, account: Account) -> None:
        self.command(b'LOGIN "%s" "%s"' % (account.address.encode(), account.key.encode()))

    def select(self, mailbox: bytes = b"INBOX") -> int:
        reply = self.command(b"SELECT " + mailbox)
        for line in reply.lines:
            m = re.fullmatch(rb"\* (\d+) EXISTS", line)
            if m:
                return int(m.group(1))
        raise BenchError(f"SELECT gave no EXISTS: {reply.lines!r}")

    def status_messages(self, mailbox: bytes = b"INBOX") -> int:
        reply = self.command(b"STATUS " + mailbox + b" (MESSAGES)")
        for line in reply.lines:
            m = re.search(rb"MESSAGES (\d+)", line)
            if m:
                return int(m.group(1))
        raise BenchError(f"STATUS gave no MESSAGES: {reply.lines!r}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.settimeout(5)
            self.command(b"LOGOUT", keep=False)
        with contextlib.suppress(Exception):
            self.sock.close()


def smtp_client(port: int, account: Account) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(HOST, port, context=client_tls(), timeout=SOCKET_TIMEOUT)
    assert client.sock is not None  # connected by the constructor
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(account.address, account.key)
    return client


def start_clients(
    client: Callable[[int], None], count: int, barrier: threading.Barrier
) -> list[threading.Thread]:
    """Start `count` client threads, `client(i)` each, and return once all of them are ready: at
    `barrier` (of count + 1), which a client that fails aborts."""
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    gc.collect()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    return threads


# The SDK repeats a request answered 429 or 5xx after a second or two: a measurement wants the
# failure, not a retry hidden in its latency.
NO_RETRIES: RequestOptions = {"max_retries": 0}


def api_url(port: int) -> str:
    return f"http://{HOST}:{port}"


@contextlib.contextmanager
def api_client(port: int, account: Account) -> Iterator[AgentMail]:
    """The SDK as agent code uses it, with the account's key: one keep-alive connection (its
    own httpx client, closed on leaving)."""
    http = httpx.Client(timeout=SOCKET_TIMEOUT)
    base = api_url(port)
    try:
        yield AgentMail(
            api_key=account.key,
            environment=AgentMailEnvironment(http=base, websockets=base.replace("http", "ws", 1)),
            httpx_client=http,
        )
    finally:
        http.close()


def mcp_url(port: int) -> str:
    return f"{api_url(port)}/mcp"


@contextlib.asynccontextmanager
async def mcp_client(
    port: int, account: Account, mode: str = "auto", handler: Any = None
) -> AsyncIterator[Client]:
    """The official `mcp` SDK's client over streamable HTTP, as an agent's MCP host connects it:
    the account's key as Bearer token on an httpx2 client of its own (so its own connections).
    `mode` "auto" speaks the 2026-07-28 revision (server/discover, no session), "legacy" the
    initialize handshake (a session, whose standalone GET stream the SDK opens after it);
    `handler` gets every message the server sends unasked (notifications)."""
    headers = {"Authorization": f"Bearer {account.key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=SOCKET_TIMEOUT) as http:
        transport = streamable_http_client(mcp_url(port), http_client=http)
        async with Client(transport, mode=mode, message_handler=handler) as client:  # type: ignore[arg-type]
            yield client


class Deflated:
    """The client's side of COMPRESS=DEFLATE as Thunderbird sets it up: zlib's default window
    and memory level, a sync flush after each command."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.writer.write(self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH))

    async def readline(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = await self.reader.read(65536)
            if not chunk:
                return b""
            self.buffer += self.decompressor.decompress(chunk)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"
