"""The composition root: one event loop, one store, the IMAP, SMTP and HTTP API listeners on it.

Twisted runs on the asyncio reactor, so Twisted's IMAP server, aiosmtpd's SMTP servers and
uvicorn's HTTP protocol share the loop. `install_reactor` must run before anything imports
`twisted.internet.reactor`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailgate.auth import Authenticator
from mailgate.background import stop_task
from mailgate.config import ConfigError, Settings
from mailgate.delivery.dns import Resolver
from mailgate.delivery.domains import CLIENT_SERVICES, ClientPort
from mailgate.delivery.inbound import Inbound
from mailgate.delivery.offload import Offload
from mailgate.delivery.outbound import OutboundWorker, node_id
from mailgate.delivery.routing import Router
from mailgate.delivery.submission import Submission
from mailgate.delivery.verdicts import load_public_suffixes
from mailgate.fairness import CommandRate, PerAddress
from mailgate.http.context import Services
from mailgate.http.hooks import WebhookWorker
from mailgate.http.mcp import offered as offered_tools
from mailgate.http.server import ApiServer
from mailgate.imap.server import IMAPFactory, ServerContext, adopt, load_commands
from mailgate.listeners import Listener, describe, why
from mailgate.provision import backfill_domains
from mailgate.proxy import Address, ProxyListener
from mailgate.proxy import listen as proxy_listen
from mailgate.proxy import networks as proxy_networks
from mailgate.smtp.mx import MXHandler
from mailgate.smtp.server import MailgateSMTP
from mailgate.smtp.submission import SubmissionHandler
from mailgate.store.api import Store
from mailgate.store.errors import StoreError
from mailgate.store.records import RECEIPT_LIFETIME
from mailgate.telemetry import (
    HTTP,
    IMAP,
    SMTP_MX,
    SMTP_SUBMISSION,
    WEBSOCKET,
    Family,
    Metrics,
    outbound_queue,
    webhook_backlogs,
)
from mailgate.tls import Certificate, TLSContexts, ensure_certificate

log = logging.getLogger(__name__)

# How long a shutdown waits for commands that are writing to the store.
DRAIN_SECONDS = 10.0
# Expunge records are kept a day, far longer than a session goes without catching up (it does
# at every command, and is logged out after [imap] autologout); one that did is still told.
EXPUNGE_HISTORY = 86400
PRUNE_INTERVAL = 3600.0


def install_reactor(loop: asyncio.AbstractEventLoop) -> None:
    """Make Twisted's global reactor the asyncio reactor on `loop` (once per process)."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if getattr(reactor, "_asyncioEventloop", None) is not loop:
            raise RuntimeError("a Twisted reactor is already installed on another loop")
        return
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)


@dataclass
class App:
    """One mailgate node. `start` opens everything, `stop` closes it without losing a message."""

    settings: Settings
    store: Store | None = None
    certificate: Certificate | None = None
    listeners: list[Listener] = field(default_factory=list)
    _imap_ports: list[Any] = field(default_factory=list)
    _smtp_servers: list[asyncio.Server] = field(default_factory=list)
    _proxy_listeners: list[ProxyListener] = field(default_factory=list)
    _imap: ServerContext | None = None
    _smtp_sessions: set[MailgateSMTP] = field(default_factory=set)
    _handler: SubmissionHandler | None = None
    _mx: MXHandler | None = None
    outbound: OutboundWorker | None = None
    webhooks: WebhookWorker | None = None
    api: ApiServer | None = None
    _api_server: asyncio.Server | None = None
    _offload: Offload = field(default_factory=Offload)
    _connections: PerAddress = field(default_factory=lambda: PerAddress(0, ()))
    _pruning: asyncio.Task[None] | None = None
    _tls_watch: asyncio.Task[None] | None = None
    # This node's own metrics (GET /metrics), apart from any other node's in the process.
    metrics: Metrics = field(default_factory=Metrics)
    # A worker process of `serve` ([server] workers): its number, the listening sockets its
    # parent bound (`bind`), its socket to the parent (store/channel.py), and what to do when
    # the parent is gone. Worker 0 alone runs the jobs that must run once (pruning).
    worker: int | None = None
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    relay: socket.socket | None = None
    on_orphaned: Callable[[], None] | None = None

    def port(self, name: str) -> int:
        return next(listener.port for listener in self.listeners if listener.name == name)

    async def start(self) -> None:
        settings = self.settings
        limits = settings.limits
        self._connections = PerAddress(limits.connections_per_ip, limits.exempt_networks)
        offered_tools(settings.api.mcp_tools)  # the one setting config.py cannot check alone
        self.certificate = ensure_certificate(settings)
        tls = TLSContexts(settings, self.certificate)
        tls.on_reload = self._certificate_reloaded
        tls.renews = not self.worker
        ssl_context, mx_ssl_context, tls_factory = tls.client, tls.mx, tls.factory
        self.store = await Store.open(
            settings.database_url,
            pool_size=settings.database.pool_size,
            pool_timeout=settings.database.pool_timeout,
            inbox_quota=limits.inbox_quota,
        )
        try:
            await self.store.listen(self.relay, self.on_orphaned)
            await backfill_domains(self.store)
            metrics = self.metrics
            authenticator = Authenticator(self.store, settings.auth, metrics)
            load_commands()
            self._imap = ServerContext(
                settings, self.store, authenticator, tls_factory, metrics, self._connections
            )
            self._imap.start()
            resolver = Resolver(settings.dns.nameservers, settings.dns.timeout)
            node = node_id(settings, self.worker)
            self.outbound = OutboundWorker(
                self.store, resolver, settings, self._offload, metrics, node=node
            )
            router = Router(self.store)
            submission = Submission(
                self.store,
                router,
                settings.server.hostname,
                self.outbound.wake,
                metrics,
                settings.limits.messages_per_hour,
            )
            self._handler = SubmissionHandler(
                submission, router, authenticator, settings.smtp, metrics
            )
            load_public_suffixes()  # parsed in the background, ready for the first DMARC check
            inbound = Inbound(
                self.store, router, resolver, settings.server.hostname, self._offload, metrics
            )
            self._mx = MXHandler(inbound, settings.smtp, metrics)
            await self._listen_imap(tls_factory)
            await self._listen_smtp(ssl_context, mx_ssl_context)
            # After IMAP and SMTP: the API tells mail clients the ports they really listen on.
            client_ports = [ClientPort(name, self.port(name)) for name in CLIENT_SERVICES]
            services = Services(
                self.store, authenticator, settings, submission, resolver, client_ports, metrics
            )
            self.api = ApiServer(services)
            self.webhooks = WebhookWorker(services, node)
            services.webhooks_changed = self.webhooks.webhooks_changed
            self._count_sessions()
            db = self.store.db
            metrics.count_commits(lambda: (db.commits, db.committed_writes))
            metrics.on_scrape(self._queue_metrics)
            metrics.on_scrape(self._webhook_metrics)
            await self.api.start()
            await self._listen_api(ssl_context)
            self.outbound.start()
            self.webhooks.start()
            if not self.worker:
                self._pruning = asyncio.create_task(self._prune(), name="mailgate-prune")
            if self.worker is not None:
                # Which worker answered a scrape: each has its own counters.
                metrics.gauge(
                    "mailgate_worker",
                    "The worker process that answered this scrape ([server] workers)",
                    ["worker", "pid"],
                ).labels(str(self.worker), str(os.getpid())).set(1)
            self._tls_watch = asyncio.create_task(tls.watch(), name="mailgate-tls-watch")
        except BaseException:
            await self.stop()
            raise

    def _certificate_reloaded(self, certificate: Certificate) -> None:
        self.certificate = certificate

    async def _listen_imap(self, tls_factory: Any) -> None:
        from twisted.internet import reactor
        from twisted.internet.error import CannotListenError
        from twisted.protocols.tls import TLSMemoryBIOFactory

        assert self._imap is not None
        bind = self.settings.server.bind
        for name, key, implicit in (("imap", "port", False), ("imaps", "tls_port", True)):
            factory = IMAPFactory(self._imap, implicit_tls=implicit)
            requested = getattr(self.settings.imap, key)
            if self.settings.server.proxy_networks:

                async def handoff(
                    sock: Any, client: Address, factory: IMAPFactory = factory, tls: bool = implicit
                ) -> None:
                    adopt(sock, client, factory, tls_factory if tls else None)

                port_number = self._listen_proxied(name, f"[imap] {key}", requested, handoff)
                self.listeners.append(describe(self.settings, name, port_number))
                continue
            if name in self.sockets:
                inherited = self.sockets[name]
                inner: Any = factory
                if implicit:
                    inner = TLSMemoryBIOFactory(tls_factory, False, factory)  # type: ignore[arg-type]
                # Twisted listens on a duplicate of the descriptor, which must not block: the
                # other workers accept on it too, and may take a connection first.
                inherited.setblocking(False)
                port = reactor.adoptStreamPort(inherited.fileno(), inherited.family, inner)
                inherited.close()
                self._imap_ports.append(port)
                self.listeners.append(describe(self.settings, name, port.getHost().port))
                continue
            try:
                if implicit:
                    port = reactor.listenSSL(requested, factory, tls_factory, interface=bind)
                else:
                    port = reactor.listenTCP(requested, factory, interface=bind)  # type: ignore[arg-type]
            except CannotListenError as exc:
                raise ConfigError(
                    f"[imap] {key}: cannot listen on {bind}:{requested}: {why(exc.socketError)}"
                ) from None
            self._imap_ports.append(port)
            self.listeners.append(describe(self.settings, name, port.getHost().port))

    async def _listen_smtp(self, client_context: Any, mx_context: Any) -> None:
        """Submission on 465/587 with the client ports' TLS; the MX with its broader one."""
        loop = asyncio.get_running_loop()
        bind = self.settings.server.bind
        for name, key, implicit in (
            ("submission", "submission_port", False),
            ("submissions", "tls_port", True),
            ("mx", "mx_port", False),
        ):
            requested = getattr(self.settings.smtp, key)
            ssl_context = mx_context if name == "mx" else client_context
            if self.settings.server.proxy_networks:

                async def handoff(
                    sock: Any,
                    client: Address,
                    implicit: bool = implicit,
                    mx: bool = name == "mx",
                    ssl_context: Any = ssl_context,
                ) -> None:
                    await loop.connect_accepted_socket(
                        lambda: self._smtp_session(
                            ssl_context, implicit=implicit, mx=mx, client=client
                        ),
                        sock,
                        ssl=ssl_context if implicit else None,
                    )

                port = self._listen_proxied(name, f"[smtp] {key}", requested, handoff)
                self.listeners.append(describe(self.settings, name, port))
                continue

            def protocol(
                implicit: bool = implicit, mx: bool = name == "mx", ssl_context: Any = ssl_context
            ) -> MailgateSMTP:
                return self._smtp_session(ssl_context, implicit=implicit, mx=mx)

            tls = ssl_context if implicit else None
            try:
                if name in self.sockets:
                    server = await loop.create_server(protocol, sock=self.sockets[name], ssl=tls)
                else:
                    server = await loop.create_server(protocol, bind, requested, ssl=tls)
            except OSError as exc:
                raise ConfigError(
                    f"[smtp] {key}: cannot listen on {bind}:{requested}: {why(exc)}"
                ) from None
            self._smtp_servers.append(server)
            port = server.sockets[0].getsockname()[1]
            self.listeners.append(describe(self.settings, name, port))

    async def _listen_api(self, ssl_context: Any) -> None:
        assert self.api is not None
        api = self.api
        loop = asyncio.get_running_loop()
        bind = self.settings.server.bind
        requested = self.settings.api.port
        tls = ssl_context if self.settings.api.tls else None
        if self.settings.server.proxy_networks:

            async def handoff(sock: Any, client: Address) -> None:
                await loop.connect_accepted_socket(lambda: api.protocol(client), sock, ssl=tls)

            port = self._listen_proxied("api", "[api] port", requested, handoff)
        else:
            try:
                if inherited := self.sockets.get("api"):
                    server = await loop.create_server(api.protocol, sock=inherited, ssl=tls)
                else:
                    server = await loop.create_server(api.protocol, bind, requested, ssl=tls)
            except OSError as exc:
                raise ConfigError(
                    f"[api] port: cannot listen on {bind}:{requested}: {why(exc)}"
                ) from None
            self._api_server = server
            port = server.sockets[0].getsockname()[1]
        self.listeners.append(describe(self.settings, "api", port))

    def _listen_proxied(self, name: str, setting: str, requested: int, handoff: Any) -> int:
        """A listener for connections that a PROXY-protocol balancer forwards; its port."""
        bind = self.settings.server.bind
        nets = proxy_networks(self.settings.server.proxy_networks)
        if name in self.sockets:
            inherited = self.sockets[name]
            inherited.setblocking(False)
            listener = ProxyListener(inherited, nets, handoff)
            self._proxy_listeners.append(listener)
            return listener.port
        try:
            listener = proxy_listen(bind, requested, nets, handoff)
        except OSError as exc:
            raise ConfigError(
                f"{setting}: cannot listen on {bind}:{requested}: {why(exc)}"
            ) from None
        self._proxy_listeners.append(listener)
        return listener.port

    def _smtp_session(
        self, ssl_context: Any, *, implicit: bool, mx: bool, client: Address | None = None
    ) -> MailgateSMTP:
        handler = self._mx if mx else self._handler
        assert handler is not None
        per_second = self.settings.limits.commands_per_second
        return MailgateSMTP(
            handler,
            settings=self.settings.smtp,
            hostname=self.settings.server.hostname,
            tls_context=ssl_context,
            implicit_tls=implicit,
            loop=asyncio.get_running_loop(),
            sessions=self._smtp_sessions,
            mx=mx,
            client=client,
            connections=self._connections,
            rate=CommandRate(per_second) if per_second else None,
            slowed=self._smtp_slowed,
        )

    def _smtp_slowed(self) -> None:
        self.metrics.slowed("smtp")

    def _count_sessions(self) -> None:
        """Sessions are counted where they are kept anyway, at each scrape."""
        imap, api, smtp = self._imap, self.api, self._smtp_sessions
        assert imap is not None
        assert api is not None
        self.metrics.count_sessions(IMAP, lambda: len(imap.sessions))
        self.metrics.count_sessions(SMTP_SUBMISSION, lambda: sum(not s.mx for s in smtp))
        self.metrics.count_sessions(SMTP_MX, lambda: sum(s.mx for s in smtp))
        self.metrics.count_sessions(HTTP, lambda: api.connections)
        self.metrics.count_sessions(WEBSOCKET, lambda: api.events.subscribers)

    async def _webhook_metrics(self) -> list[Family]:
        if self.store is None:
            return []
        return webhook_backlogs(await self.store.webhook_backlogs())

    async def _queue_metrics(self) -> list[Family]:
        store = self.store
        if store is None:
            return []
        try:
            depth, oldest = await store.outbound_summary()
        except StoreError as exc:
            self.metrics.store_error(exc)
            raise
        return outbound_queue(depth, 0.0 if oldest is None else max(0.0, time.time() - oldest))

    def _storing(self) -> list[asyncio.Future[Any]]:
        busy: list[asyncio.Future[Any]] = []
        if self._imap is not None:
            busy += [s.storing for s in self._imap.sessions if s.storing is not None]
        busy += [s.running for s in self._smtp_sessions if s.running is not None]
        if self.api is not None:
            # Any API request may be writing; they are short, so all of them are waited for.
            busy += self.api.running
        return busy

    async def _prune(self) -> None:
        while True:
            assert self.store is not None
            try:
                forgotten = await self.store.prune_expunged(int(time.time()) - EXPUNGE_HISTORY)
                receipts = await self.store.prune_receipts(int(time.time()) - RECEIPT_LIFETIME)
                retention = self.settings.api.event_retention
                events = await self.store.prune_events(int(time.time()) - retention)
                events += await self.store.prune_label_events(int(time.time()) - retention)
                stale = int(time.time()) - self.settings.auth.failure_window
                await self.store.prune_login_failures(stale)
            except StoreError as exc:  # the database is down: next time
                log.warning("forgetting old expunge records, send keys and events failed: %s", exc)
            else:
                if forgotten:
                    log.info("forgot %d expunge records older than a day", forgotten)
                if receipts:
                    log.info("forgot %d idempotency keys of sends older than a day", receipts)
                if events:
                    log.info("forgot %d events older than [api] event_retention", events)
            await asyncio.sleep(PRUNE_INTERVAL)

    async def stop(self) -> None:
        """Stop listening, let commands that are storing finish, say goodbye, close the store."""
        await stop_task(self._pruning)
        self._pruning = None
        await stop_task(self._tls_watch)
        self._tls_watch = None
        if self.outbound is not None:
            await self.outbound.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
            self.webhooks = None
        for port in self._imap_ports:
            await _deferred(port.stopListening())
        self._imap_ports.clear()
        for server in self._smtp_servers:
            server.close()
        self._smtp_servers.clear()
        for listener in self._proxy_listeners:
            listener.close()
        self._proxy_listeners.clear()
        if self._api_server is not None:
            self._api_server.close()
            self._api_server = None
        if self.api is not None:
            self.api.shutdown()
        # Commands that are writing finish (and are answered); one that starts meanwhile is
        # waited for too. Between the last check and the goodbyes below nothing awaits, so no
        # new write can begin.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while (busy := self._storing()) and loop.time() < deadline:
            await asyncio.wait(busy, timeout=deadline - loop.time())
        winding_down: list[asyncio.Future[Any]] = []
        if self._imap is not None:
            self._imap.stop()
            for session in list(self._imap.sessions):
                session.close(b"Server shutting down")
                winding_down += session.tasks()
        for smtp in list(self._smtp_sessions):
            smtp.shut_down()
            if smtp.task is not None:
                winding_down.append(smtp.task)
        if self.api is not None:
            winding_down += self.api.cut()
            await self.api.stop()
        # Their tasks end before the store closes under them.
        if winding_down:
            await asyncio.wait(winding_down, timeout=DRAIN_SECONDS)
        self._offload.close()
        if self.store is not None:
            await self.store.close()
            self.store = None


async def _deferred(value: Any) -> None:
    from twisted.internet.defer import Deferred

    if isinstance(value, Deferred):
        await value.asFuture(asyncio.get_running_loop())
