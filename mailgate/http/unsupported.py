"""What the hosted AgentMail offers and this gateway does not: each answers 501 in the SDK's
error shape, naming the feature, so agent code learns why instead of reading a 404 as "no such
inbox".

A 501 still needs a valid key (as any /v0 request does); these routes stay out of /docs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends

from mailgate.http.caller import authenticated
from mailgate.http.errors import NotImplementedHere

router = APIRouter(dependencies=[Depends(authenticated)], include_in_schema=False)

OUT_OF_SCOPE = "a feature of the hosted AgentMail that mailgate does not offer"

# (paths, the feature they belong to, why not). Each path also covers everything below it.
FEATURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("/v0/inboxes/{inbox_id}/calendar",), "calendar", OUT_OF_SCOPE),
    (("/v0/apps", "/v0/inboxes/{inbox_id}/authorize"), "apps", OUT_OF_SCOPE),
    (
        ("/v0/accounts", "/v0/inboxes/{inbox_id}/accounts", "/v0/pods/{pod_id}/accounts"),
        "app accounts",
        OUT_OF_SCOPE,
    ),
    (("/v0/agent",), "agent sign-up", OUT_OF_SCOPE),
    (
        ("/v0/inboxes/{inbox_id}/messages/{message_id}/agent-armor",),
        "agent armor",
        OUT_OF_SCOPE,
    ),
    (("/v0/inboxes/{inbox_id}/files",), "files", OUT_OF_SCOPE),
    (("/v0/organizations",), "organizations (and labs)", OUT_OF_SCOPE),
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _refuse(feature: str, why: str) -> Callable[[], Awaitable[None]]:
    async def refuse() -> None:
        raise NotImplementedHere(f"{feature}: {why}")

    return refuse


for paths, feature, why in FEATURES:
    for path in paths:
        endpoint = _refuse(feature, why)
        router.add_api_route(path, endpoint, methods=METHODS)
        router.add_api_route(path + "/{rest:path}", endpoint, methods=METHODS)
