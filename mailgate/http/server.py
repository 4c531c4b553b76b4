"""The HTTP API server: the FastAPI application (the resource routers, the error handlers, the
body limit, OpenAPI at /openapi.json and interactive docs at /docs), and uvicorn's HTTP protocol
(httptools when it is installed, else h11) that serves it on mailgate's own event loop.

uvicorn's `Server` is not used: it would run a loop of its own, install signal handlers and own
the sockets. app.py listens with `loop.create_server(api.protocol, ...)` as it does for SMTP
(handing PROXY-protocol connections over with their client's address), and stops the API within
the drain of the other listeners: `shutdown` ends keep-alive, `running` are the requests to let
finish, and `cut` ends those still running when the drain time is over.

A resource is one router module (pods.py shows the pattern); adding one is adding it to
RESOURCES, before `unsupported`, whose catch-all paths must come last.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import uvicorn
from fastapi import FastAPI
from starlette.routing import Route
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from mailgate import __version__
from mailgate.http import (
    api_keys,
    autoconfig,
    domains,
    downloads,
    drafts,
    errors,
    health,
    identity,
    inbox_events,
    inboxes,
    lists,
    messages,
    metrics,
    pods,
    poller,
    polling,
    stream,
    threads,
    unsupported,
    webhooks,
)
from mailgate.http.context import Services
from mailgate.http.limits import BodyLimit
from mailgate.http.mcp import PATH as MCP_PATH
from mailgate.http.mcp import McpServer

Address = tuple[str, int]

RESOURCES = (
    health.router,
    identity.router,
    pods.router,
    inboxes.router,
    messages.router,
    threads.router,
    drafts.router,
    downloads.router,
    domains.router,
    api_keys.router,
    lists.router,
    metrics.router,
    inbox_events.router,
    stream.router,
    autoconfig.router,
    # Before webhooks.router, whose /v0/webhooks/{webhook_id} would take /v0/webhooks/polling.
    polling.router,
    poller.router,
    webhooks.router,
    unsupported.router,
)

DESCRIPTION = """\
The HTTP API of a mailgate server, as the official `agentmail` SDK drives it: point the SDK
at this server (`AgentMailEnvironment(http=..., websockets=...)`) and authenticate with a
mailgate API key (`mailgate key create --org`, `--pod POD` or `--inbox ADDRESS`) as a Bearer
token. Features of the hosted AgentMail that mailgate does not offer answer 501.
"""


def build_app(services: Services, max_request_size: int) -> FastAPI:
    api = FastAPI(
        title="mailgate",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.services = services
    errors.install(api)
    # Svix's consumer API answers failures in Svix's shape.
    api.add_exception_handler(poller.Refused, poller.refused)
    api.add_middleware(BodyLimit, limit=max_request_size)
    for router in RESOURCES:
        api.include_router(router)
    return api


class _ProxiedClient:
    """uvicorn takes the client's address from the socket, which behind a PROXY-protocol
    balancer is the balancer's: the address its header gave replaces it."""

    proxied_client: Address
    client: Address | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self.client = self.proxied_client


class _ReadTimeouts:
    """uvicorn times a connection out only between requests, so a client that connects and
    never sends, or trickles its header or body a byte at a time, would hold its connection
    forever. Here, as nginx does: a request's header must arrive whole within `read_timeout` of
    its first byte (or of the connection), and its body may pause at most that long between two
    reads; else the client gets a 408 and the connection is closed."""

    read_timeout: float
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _header_since: float | None
    _last_read: float
    _clock: asyncio.TimerHandle | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_since = self._last_read = self.loop.time()
        self._clock = None
        self._check_later()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self._header_since is None and self._between_requests():
            self._header_since = self._last_read
        super().data_received(data)  # type: ignore[misc]
        if self.transport.get_protocol() is not self:
            # Upgraded to a websocket, which times itself out (its pings).
            self._header_since = None
            if self._clock is not None:
                self._clock.cancel()
                self._clock = None
            return
        if not self._between_requests():
            self._header_since = None  # the header is in: the request is the app's now
        if self._clock is None:
            self._check_later()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._clock is not None:
            self._clock.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _check_later(self, at: float | None = None) -> None:
        when = self.loop.time() + self.read_timeout if at is None else at
        self._clock = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self._clock = None
        if self.transport.is_closing():
            return
        if self._header_since is not None:
            due = self._header_since + self.read_timeout
        elif self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
            due = self._last_read + self.read_timeout
        else:
            return  # nothing is being read: the app is answering, or keep-alive times out
        if self.loop.time() < due:
            self._check_later(due)
            return
        if self.cycle is None or self._header_since is not None or not self.cycle.response_started:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


# Where a connection's protocol finds the client's address a PROXY header gave (app_state).
PROXIED_CLIENT = "mailgate.proxied_client"


class _WebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, with the client's address from the PROXY header when there
    was one, and a way for the handler to cut a connection whose socket takes nothing more
    (http/stream.py: a client that stopped reading cannot even be sent the close frame)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        proxied = self.app_state.get(PROXIED_CLIENT)
        if proxied is not None:
            self.client = proxied

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # uvicorn keeps the handshake's request and response for good: several KiB a
            # connection, and nothing reads them once it is accepted.
            self.request = self.response = None  # type: ignore[assignment]

    async def run_asgi(self) -> None:
        extensions: dict[str, Any] = cast(dict[str, Any], self.scope.setdefault("extensions", {}))
        extensions[stream.ABORT] = self.transport.abort
        await super().run_asgi()


_TIMEOUT_BODY = b'{"name":"RequestTimeoutError","message":"the request did not arrive in time"}'
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class ApiServer:
    def __init__(self, services: Services) -> None:
        self.app = build_app(services, services.settings.api.max_request_size)
        self.events = stream.EventHub(services)
        self.app.state.event_hub = self.events
        # The MCP endpoint: an ASGI app of its own (the mcp SDK's), first, before the
        # catch-all paths of `unsupported`.
        self.mcp = McpServer(services)
        self.app.router.routes.insert(0, Route(MCP_PATH, self.mcp))
        self._config = uvicorn.Config(
            self.app,
            http="auto",
            ws=_WebSocket,
            # Compression would double a websocket's memory (zlib's state, about 40 KiB each);
            # events are small.
            ws_per_message_deflate=False,
            lifespan="off",
            # Logging is mailgate's: uvicorn must not reconfigure it, nor log every request.
            log_config=None,
            access_log=False,
            # Client addresses come from the socket or the PROXY protocol, never from headers.
            proxy_headers=False,
            server_header=False,
        )
        self._config.load()
        self._state = ServerState()
        uvicorn_class = self._config.http_protocol_class
        self._protocol_class: Any = type(
            f"Timed{uvicorn_class.__name__}",
            (_ReadTimeouts, uvicorn_class),
            {"read_timeout": services.settings.api.read_timeout},
        )
        self._proxied_class: Any = type(
            f"Proxied{self._protocol_class.__name__}", (_ProxiedClient, self._protocol_class), {}
        )

    async def start(self) -> None:
        """Start what serves requests beyond the handlers (the MCP session manager); there is
        no ASGI lifespan (uvicorn's is off), so the node starts it, before listening."""
        await self.mcp.start()

    async def stop(self) -> None:
        """Stop what `start` started, once no request is running any more."""
        await self.mcp.stop()
        await self.events.stop()

    def protocol(self, client: Address | None = None) -> asyncio.Protocol:
        """A protocol for one connection; `client`: its address from a PROXY header."""
        cls = self._protocol_class if client is None else self._proxied_class
        app_state: dict[str, Any] = {} if client is None else {PROXIED_CLIENT: client}
        protocol: Any = cls(config=self._config, server_state=self._state, app_state=app_state)
        if client is not None:
            protocol.proxied_client = client
        return protocol

    @property
    def connections(self) -> int:
        """The connections open now (mailgate_sessions{protocol="http"})."""
        return len(self._state.connections)

    @property
    def running(self) -> list[asyncio.Task[None]]:
        """The requests being answered."""
        return list(self._state.tasks)

    def shutdown(self) -> None:
        """Keep no connection alive: idle ones close now, busy ones once they have answered."""
        for connection in list(self._state.connections):
            connection.shutdown()

    def cut(self) -> list[asyncio.Task[None]]:
        """End the requests still running, connections first (so nothing more is written to
        them); returns their tasks, to wait for."""
        for connection in list(self._state.connections):
            connection.transport.abort()
        tasks = self.running
        for task in tasks:
            task.cancel()
        return tasks
