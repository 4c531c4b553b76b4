"""The caller: who sent a request, and what their API key lets them see.

Every request under /v0 carries `Authorization: Bearer <key>`, checked by mailgate.auth on each
request (so a revoked key stops working at once, and failures count in the same login throttle
as IMAP's and SMTP's). The key's scope decides what exists for the caller: an organization key
sees every pod, a pod key its own pod, an inbox key its own inbox (and, read-only, its pod).
Whatever lies outside the scope is answered exactly as if it did not exist, 404 with the same
message, so a key learns nothing about other pods; 403 is only for what the caller can see but
may not do (an inbox key deleting its inbox, a pod key creating pods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mailgate.auth import AuthFailed, LockedOut, covers
from mailgate.http.context import ServicesDep
from mailgate.http.errors import Forbidden, RateLimited, Unauthorized
from mailgate.store.records import ApiKey, Inbox, Pod

_bearer = HTTPBearer(
    auto_error=False,
    description="A mailgate API key: `mailgate key create --org`, `--pod POD` or `--inbox ADDRESS`",
)


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey

    @property
    def scope(self) -> str:
        """ "organization", "pod" or "inbox"."""
        return self.key.scope

    @property
    def scope_token(self) -> str:
        """The scope, as page tokens carry it: every key of one scope pages alike."""
        return f"{self.scope}:{self.key.pod_id or ''}:{self.key.inbox_id or ''}"

    @property
    def pod(self) -> str | None:
        """The only pod this key sees, or None for an organization key."""
        return self.key.pod

    def sees_pod(self, pod: Pod) -> bool:
        return self.key.pod_id is None or self.key.pod_id == pod.id

    def sees(self, inbox: Inbox) -> bool:
        return covers(self.key, inbox)

    def require(self, *scopes: str, doing: str) -> None:
        """Forbidden unless the key's scope is one of `scopes`; only for what it can see."""
        if self.scope not in scopes:
            needed = " or ".join(scopes)
            raise Forbidden(f"{self.scope} keys may not {doing} (only {needed} keys may)")


async def authenticated(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthorized("send a mailgate API key as `Authorization: Bearer <key>`")
    client = request.client.host if request.client is not None else "unknown"
    try:
        key = await services.authenticator.verify_key(
            credentials.credentials, client, protocol="api"
        )
    except AuthFailed:
        raise Unauthorized("invalid API key (unknown or revoked)") from None
    except LockedOut as exc:
        raise RateLimited(str(exc), exc.retry_after) from None
    return Caller(key)


CallerDep = Annotated[Caller, Depends(authenticated)]
