"""For operators, on the API's port: GET /healthz and GET /metrics.

/healthz answers 200 when the store answers a trivial read within HEALTH_TIMEOUT, else 503: what
a load balancer, Docker's HEALTHCHECK or an orchestrator's probe asks. It needs no key and tells
nothing but up or down.

/metrics is the node's Prometheus exposition (mailgate/telemetry.py). It tells how much mail
moves, so by default only a client on the loopback address (a Prometheus or an agent beside the
node) or a request with an organization key may read it; `[api] public_metrics = true` opens it
to everyone. Anyone else gets 403 in the API's error shape; an unknown or revoked key gets 401,
as everywhere in the API (and counts as a failed login). Behind a PROXY-protocol balancer the
client is the one its header names, never the balancer.

Neither is part of the agentmail API, so neither is in /openapi.json.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mailgate.http.caller import authenticated
from mailgate.http.context import ServicesDep
from mailgate.http.errors import RETRY_AFTER_UNAVAILABLE, Forbidden
from mailgate.store.errors import StoreError
from mailgate.telemetry import CONTENT_TYPE

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Seconds the store has to answer a health check; probes time out after a few seconds, and a
# database that takes longer to answer a trivial read is not serving mail either.
HEALTH_TIMEOUT = 2.0
METRICS_REFUSED = (
    "metrics are served to loopback clients and to organization keys "
    "(or to everyone with [api] public_metrics = true)"
)
# Probes and scrapes must see the answer of now, never a cached one.
_NO_STORE = {"Cache-Control": "no-store"}

_bearer = HTTPBearer(auto_error=False)


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz(services: ServicesDep) -> JSONResponse:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            await services.store.ping()
    except (StoreError, TimeoutError) as exc:
        log.warning("health check: the store did not answer: %s", str(exc) or "timed out")
        services.metrics.store_error(exc)
        return JSONResponse(
            {"status": "unavailable", "store": "not answering"},
            status_code=503,
            headers={**_NO_STORE, "Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
        )
    return JSONResponse({"status": "ok", "store": "ok"}, headers=_NO_STORE)


@router.get("/metrics")
async def metrics(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    client = request.client.host if request.client is not None else None
    if key_needed(client, public=services.settings.api.public_metrics):
        if credentials is None:
            raise Forbidden(METRICS_REFUSED)
        caller = await authenticated(request, services, credentials)
        if caller.scope != "organization":
            raise Forbidden(METRICS_REFUSED)
    body = await services.metrics.render()
    return Response(body, media_type=CONTENT_TYPE, headers=_NO_STORE)


def key_needed(client: str | None, *, public: bool) -> bool:
    """Whether a request for /metrics from `client` must bring an organization key."""
    if public:
        return False
    if client is None:
        return True
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return True  # not an address (a Unix socket's path): not known to be this machine
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_loopback
