"""What every request handler is given: this node's services, set once on the application.

Resource modules take them as a dependency (`ServicesDep`), never from a global, so two nodes
can serve in one process (the tests run several).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Annotated, cast

from fastapi import Depends, Request

from mailgate.auth import Authenticator
from mailgate.config import Settings
from mailgate.delivery.dns import Resolver
from mailgate.delivery.domains import ClientPort
from mailgate.delivery.submission import Submission
from mailgate.store.api import Store
from mailgate.telemetry import Metrics

# The store's name for the secret that signs page tokens (Store.secret).
TOKEN_SECRET = "tokens"


class Services:
    def __init__(
        self,
        store: Store,
        authenticator: Authenticator,
        settings: Settings,
        submission: Submission,
        resolver: Resolver,
        client_ports: Sequence[ClientPort],
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.settings = settings
        self.submission = submission
        self.resolver = resolver  # the node's one resolver: domains are verified with it
        # The IMAP and submission ports as this node listens on them (a port set to 0 is the
        # one chosen at start), preferred first: what mail clients are told to use.
        self.client_ports = tuple(client_ports)
        self.metrics = metrics or Metrics()  # the node's, served at /metrics (health.py)
        self._token_key: bytes | None = None
        # Told when a webhook is made or changed here (the delivery worker's `webhooks_changed`).
        self.webhooks_changed: Callable[[], None] = lambda: None
        # Events rendered lately, or being rendered (http/events.py `rendered`):
        # seq -> (when, the rendering of its JSON text).
        self.event_texts: OrderedDict[int, tuple[float, asyncio.Future[str]]] = OrderedDict()

    async def token_key(self) -> bytes:
        """The key that signs page tokens; it never changes, so it is read once."""
        if self._token_key is None:
            self._token_key = await self.store.secret(TOKEN_SECRET)
        return self._token_key


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(services)]
