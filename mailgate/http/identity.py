"""GET /v0/auth/me: the identity and scope of the key a request was sent with (the SDK's
`client.auth.me()`), for code that holds a pod or inbox key and must find its pod or inbox.

mailgate is one organization; its id is the server's `[server] hostname`. Pods and inboxes are
named as everywhere in the API: a pod by its name, an inbox by its address.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from mailgate.http.caller import CallerDep
from mailgate.http.context import ServicesDep

router = APIRouter(prefix="/v0/auth", tags=["auth"])


class Identity(BaseModel):
    scope_type: str  # "organization", "pod" or "inbox"
    scope_id: str
    organization_id: str
    pod_id: str | None = None
    inbox_id: str | None = None
    api_key_id: str | None = None


@router.get("/me", response_model_exclude_none=True)
async def me(caller: CallerDep, services: ServicesDep) -> Identity:
    key = caller.key
    organization = services.settings.server.hostname
    return Identity(
        scope_type=caller.scope,
        scope_id=key.inbox or key.pod or organization,
        organization_id=organization,
        pod_id=key.pod,
        inbox_id=key.inbox,
        api_key_id=key.id,
    )
