"""The IMAP server: Twisted's IMAP4Server for the connection, our framing and command table.

Twisted gives us the connection, TLS and STARTTLS, line buffering and the inactivity timer.
The rest is ours, because the library's version parses literals only at the end of a line,
cannot say LITERAL+, runs pipelined commands concurrently, and writes per message:

- Framing: lines and literals ({n} and LITERAL+ {n+}) are collected into one command, with a
  size limit per literal; then the pure parser (syntax/commands.py) turns it into a Request.
- One command at a time: while a command runs, the protocol stops reading (the transport is
  paused), so pipelined commands wait their turn and a client cannot queue unbounded work.
- Output is buffered per command and written in one go; big responses wait for the client to
  read (write backpressure) before producing more.
- Changes to the selected mailbox arrive from the event bus (mailbox_view.py) and are told at
  the end of the next command, or at once to a command that holds the session (IDLE) or, between
  commands, to a session that asked with NOTIFY (ext/notify.py).
- Command modules see the session through interfaces.Session, never this class.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import zlib
from array import array
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory
from twisted.mail.imap4 import IMAP4Server
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory

from mailgate.auth import Authenticator, Principal
from mailgate.config import Settings
from mailgate.fairness import CommandRate, PerAddress
from mailgate.imap import registry
from mailgate.imap.errors import Reply, bad, from_store
from mailgate.imap.ext import context
from mailgate.imap.ext.compress import Deflating, Inflating
from mailgate.imap.interfaces import LOGGED_IN, Holder, Notifications, State
from mailgate.imap.mailbox_view import MailboxGone, SelectedMailbox
from mailgate.imap.registry import REGISTRY
from mailgate.imap.syntax.commands import parse_request, parse_tag
from mailgate.imap.syntax.values import Dialect, InvalidMailboxName, ParseError, dialect
from mailgate.store.api import Store
from mailgate.store.errors import StoreError
from mailgate.telemetry import OTHER, Metrics

log = logging.getLogger(__name__)

_LITERAL = re.compile(rb"\{(\d{1,10})(\+?)\}$")
# After our TLS close alert, how long a client may take to answer with its own before the
# connection is cut: a client that never answers must not keep the socket open.
CLOSE_GRACE = 2.0
SWEEP_INTERVAL = 1.0


class ServerContext:
    """What every session shares: settings, store, logins, TLS, and the sweeper that times
    sessions out and ticks the commands that hold one (IDLE's keepalives). One per server."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        authenticator: Authenticator,
        tls_factory: Any,
        metrics: Metrics | None = None,
        connections: PerAddress | None = None,
    ) -> None:
        self.settings = settings
        # Connections per client address (shared with SMTP): none counted without one.
        self.connections = connections or PerAddress(0, ())
        self.store = store
        self.authenticator = authenticator
        self.tls_factory = tls_factory
        self.metrics = metrics or Metrics()
        # One histogram series per registered command, looked up by name with no label work
        # per command (commands register themselves on import: load_commands() comes first).
        self.command_timers = self.metrics.command_timers(REGISTRY)
        self.other_timer = self.command_timers[OTHER]
        self.sessions: set[IMAPServer] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.monotonic()
            for session in list(self.sessions):
                try:
                    session.tick(now)
                except Exception:
                    log.exception("session sweep failed")


class _WriteGate:
    """Registered with the transport so we learn when the client stops reading."""

    __slots__ = ("_resumed", "paused", "since")

    def __init__(self) -> None:
        self.paused = False
        self.since = 0.0  # when the client stopped reading (time.monotonic), while paused
        self._resumed: asyncio.Future[None] | None = None

    def pauseProducing(self) -> None:
        if not self.paused:
            self.since = time.monotonic()
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    def stopProducing(self) -> None:
        self.resumeProducing()

    async def wait(self) -> None:
        if self.paused:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed


class IMAPServer(IMAP4Server):
    MAX_LENGTH = 64 * 1024  # longest command line, as Dovecot allows
    # Twisted's per-session timer stays off: one sweeper for all sessions (ServerContext)
    # runs autologout and IDLE keepalives, which saves a timer per idle connection.
    timeOut = None  # type: ignore[assignment]
    # A connected TCP or TLS transport while the session lives (Twisted types it as the
    # zope interface ITransport | None, which has no TLS or TCP methods for mypy).
    transport: Any

    # Defaults live on the class: an idle session's instance dict holds only what differs,
    # which keeps it small (DESIGN: 10,000 IDLE sessions at no more than 32 KiB each).
    session_state = State.NOT_AUTHENTICATED
    principal: Principal | None = None
    selected: SelectedMailbox | None = None
    condstore = False
    qresync = False  # RFC 7162 §3.2.3: enabled with ENABLE QRESYNC
    utf8_accept = False  # RFC 6855: enabled with ENABLE UTF8=ACCEPT
    rev2 = False  # RFC 9051: enabled with ENABLE IMAP4rev2
    running: asyncio.Task[None] | None = None
    # Run once the tagged reply is written (STARTTLS switches to TLS after its OK).
    after_reply: Callable[[], None] | None = None
    # A command that keeps the session after its handler returned (IDLE): it gets the client's
    # lines, the sweeper's ticks and news of the selected mailbox until it lets go.
    holder: Holder | None = None
    # NOTIFY (RFC 5465) in effect: changes are told between commands too.
    notifier: Notifications | None = None
    _out_size = 0
    _command_bytes = 0
    _literal: bytearray | None = None
    _literal_left = 0
    _line_waiter: asyncio.Future[bytes] | None = None
    _background: asyncio.Task[None] | None = None
    _closed = False  # no more output: we said BYE, or the connection is gone
    _address: str | None = None  # the client's, while it counts in the per-address limit
    _lost = False  # the connection is gone
    _inflating: Inflating | None = None  # COMPRESS=DEFLATE is active (RFC 4978)
    _rate: CommandRate | None = None  # [limits] commands_per_second, from the first command

    def __init__(self, ctx: ServerContext, *, implicit_tls: bool) -> None:
        super().__init__(contextFactory=None if implicit_tls else ctx.tls_factory)
        self.context = ctx
        self.implicit_tls = implicit_tls
        self.last_activity = time.monotonic()
        self._out: list[bytes] = []
        self._chunks: list[bytes] = []
        self._gate = _WriteGate()

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def authenticator(self) -> Authenticator:
        return self.context.authenticator

    @property
    def metrics(self) -> Metrics:
        return self.context.metrics

    # ---------------------------------------------------------------- connection

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self.startedTLS

    @property
    def client_ip(self) -> str:
        peer = self.transport.getPeer() if self.transport else None
        return getattr(peer, "host", "unknown")

    def connectionMade(self) -> None:
        address = self.client_ip
        if not self.context.connections.admit(address):
            self._closed = True
            self.transport.write(b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
            self.transport.loseConnection()
            return
        self._address = address
        self.context.sessions.add(self)
        # Twisted leaves Nagle on; with the client's delayed ACKs every multi-segment
        # response (a header-sync FETCH) would stall about 40 ms.
        self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self._gate, True)
        caps = b" ".join(self.capability_list())
        self.transport.write(b"* OK [CAPABILITY " + caps + b"] mailgate IMAP ready\r\n")

    def connectionLost(self, reason: Any = None) -> None:
        if self._address is not None:
            self.context.connections.release(self._address)
            self._address = None
        self._closed = True
        self._lost = True
        self.context.sessions.discard(self)
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        if self._line_waiter is not None and not self._line_waiter.done():
            self._line_waiter.cancel()
        self.unselect()
        self._gate.stopProducing()

    def tick(self, now: float) -> None:
        """Called about once a second by the sweeper: autologout, and the holder's tick."""
        if self._closed:
            return
        settings = self.settings.imap
        logged_in = self.session_state is not State.NOT_AUTHENTICATED
        # Until LOGIN a short limit, so silent connections cannot pile up; then autologout.
        limit = settings.autologout if logged_in else settings.preauth_timeout
        if self.running is not None:
            # A command waiting for the client to read its output (a big FETCH) would wait
            # forever for a client that never reads: as long as silence is allowed, no longer.
            # A BYE could not reach it; the connection is cut.
            if self._gate.paused and now - self._gate.since > limit:
                log.info("IMAP client %s stopped reading its responses; cut off", self.client_ip)
                self.hang_up()
            elif self._line_waiter is not None and now - self.last_activity > limit:
                # A command waiting for the client's next line (AUTHENTICATE's response).
                self.close(b"Autologout; idle for too long")
            return
        if now - self.last_activity > limit:
            self.close(b"Autologout; idle for too long")
            return
        if self._inflating is not None and now - self.last_activity >= SWEEP_INTERVAL:
            # A quiet client: its decompressor's window is the biggest thing an idle
            # compressed session would hold.
            self._inflating.rest()
        if self.holder is not None:
            self.holder.tick(self, now)
        if self.notifier is not None:
            self.notifier.tick(self)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.close(b"Command line too long")

    def close(self, reason: bytes) -> None:
        """Say BYE and hang up (server shutdown, timeouts, selected mailbox deleted)."""
        if self._closed:
            return
        self.flush()
        self.transport.write(b"* BYE " + reason + b"\r\n")
        self.hang_up()

    def hang_up(self) -> None:
        """Close the connection once what is written has been sent.

        Twisted's TLS transport starts its shutdown only when no producer is registered, so
        the write gate goes first (otherwise the socket would stay open for good). The TLS
        shutdown then waits for the client's close alert; a client that never sends one is
        cut off after CLOSE_GRACE seconds.
        """
        self._closed = True
        if self._lost:
            return
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self.callLater(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        if not self._lost:
            self.transport.abortConnection()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def output_paused(self) -> bool:
        return self._gate.paused

    def tasks(self) -> list[asyncio.Future[Any]]:
        """What is still running for this session."""
        return [t for t in (self.running, self._background) if t is not None and not t.done()]

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work for this session outside any command (IDLE's and NOTIFY's pushes), after
        the session's earlier background work, as both catch up the one view; stopping the
        server waits for it (tasks())."""
        previous = self._background
        if previous is not None and not previous.done():
            work = _after(previous, work)
        task = asyncio.ensure_future(work)
        self._background = task
        return task

    @property
    def storing(self) -> asyncio.Task[None] | None:
        """The command in progress, unless it is only waiting for the client (IDLE)."""
        return None if self._line_waiter is not None else self.running

    @property
    def utf8(self) -> bool:
        return self.utf8_accept or self.rev2

    @property
    def dialect(self) -> Dialect:
        return dialect(self.utf8_accept, self.rev2)

    def capability_list(self) -> list[bytes]:
        caps = [b"IMAP4rev1", b"IMAP4rev2", b"LITERAL+", b"SASL-IR", b"ID", b"ENABLE", b"IDLE"]
        if self.session_state is State.NOT_AUTHENTICATED:
            if self.tls_active:
                caps.append(b"AUTH=PLAIN")
            else:
                caps += [b"STARTTLS", b"LOGINDISABLED"]
            return caps
        limit = self.settings.imap.max_message_size
        return [
            *caps,
            b"NAMESPACE",
            b"UIDPLUS",
            b"MOVE",
            b"UNSELECT",
            b"CHILDREN",
            b"SPECIAL-USE",
            b"LIST-EXTENDED",
            b"LIST-STATUS",
            b"ESEARCH",
            b"SORT",
            b"SORT=DISPLAY",
            b"ESORT",
            b"CONTEXT=SEARCH",
            b"CONTEXT=SORT",
            b"THREAD=ORDEREDSUBJECT",
            b"THREAD=REFERENCES",
            b"THREAD=REFS",
            b"MULTIAPPEND",
            b"CONDSTORE",
            b"QRESYNC",
            b"OBJECTID",
            b"STATUS=SIZE",
            b"QUOTA",
            b"QUOTA=RES-STORAGE",
            b"APPENDLIMIT=%d" % limit,
            b"BINARY",
            b"CATENATE",
            b"SEARCHRES",
            b"WITHIN",
            b"SAVEDATE",
            b"PREVIEW",
            b"COMPRESS=DEFLATE",
            b"UTF8=ACCEPT",
            b"NOTIFY",
        ]

    # ---------------------------------------------------------------- output

    def untagged(self, data: bytes) -> None:
        self.send(b"* " + data + b"\r\n")

    def send(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def flush(self) -> None:
        if self._out and not self._closed:
            self.transport.writeSequence(self._out)
        self._out = []
        self._out_size = 0

    async def drain(self, *, at_least: int = 0) -> None:
        """Write what is buffered (once there is `at_least` of it); wait while the client is
        not reading, so a big response never piles up in memory."""
        if self._out_size >= at_least:
            self.flush()
            await self._gate.wait()

    # ---------------------------------------------------------------- framing

    def dataReceived(self, data: bytes) -> None:
        """Bytes off the wire (from TLS); with COMPRESS active they are deflate."""
        inflating = self._inflating
        if inflating is None:
            super().dataReceived(data)
            return
        try:
            for plain in inflating.inflate(data):
                LineReceiver.dataReceived(self, plain)
                if self.paused or self._closed:
                    # The rest waits, still compressed, until resumeProducing asks again.
                    return
        except zlib.error as exc:
            log.info("IMAP client sent a bad compressed stream: %s", exc)
            self._inflating = None
            self.close(b"Bad compressed data")

    def setLineMode(self, extra: bytes = b"") -> None:
        # `extra` is plain text already (what followed a literal): it must not go through
        # dataReceived, which decompresses.
        self.line_mode = 1
        if extra:
            LineReceiver.dataReceived(self, extra)

    def lineReceived(self, line: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.holder is not None:
            self.holder.line_received(self, line)
            return
        if self._line_waiter is not None:
            waiter, self._line_waiter = self._line_waiter, None
            # Stop reading again at once: whatever follows is the next command.
            self.pauseProducing()
            if not waiter.done():
                waiter.set_result(line)
            return
        self._chunks.append(line)
        self._command_bytes += len(line)
        match = _LITERAL.search(line)
        if match is None:
            if not self._appending() and self._command_bytes > self._command_limit:
                self._abandon_command(self._too_big())
                return
            chunks, self._chunks, self._command_bytes = self._chunks, [], 0
            self._begin(chunks)
            return
        size, non_sync = int(match.group(1)), bool(match.group(2))
        problem = self._literal_problem(size)
        if problem is not None:
            if not non_sync:
                # The client waits for "+" before sending; refusing now costs it nothing.
                self._abandon_command(problem)
                return
            # LITERAL+ data is already on its way: refuse, and hang up rather than read it.
            self.send(problem.line(self._tag()))
            self.close(b"Literal too large")
            return
        self._literal = bytearray()
        self._literal_left = size
        if not non_sync:
            self.send(b"+ Ready for literal data\r\n")
            self.flush()
        self.setRawMode()
        if size == 0:
            self._finish_literal(b"")

    def rawDataReceived(self, data: bytes) -> None:
        # Literal data keeps a logged-in session alive (a big APPEND on a slow link); before
        # login only whole lines do, so a literal trickled a byte at a time cannot hold an
        # anonymous connection past preauth_timeout (slowloris).
        if self.session_state is not State.NOT_AUTHENTICATED:
            self.last_activity = time.monotonic()
        take = min(self._literal_left, len(data))
        assert self._literal is not None
        self._literal += data[:take]
        self._literal_left -= take
        if self._literal_left == 0:
            self._finish_literal(data[take:])

    def _finish_literal(self, rest: bytes) -> None:
        assert self._literal is not None
        self._chunks.append(bytes(self._literal))
        self._command_bytes += len(self._literal)
        self._literal = None
        self.setLineMode(rest)

    def _literal_problem(self, size: int) -> Reply | None:
        if not self._appending():
            # Checked before a byte of the literal is read or buffered (Dovecot refuses the same).
            return self._too_big() if self._command_bytes + size > self._command_limit else None
        limit = self.settings.imap.max_message_size
        if size > limit:
            return Reply("NO", f"Literal of {size} bytes exceeds the limit of {limit}", "TOOBIG")
        if self._command_bytes + size > 4 * limit:
            return Reply("NO", "Command too large", "LIMIT")
        return None

    def _appending(self) -> bool:
        """Whether the command being read is an APPEND, the one that carries messages."""
        words = self._chunks[0].split(None, 3)[1:3]
        return any(w.upper() == b"APPEND" for w in words)

    @property
    def _command_limit(self) -> int:
        return self.settings.imap.max_command_size

    def _too_big(self) -> Reply:
        return Reply("BAD", f"Commands are limited to {self._command_limit} bytes", "TOOBIG")

    def _tag(self) -> str:
        return parse_tag(self._chunks) or "*"

    def _abandon_command(self, reply: Reply) -> None:
        self.send(reply.line(self._tag()))
        self.flush()
        self._chunks, self._command_bytes = [], 0

    # ---------------------------------------------------------------- dispatch

    def _begin(self, chunks: list[bytes]) -> None:
        # Stop reading until this command is done: pipelined commands wait in the buffer.
        self.pauseProducing()
        task = asyncio.ensure_future(self._run(chunks))
        self.running = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running = None
        if not task.cancelled() and task.exception() is not None:
            log.error("IMAP command crashed", exc_info=task.exception())
        if self._closed:
            return
        self.last_activity = time.monotonic()
        if self.notifier is not None:
            self.notifier.command_done(self)
        wait = self._command_wait()
        if wait:
            self.metrics.slowed("imap")
            self.callLater(wait, self._read_on)
        else:
            self.resumeProducing()

    def _command_wait(self) -> float:
        rate = self._rate
        if rate is None:
            per_second = self.settings.limits.commands_per_second
            if not per_second:
                return 0.0
            rate = self._rate = CommandRate(per_second)
        return rate.wait()

    def _read_on(self) -> None:
        if not self._closed:
            self.resumeProducing()

    async def _run(self, chunks: list[bytes]) -> None:
        started = time.perf_counter()
        background = self._background
        if background is not None and not background.done():
            # A push in progress (NOTIFY's) ends first: both catch up the one view.
            await asyncio.wait([background])
        name = OTHER
        tag = "*"
        try:
            request = parse_request(chunks, self.dialect)
            tag = request.tag
            name = request.name
            command = REGISTRY.get(request.name)
            if command is None:
                raise bad(f"{request.name} is not implemented", "CLIENTBUG")
            if not self.session_state & command.states:
                raise bad(_wrong_state(self.session_state, command.states))
            text = await command.handler(self, request)
            if text is None:
                # The command holds the session (IDLE): its tagged reply comes later.
                self.flush()
                self._timed(name, started)
                return
            await self.catch_up(expunges_ok=command.expunges_ok or request.uid)
            self.send(f"{tag} OK {text}\r\n".encode())
        except ParseError as exc:
            tag = exc.tag or "*"
            if exc.saving and self.selected is not None:
                self.selected.saved = ()
            if exc.code == "BADCHARSET":
                # RFC 3501 §6.4.4: an unknown charset is NO, naming the ones we know.
                self.send(Reply("NO", exc.message, "BADCHARSET (UTF-8 US-ASCII)").line(tag))
            elif isinstance(exc, InvalidMailboxName):
                self.send(Reply("NO", exc.message, exc.code).line(tag))
            else:
                self.send(Reply("BAD", exc.message, exc.code).line(tag))
        except Reply as reply:
            self.send(reply.line(tag, utf8=self.utf8))
        except MailboxGone:
            self.close(b"The selected mailbox was deleted")
        except StoreError as exc:
            self.context.metrics.store_error(exc)
            self.send(from_store(exc).line(tag, utf8=self.utf8))
        except Exception:
            log.exception("IMAP command failed: %s", tag)
            self.send(f"{tag} NO [SERVERBUG] Internal error; the incident was logged\r\n".encode())
        self.flush()
        self._timed(name, started)
        if self.after_reply is not None:
            after, self.after_reply = self.after_reply, None
            after()
        if self.session_state is State.LOGOUT:
            self.hang_up()

    def _timed(self, name: str, started: float) -> None:
        context = self.context
        timer = context.command_timers.get(name, context.other_timer)
        timer.observe(time.perf_counter() - started)

    async def catch_up(self, *, expunges_ok: bool = True) -> None:
        selected = self.selected
        if selected is None or not selected.needs_catch_up:
            return
        notifier = self.notifier
        known = selected.last_uid
        before = array("I", selected.uids) if selected.live else None
        lines = await selected.catch_up(
            self.store,
            expunges_ok=expunges_ok,
            condstore=self.condstore,
            vanished=self.qresync,
            recent=not self.rev2,
            flags=notifier is None or notifier.flag_changes,
        )
        if before is not None and not selected.expunges_pending:
            # Live searches (RFC 5267 §4.3) are evaluated again only now that the mailbox
            # changed, and not while an expunged message is still numbered: it is removed
            # from them when its EXPUNGE goes out.
            removals, additions = await context.updates(self, before)
            lines = [*removals, *lines, *additions]
        for line in lines:
            self.untagged(line)
        if selected.recent_from is not None:
            # EXISTS goes out first; then \Recent is claimed (a write) and RECENT follows.
            self.flush()
            self.untagged(await selected.recent_after_exists(self.store))
        if notifier is not None and selected.last_uid > known:
            await notifier.new_messages(self, known)

    # ---------------------------------------------------------------- states

    def logged_in(self, principal: Principal) -> None:
        self.principal = principal
        self.session_state = State.AUTHENTICATED

    def select(self, selected: SelectedMailbox) -> None:
        self.unselect()
        selected.listen(self.store, self)
        self.selected = selected
        self.session_state = State.SELECTED

    def unselect(self) -> None:
        if self.selected is not None:
            self.selected.stop_listening()
            self.selected = None
        if self.session_state is State.SELECTED:
            self.session_state = State.AUTHENTICATED

    def mailbox_changed(self) -> None:
        """The selected mailbox changed (its view is now dirty): the holder hears of it at once,
        else NOTIFY's notifier; otherwise the end of the next command tells the client."""
        if self.holder is not None:
            self.holder.mailbox_changed(self)
        elif self.notifier is not None:
            self.notifier.mailbox_changed(self)

    async def read_line(self) -> bytes:
        """The client's next line, read raw (an AUTHENTICATE response)."""
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._line_waiter = waiter
        self.resumeProducing()
        try:
            return await waiter
        finally:
            self._line_waiter = None

    def start_tls(self) -> None:
        """Switch to TLS after the tagged OK is written; drop anything the client pipelined
        before the handshake (RFC 3501 §6.2.1, and the STARTTLS command injection attacks)."""
        self.flush()
        self.clearLineBuffer()
        self.transport.startTLS(self.context.tls_factory)
        self.startedTLS = True

    @property
    def compressing(self) -> bool:
        return self._inflating is not None

    def start_compression(self) -> None:
        """RFC 4978: compress both ways from the byte after COMPRESS's tagged OK. What the
        client sent after the command is compressed already (the parser only held it)."""
        self.flush()
        pending = self.clearLineBuffer()
        self.transport = Deflating(self.transport)
        self._inflating = Inflating()
        if pending:
            self.dataReceived(pending)


async def _after(previous: asyncio.Future[None], work: Coroutine[Any, Any, None]) -> None:
    await asyncio.wait([previous])
    await work


def _wrong_state(current: State, allowed: State) -> str:
    if allowed & LOGGED_IN and current is State.NOT_AUTHENTICATED:
        return "Log in first"
    if allowed == State.SELECTED:
        return "Select a mailbox first"
    if allowed == State.NOT_AUTHENTICATED:
        return "Already logged in"
    return "Command not valid in this state"


class IMAPFactory(Factory):
    noisy = False  # no "Starting factory" log lines

    def __init__(self, ctx: ServerContext, *, implicit_tls: bool) -> None:
        self.ctx = ctx
        self.implicit_tls = implicit_tls

    def buildProtocol(self, addr: Any) -> IMAPServer:
        protocol = IMAPServer(self.ctx, implicit_tls=self.implicit_tls)
        protocol.factory = self
        return protocol


class _ClientAddress(ProtocolWrapper):
    """Passes everything through, but names the client the PROXY header named as the peer."""

    def getPeer(self) -> Any:
        return self.factory.client


class _ProxiedFactory(WrappingFactory):
    protocol = _ClientAddress
    noisy = False

    def __init__(self, wrapped: Any, client: IPv4Address | IPv6Address) -> None:
        super().__init__(wrapped)
        self.client = client


def adopt(
    sock: socket.socket, client: tuple[str, int], factory: IMAPFactory, tls: Any | None
) -> None:
    """Serve an accepted socket that came through a PROXY-protocol balancer (see proxy.py);
    `tls` is the context factory on the implicit-TLS port, which starts TLS here."""
    from twisted.internet import reactor

    kind = IPv6Address if ":" in client[0] else IPv4Address
    inner: Any = factory
    if tls is not None:
        inner = TLSMemoryBIOFactory(tls, False, factory)  # type: ignore[arg-type]
    wrapped = _ProxiedFactory(inner, kind("TCP", client[0], client[1]))
    # Twisted takes a duplicate of the descriptor; ours is closed either way.
    try:
        reactor.adoptStreamConnection(sock.fileno(), sock.family, wrapped)
    finally:
        sock.close()


def load_commands() -> None:
    """Import every command module so that each registers its handlers."""
    from mailgate.imap import (  # noqa: F401
        append,
        capability,
        copy,
        expunge,
        fetch,
        flags,
        login,
        mailboxes,
        noop,
        search,
        select,
        sort,
        thread,
    )
    from mailgate.imap.ext import (  # noqa: F401
        client_id,
        compress,
        context,
        enable,
        idle,
        move,
        namespace,
        notify,
        quota,
        unselect,
    )

    assert registry.REGISTRY
