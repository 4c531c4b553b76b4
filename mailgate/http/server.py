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
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.server import ServerState

from mailgate import __version__
from mailgate.http import (
    api_keys,
    domains,
    downloads,
    drafts,
    errors,
    identity,
    inboxes,
    lists,
    messages,
    pods,
    threads,
    unsupported,
)
from mailgate.http.context import Services
from mailgate.http.limits import BodyLimit

Address = tuple[str, int]

RESOURCES = (
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


class ApiServer:
    def __init__(self, services: Services) -> None:
        self.app = build_app(services, services.settings.api.max_request_size)
        self._config = uvicorn.Config(
            self.app,
            http="auto",
            ws="none",
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
        self._protocol_class: Any = self._config.http_protocol_class
        self._proxied_class: Any = type(
            f"Proxied{self._protocol_class.__name__}", (_ProxiedClient, self._protocol_class), {}
        )

    def protocol(self, client: Address | None = None) -> asyncio.Protocol:
        """A protocol for one connection; `client`: its address from a PROXY header."""
        cls = self._protocol_class if client is None else self._proxied_class
        protocol: Any = cls(config=self._config, server_state=self._state, app_state={})
        if client is not None:
            protocol.proxied_client = client
        return protocol

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
