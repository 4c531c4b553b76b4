"""A real SMTP peer for end-to-end tests: an aiosmtpd server on loopback, scripted by the test.

We never mock an SMTP peer (DESIGN.md, "How we test"): mailgate's outbound delivery talks to
this server over real TCP, STARTTLS and AUTH, and the test reads back what arrived.

    with SMTPPeer(tls="starttls") as peer:                 # 127.0.0.1, a free port
        peer.data_replies.append("451 4.3.0 Try again later")     # the first DATA; then 250
        peer.rcpt_by_address["nobody@example.org"] = "550 5.1.1 No such user"
        ...                                                # point mailgate at peer.port
        [message] = peer.wait_for(1)                       # bounded; no sleeps
        assert message.tls and message.rcpt_tos == ("bob@example.org",)

Scripted replies are consumed in order, one per command of that kind, across connections; an
empty queue means the ordinary success reply. A multi-line reply is its lines joined by CRLF.
A 421 reply closes the connection after it is sent (RFC 5321 §3.8). For a host that is not
there at all, `refusing_port()` gives a port whose connections are refused, `silent_port()`
one that accepts TCP but never greets.

The peer runs its own event loop on its own thread, apart from the mailgate server's loop: a
server loop that stalls cannot stall its peer, and the peer needs no Twisted reactor.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email
import email.message
import email.policy
import functools
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AnyStr, Literal, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailgate.tls import generate_self_signed

T = TypeVar("T")
TLSMode = Literal["none", "starttls", "implicit"]

PEER_HOSTNAME = "mx.peer.test"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# aiosmtpd closes a silent client after this long (RFC 5321 §4.5.3.2 asks for minutes; a test
# that leaves a connection open should not keep the peer busy for that long).
COMMAND_TIMEOUT = 60.0

MAIL_OK = "250 2.1.0 OK"
RCPT_OK = "250 2.1.5 OK"
AUTH_REQUIRED = "530 5.7.0 Authentication required"


@dataclass(frozen=True, slots=True)
class Transaction:
    """One message that reached the end of DATA, with the peer's answer to it."""

    mail_from: str  # "" for the null reverse-path (RFC 5321 §4.5.5: bounces)
    rcpt_tos: tuple[str, ...]  # the recipients the peer accepted
    data: bytes  # the message exactly as received, dot-stuffing undone (RFC 5321 §4.5.2)
    reply: str  # what the peer answered to the final dot
    tls: bool  # the transaction ran inside TLS (STARTTLS or implicit)
    auth_user: str | None  # who authenticated on this connection, if anyone
    helo: str | None  # the EHLO/HELO name
    connection: int  # which connection it came on, counting from 1
    mail_options: tuple[str, ...]  # MAIL FROM parameters, e.g. ("BODY=8BITMIME", "SIZE=123")
    # time.monotonic() when the peer answered the final dot (not part of what was sent)
    at: float = field(default=0.0, compare=False)
    # time.monotonic() when the peer read the DATA command: the sender was alive then, since it
    # sends the message only after the 354 (a kill recorded before `at` may still be after this)
    began: float = field(default=0.0, compare=False)

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")

    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class SMTPPeer:
    """An SMTP server on `host` (loopback) and `port` (0: a free one), until stop().

    `tls`: "starttls" offers STARTTLS (RFC 3207), "implicit" is TLS from the first byte
    (RFC 8314), both with a self-signed certificate for `hostname`. `auth`: a (user, password)
    that AUTH PLAIN and LOGIN accept; then MAIL needs AUTH (a smarthost relays nothing for
    strangers), and with STARTTLS, AUTH is offered only inside TLS. Without `auth` no AUTH is
    advertised, as on an MX. `smtputf8`: SMTPUTF8 (RFC 6531) is offered (aiosmtpd's own).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = PEER_HOSTNAME,
        tls: TLSMode = "none",
        auth: tuple[str, str] | None = None,
        cert_dir: Path | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.host = host
        self.smtputf8 = smtputf8
        self.port = port
        self.hostname = hostname
        self.tls_mode: TLSMode = tls
        self.auth = auth
        self._cert_dir = cert_dir
        # The script. deque appends and pops are atomic, so tests may add while it runs.
        self.greeting_replies: deque[str] = deque()  # a refusal at connect, then close
        self.mail_replies: deque[str] = deque()
        self.rcpt_replies: deque[str] = deque()
        self.data_replies: deque[str] = deque()
        # The answer to every RCPT for an address (case-insensitive), before rcpt_replies.
        self.rcpt_by_address: dict[str, str] = {}
        # The record, guarded by _changed.
        self._changed = threading.Condition()
        self._messages: list[Transaction] = []
        self._refused: list[Transaction] = []
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._live: set[_PeerSMTP | _Refusal] = set()
        self._all_closed: asyncio.Event | None = None  # made on the peer's loop

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SMTPPeer:
        if self._loop is not None:
            raise RuntimeError("the peer is already running")
        tls_context = self._tls_context() if self.tls_mode != "none" else None
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"smtp-peer-{self.hostname}", daemon=True
        )
        self._thread.start()
        try:
            self._server = self._call(self._listen(tls_context)).result(START_TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and every connection; idempotent.

        A later start() listens on the same port again and keeps the record: a host that
        goes away and comes back.
        """
        if self._loop is None:
            return
        try:
            self._call(self._shutdown()).result(STOP_TIMEOUT)
        finally:
            self._stop_loop()

    def __enter__(self) -> SMTPPeer:
        return self if self._loop is not None else self.start()  # started already, or now

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # ---------------------------------------------------------------- the record

    @property
    def messages(self) -> list[Transaction]:
        """Every accepted message (250 to the final dot), in order."""
        with self._changed:
            return list(self._messages)

    @property
    def refused(self) -> list[Transaction]:
        """Every message whose final dot got a scripted 4xx/5xx, in order."""
        with self._changed:
            return list(self._refused)

    @property
    def connections(self) -> int:
        """How many TCP connections the peer has accepted (refused greetings included)."""
        with self._changed:
            return self._connections

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Transaction]:
        """Every accepted message, once there are at least `count`; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"{self.hostname}: {len(self._messages)} of {count} messages accepted "
                    f"within {timeout}s ({len(self._refused)} refused, "
                    f"{self._connections} connections)"
                )
            return list(self._messages)

    # ---------------------------------------------------------------- on the peer's loop

    def _call(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _listen(self, tls_context: ssl.SSLContext | None) -> asyncio.Server:
        implicit = tls_context if self.tls_mode == "implicit" else None
        starttls = tls_context if self.tls_mode == "starttls" else None
        self._all_closed = asyncio.Event()
        return await asyncio.get_running_loop().create_server(
            functools.partial(self._new_connection, starttls),
            self.host,
            self.port,
            ssl=implicit,
        )

    def _new_connection(self, starttls: ssl.SSLContext | None) -> _PeerSMTP | _Refusal:
        with self._changed:
            self._connections += 1
            serial = self._connections
        greeting = _next(self.greeting_replies)
        if greeting is not None:
            return _Refusal(self, greeting)
        return _PeerSMTP(self, serial, starttls)

    def _opened(self, protocol: _PeerSMTP | _Refusal) -> None:
        assert self._all_closed is not None
        self._live.add(protocol)
        self._all_closed.clear()

    def _closed(self, protocol: _PeerSMTP | _Refusal) -> None:
        assert self._all_closed is not None
        self._live.discard(protocol)
        if not self._live:
            self._all_closed.set()

    def _record(self, transaction: Transaction) -> None:
        with self._changed:
            (self._messages if transaction.accepted else self._refused).append(transaction)
            self._changed.notify_all()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for protocol in list(self._live):
            protocol.abort()
        if self._live and self._all_closed is not None:
            # connection_lost runs a loop iteration after abort(); wait for it (bounded) so
            # that no socket is left for the garbage collector to complain about.
            await asyncio.wait_for(self._all_closed.wait(), STOP_TIMEOUT / 2)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = self._server = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(STOP_TIMEOUT)
        if not loop.is_running():
            loop.close()

    # ---------------------------------------------------------------- TLS

    def _tls_context(self) -> ssl.SSLContext:
        if self._cert_dir is None:
            cert, key = _shared_certificate(self.hostname)
        else:
            cert, key = self._cert_dir / "peer.crt", self._cert_dir / "peer.key"
            generate_self_signed(cert, key, self.hostname)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx


# -------------------------------------------------------------------- helpers


def _next(queue: deque[str]) -> str | None:
    try:
        return queue.popleft()
    except IndexError:
        return None


def _login(auth_data: object) -> str | None:
    if isinstance(auth_data, LoginPassword):
        return auth_data.login.decode("utf-8", "replace")
    return None


@functools.cache
def _certificates() -> Path:
    directory = tempfile.TemporaryDirectory(prefix="smtppeer-")
    atexit.register(directory.cleanup)
    return Path(directory.name)


@functools.cache
def _shared_certificate(hostname: str) -> tuple[Path, Path]:
    """One certificate per host name for the whole test run (an RSA key takes a while)."""
    directory = _certificates() / hostname
    directory.mkdir()
    cert, key = directory / "peer.crt", directory / "peer.key"
    generate_self_signed(cert, key, hostname)
    return cert, key


@contextlib.contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port whose connections are refused: bound, never listening, so nothing else takes
    it while the test runs (a TCP RST, as from a host with no mail server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def silent_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that completes the TCP handshake but never sends a greeting (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(64)
        yield sock.getsockname()[1]


# -------------------------------------------------------------------- protocols


class _Refusal(asyncio.Protocol):
    """A scripted refusal at connect (RFC 5321 §3.1: 554; §3.8: 421), then close."""

    def __init__(self, peer: SMTPPeer, reply: str) -> None:
        self.peer = peer
        self.reply = reply
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer._opened(self)
        transport.write(self.reply.encode() + b"\r\n")
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer._closed(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _PeerSMTP(SMTP):
    def __init__(self, peer: SMTPPeer, serial: int, starttls: ssl.SSLContext | None) -> None:
        mechanisms = () if peer.auth is not None else ("LOGIN", "PLAIN")
        super().__init__(
            _Handler(peer),
            hostname=peer.hostname,
            tls_context=starttls,
            # With STARTTLS on offer, AUTH waits for it, as on real relays; on the implicit
            # port or a plain-text lab relay AUTH is allowed at once.
            auth_require_tls=starttls is not None,
            auth_exclude_mechanism=mechanisms,
            authenticator=_Authenticator(peer.auth),
            enable_SMTPUTF8=peer.smtputf8,
            timeout=COMMAND_TIMEOUT,
            loop=asyncio.get_running_loop(),
        )
        self.peer = peer
        self.serial = serial
        self.data_began = 0.0

    async def smtp_DATA(self, arg: str) -> None:
        self.data_began = time.monotonic()
        await super().smtp_DATA(arg)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # again after STARTTLS, with the TLS transport
        self.peer._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.peer._closed(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text.startswith("421") and self.transport is not None:
            # RFC 5321 §3.8: 421 means the server closes the transmission channel.
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def tls_active(self) -> bool:
        return self.transport is not None and (
            self.transport.get_extra_info("ssl_object") is not None
        )


class _Authenticator:
    """aiosmtpd's authenticator callback (called without await): one fixed user."""

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        self.credentials = credentials

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.credentials is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self.credentials
        ok = data.login == user.encode() and data.password == password.encode()
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class _Handler:
    """aiosmtpd hooks: answer from the script, record what DATA delivers."""

    def __init__(self, peer: SMTPPeer) -> None:
        self.peer = peer

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.peer.auth is None:  # an MX offers no AUTH
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        # What Postfix offers too, ahead of the final "250 HELP".
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.peer.auth is not None and not session.authenticated:
            return AUTH_REQUIRED
        reply = _next(self.peer.mail_replies) or MAIL_OK
        if reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return reply

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = self._reply_for(address) or _next(self.peer.rcpt_replies) or RCPT_OK
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return reply

    def _reply_for(self, address: str) -> str | None:
        wanted = address.lower()
        rules = list(self.peer.rcpt_by_address.items())
        return next((reply for key, reply in rules if key.lower() == wanted), None)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _PeerSMTP)
        reply = _next(self.peer.data_replies) or f"250 2.0.0 OK: queued as {server.serial}"
        # auth_data is what _Authenticator returned; login_data is deprecated in aiosmtpd.
        auth = session.auth_data if session.authenticated else None
        mail_from = envelope.mail_from or ""
        self.peer._record(
            Transaction(
                mail_from="" if mail_from == "<>" else mail_from,  # aiosmtpd keeps "<>"
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                reply=reply,
                tls=server.tls_active,
                auth_user=_login(auth),
                helo=session.host_name,
                connection=server.serial,
                mail_options=tuple(envelope.mail_options),
                at=time.monotonic(),
                began=server.data_began,
            )
        )
        return reply
