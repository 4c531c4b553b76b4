"""aiosmtpd's SMTP protocol with mailgate's limits and reply texts.

aiosmtpd owns the wire; this subclass adds what it lacks: a hard limit on a session's total
length, a 421 before closing an idle client, a pace for a client's commands, and enhanced
status codes on its stock replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException, syntax

from mailgate.config import SMTPSettings
from mailgate.delivery.trace import Origin
from mailgate.fairness import CommandRate, PerAddress
from mailgate.smtp import replies
from mailgate.smtp.replies import (
    BAD_UTF8,
    GREETING_IDENT,
    IDLE_TIMEOUT,
    MAILBOX_FULL,
    MESSAGE_TOO_BIG,
    SESSION_EXPIRED,
    SHUTTING_DOWN,
    TEMPORARY_FAILURE,
    TLS_ALREADY_ACTIVE,
    TOO_MANY_CONNECTIONS,
    UTF8_ADDRESS_WITHOUT_SMTPUTF8,
    rewrite,
)
from mailgate.store.api import Store
from mailgate.store.errors import StoreError
from mailgate.store.records import Inbox
from mailgate.telemetry import Metrics

# aiosmtpd refuses lines over 1001 octets (RFC 5321 §4.5.3.1.6), but agents and scripts often
# send longer unwrapped lines (a generated paragraph, minified HTML, a JSON payload) and
# Postfix accepts them; this still bounds what one line may hold in memory.
MAX_LINE = 1024 * 1024


class RoutedEnvelope(Envelope):
    """aiosmtpd's envelope, plus the inboxes the MX resolved the recipients to at RCPT, and
    when MAIL FROM began the transaction (for its latency)."""

    def __init__(self) -> None:
        super().__init__()
        self.inboxes: list[Inbox] = []
        self.started: float | None = None


def routed(envelope: Envelope) -> RoutedEnvelope:
    # MailgateSMTP makes every envelope a RoutedEnvelope.
    assert isinstance(envelope, RoutedEnvelope)
    return envelope


class MailgateSMTP(SMTP):
    line_length_limit = MAX_LINE

    def __init__(
        self,
        handler: Any,
        *,
        settings: SMTPSettings,
        hostname: str,
        tls_context: ssl.SSLContext,
        implicit_tls: bool,
        loop: asyncio.AbstractEventLoop,
        sessions: set[MailgateSMTP],
        mx: bool = False,
        client: tuple[str, int] | None = None,
        connections: PerAddress | None = None,
        rate: CommandRate | None = None,
        slowed: Callable[[], None] = lambda: None,
    ) -> None:
        with warnings.catch_warnings():
            # On the implicit-TLS port aiosmtpd cannot see that TLS is in place and warns
            # about AUTH without TLS; the warning does not apply there.
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(
                handler,
                data_size_limit=settings.max_message_size,
                hostname=hostname,
                ident=GREETING_IDENT,
                # On the implicit-TLS port the whole connection is encrypted: there is no
                # STARTTLS to offer and AUTH needs no further TLS.
                tls_context=None if implicit_tls else tls_context,
                require_starttls=False,
                timeout=settings.command_timeout,
                # The MX takes mail from any server without AUTH, and offers none.
                auth_required=not mx,
                auth_require_tls=not implicit_tls,
                auth_exclude_mechanism=["PLAIN", "LOGIN"] if mx else None,
                # RFC 6531: commands are read as UTF-8 (invalid bytes as surrogate escapes,
                # which address checks refuse) and SMTPUTF8 is advertised.
                enable_SMTPUTF8=True,
                loop=loop,
            )
        # aiosmtpd hands on bytes that are not UTF-8 as surrogate escapes; like Postfix with
        # smtputf8_enable, such a command is refused whole, whichever it is.
        self._smtp_methods = {
            name: _UTF8Only(self, method) for name, method in self._smtp_methods.items()
        }
        self._implicit_tls = implicit_tls
        self.mx = mx  # the MX listener's session, not submission's (counted apart)
        # The client's address from a PROXY header; the socket's peer is the balancer.
        self._client = client
        self._session_limit = settings.session_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._sessions = sessions
        self._connections = connections or PerAddress(0, ())
        self._address: str | None = None  # counted in the per-address limit while open
        self._refused = False  # over that limit: told so instead of greeted, and closed
        self._rate = rate  # [limits] commands_per_second; `slowed` counts each wait
        self._slowed = slowed
        # Set while a message is being committed, so a shutdown can wait for it.
        self.running: asyncio.Future[None] | None = None
        # Between our 354 and DATA's reply: the message's bytes are arriving, and how many of
        # them since the last line break. aiosmtpd keeps an unterminated line whole, however
        # long, so a body that never ends (base64 without line breaks) would take all memory:
        # past what could ever be accepted, the message is refused and the session closed.
        self._receiving = False
        self._unterminated = 0
        self._unterminated_limit = settings.max_message_size + MAX_LINE

    def _create_envelope(self) -> RoutedEnvelope:
        return RoutedEnvelope()

    @property
    def peer_ip(self) -> str:
        peer: Any = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    def origin(self, *, authenticated: bool, smtputf8: bool = False) -> Origin:
        """Where a message from this client comes from, for its Received header."""
        tls = None
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()
        helo = (self.session.host_name if self.session else None) or ""
        return Origin.smtp(
            ip=self.peer_ip, helo=helo, tls=tls, authenticated=authenticated, smtputf8=smtputf8
        )

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        done: asyncio.Future[None] = self.loop.create_future()
        self.running = done
        try:
            yield
        finally:
            self.running = None
            done.set_result(None)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task serving this client (aiosmtpd's), done once the session has ended."""
        return self._handler_coroutine

    def shut_down(self) -> None:
        self._say_and_close(SHUTTING_DOWN)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # aiosmtpd would start a second TLS layer inside the first one.
        if self._implicit_tls or self._tls_protocol is not None:
            await self.push(TLS_ALREADY_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            if self._refused and status.startswith("220 "):
                # In place of the greeting (aiosmtpd's to send): the refusal, then the close.
                await super().push(TOO_MANY_CONNECTIONS)
                if self.transport is not None:
                    self.transport.close()
                return
            # Replies may quote what the client sent, read with surrogate escapes: they would
            # not encode.
            status = rewrite(status).encode("utf-8", "replace").decode("utf-8")
            self._receiving = status.startswith("354")
            self._unterminated = 0
        await super().push(status)
        if self._rate is not None and status[3:4] in (" ", b" "):
            # A reply's last line ends a command; aiosmtpd reads the next once this returns.
            wait = self._rate.wait()
            if wait:
                self._slowed()
                await asyncio.sleep(wait)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again after STARTTLS; the session limit counts from the first call.
        first = self._deadline is None
        super().connection_made(transport)
        if self._client is not None and self.session is not None:
            # aiosmtpd types peer as str, but sets it to the socket's (host, port) too.
            self.session.peer = self._client  # type: ignore[assignment]
        if first:
            address = self.peer_ip
            if self._connections.admit(address):
                self._address = address
            else:
                self._refused = True
            self._sessions.add(self)
            self._deadline = self.loop.call_later(self._session_limit, self._expire)

    def connection_lost(self, error: Exception | None) -> None:
        if self._address is not None:
            self._connections.release(self._address)
            self._address = None
        self._sessions.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # RFC 5321 §4.5.3.2: the timeout runs between blocks, not over a whole command; a slow
        # upload that keeps sending is not silent (session_timeout still caps the session).
        if self._timeout_handle is not None:
            self._reset_timeout()
        if self._receiving:
            newline = data.rfind(b"\n")
            if newline >= 0:
                self._unterminated = len(data) - newline - 1
            else:
                self._unterminated += len(data)
            if self._unterminated > self._unterminated_limit:
                self._receiving = False
                self._say_and_close(MESSAGE_TOO_BIG)
                return
        super().data_received(data)

    def _timeout_cb(self) -> None:
        self._say_and_close(IDLE_TIMEOUT)

    def _expire(self) -> None:
        self._say_and_close(SESSION_EXPIRED)

    def _say_and_close(self, reply: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        transport.close()


class _UTF8Only:
    """A command method that first refuses an argument that is not UTF-8. Slots, not a closure
    made by functools.wraps: the 13 of a session cost 1.1 KiB, their dict included, not 6.4."""

    __slots__ = ("_method", "_server")

    def __init__(self, server: MailgateSMTP, method: Callable[[str | None], Awaitable[None]]):
        self._server = server
        self._method = method

    async def __call__(self, arg: str | None) -> None:
        if arg is not None and not _is_utf8(arg):
            await self._server.push(BAD_UTF8)
            return
        await self._method(arg)

    def __getattr__(self, name: str) -> Any:
        # HELP reads the syntax aiosmtpd keeps on the method.
        return getattr(self._method, name)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_refusal(address: str, envelope: Envelope) -> str | None:
    """RFC 6531 §3.5: a UTF-8 address needs MAIL FROM's SMTPUTF8 parameter."""
    if address.isascii() or envelope.smtp_utf8:
        return None
    return UTF8_ADDRESS_WITHOUT_SMTPUTF8


async def quota_refusal(store: Store, inbox_id: int, metrics: Metrics) -> str | None:
    """At RCPT: the refusal of a recipient whose inbox is over its quota (552 5.2.2), or 451
    4.3.0 when the store cannot tell; None when there is room."""
    try:
        if (await store.quota(inbox_id)).full:
            return MAILBOX_FULL
    except StoreError as exc:
        metrics.store_error(exc)
        return TEMPORARY_FAILURE
    return None


def session_error(log: logging.Logger, error: Exception) -> str:
    """A handler's `handle_exception`: the reply, and a log line fitting whose fault it was."""
    if isinstance(error, TLSSetupException):
        # The client's TLS handshake failed (aiosmtpd closes the connection): the client's
        # problem, not a server error worth a traceback in the log.
        log.info("STARTTLS handshake failed: %s", error.__cause__)
    else:
        log.error("SMTP session error", exc_info=error)
    return replies.TEMPORARY_FAILURE


def advertise(session: Any, hostname: str, responses: list[str], *, auth: bool) -> list[str]:
    """EHLO lines: aiosmtpd's, plus PIPELINING and ENHANCEDSTATUSCODES (which we do), minus
    AUTH where none is offered (the MX)."""
    session.host_name = hostname
    lines = [r for r in responses[:-1] if auth or not r.startswith("250-AUTH")]
    return [*lines, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]
