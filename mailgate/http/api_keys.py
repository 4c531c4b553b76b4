"""API keys: /v0/api-keys, /v0/pods/{pod_id}/api-keys and /v0/inboxes/{inbox_id}/api-keys (the
SDK's `client.api_keys`, `client.pods.api_keys` and `client.inboxes.api_keys`). A key's id is
the public part of its token (`mgk_<id>_<secret>`), its `name` the label `mailgate key list`
shows.

Creating shows the token once, in the answer, as `mailgate key create` does; only its hash is
kept. The path chooses the new key's scope: under an inbox, that inbox; under a pod, that pod;
at the top, the caller's own (an organization key makes organization keys, a pod key keys for
its pod). Deleting revokes: the key opens nothing from that moment, and the API no longer shows
it (`mailgate key list` still does, as revoked).

An organization key manages every key; a pod key the keys of its pod and of the pod's inboxes,
never an organization key; an inbox key sees the keys of its inbox and may not create, rename or
delete any (403). Other keys do not exist for the caller (404).

mailgate keys are bearer keys that may do all their scope covers: a `permissions` object that
withholds any permission answers 501 naming what it withholds (one granting every permission is
the same as none), and so do public-key (AgentID) credentials and keys that expire. Listing with
`type=public_key` gives an empty list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, StrictBool

from mailgate import provision
from mailgate.auth import TOKEN_PREFIX
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid, NotFound, NotImplementedHere
from mailgate.http.fields import KeyName
from mailgate.http.inboxes import in_inbox
from mailgate.http.pagination import Cursor, PagingDep
from mailgate.http.pods import in_pod, top_level
from mailgate.store.records import ApiKey as KeyRecord
from mailgate.store.records import Inbox as InboxRecord
from mailgate.store.records import Pod as PodRecord

# The SDK's ApiKeyPermissions (2.0.18): given, a permissions object grants only those set to
# true, each named "<thing>_<action>".
_CRUD = ("read", "create", "update", "delete")
_ACTIONS: dict[str, tuple[str, ...]] = {
    "inbox": _CRUD,
    "message": ("read", "reply", "send", "update", "delete"),
    "agent_armor": ("release",),
    "label_spam": ("read",),
    "label_blocked": ("read",),
    "label_unauthenticated": ("read",),
    "label_trash": ("read",),
    "draft": (*_CRUD, "send"),
    "webhook": _CRUD,
    "domain": _CRUD,
    "list_entry": ("read", "create", "delete"),
    "metrics": ("read",),
    "api_key": _CRUD,
    "app": ("connect", "share_owner"),
    "account": ("update",),
    "pod": _CRUD,
    "calendar": ("read", "update"),
    "calendar_event": _CRUD,
    "file": _CRUD,
}
# A 501 names this many of the permissions a request withholds.
SHOWN = 8
PERMISSIONS = tuple(
    f"{thing}_{action}" for thing, actions in _ACTIONS.items() for action in actions
)

Permissions = dict[str, StrictBool | None]
KeyType = Literal["bearer", "public_key"]
# Whose keys a path is about: everyone's (the top), a pod's, or an inbox's.
Owner = PodRecord | InboxRecord | None


class BearerApiKey(BaseModel):
    type: Literal["bearer"] = "bearer"
    api_key_id: str
    prefix: str
    name: str
    pod_id: str | None = None
    inbox_id: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, key: KeyRecord) -> BearerApiKey:
        return cls(**_common(key), updated_at=_time(key.updated_at))


class CreateApiKeyResponse(BaseModel):
    api_key_id: str
    api_key: str  # the token, shown only now
    prefix: str
    name: str
    pod_id: str | None = None
    inbox_id: str | None = None
    created_at: datetime


def _common(key: KeyRecord) -> dict[str, Any]:
    return {
        "api_key_id": key.id,
        "prefix": f"{TOKEN_PREFIX}{key.id}",
        "name": key.label,
        "pod_id": key.pod,  # an inbox key's too: the pod of its inbox
        "inbox_id": key.inbox,
        "created_at": _time(key.created_at),
    }


def _time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class ListApiKeysResponse(BaseModel):
    count: int
    next_page_token: str | None = None
    api_keys: list[BearerApiKey]


class CreateApiKeyRequest(BaseModel):
    name: KeyName | None = None
    permissions: Permissions | None = None
    expires_at: datetime | None = None
    public_key: dict[str, Any] | None = None  # a public-key (AgentID) credential's


class UpdateApiKeyRequest(BaseModel):
    name: KeyName | None = None
    permissions: Permissions | None = None


def _routes(
    prefix: str, owner_lookup: Callable[..., Awaitable[Owner]], *, get_one: bool
) -> APIRouter:
    """The key handlers under `prefix`; `owner_lookup` gives whose keys the path names."""
    routes = APIRouter(prefix=prefix, tags=["api-keys"])
    route_owner: Any = Depends(owner_lookup)  # see inboxes.py: a default, not an Annotated alias

    @routes.get("", response_model_exclude_none=True)
    async def list_api_keys(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        family: Annotated[KeyType | None, Query(alias="type")] = None,
        ascending: bool = False,
        owner: Owner = route_owner,
    ) -> ListApiKeysResponse:
        """Keys the caller sees, newest first (`ascending`: oldest first); `type` is a family of
        credentials, and mailgate's are all bearer keys."""
        window = await paging.window(f"api-keys:{_owner_token(owner)}:{family}:{ascending}")
        keys = [] if family == "public_key" else await _visible_keys(caller, services, owner)
        keys.sort(key=_age, reverse=not ascending)
        page = await paging.page(window, keys, _age, descending=not ascending)
        return ListApiKeysResponse(
            count=len(page.items),
            next_page_token=page.next_page_token,
            api_keys=[BearerApiKey.of(k) for k in page.items],
        )

    if get_one:

        @routes.get("/{api_key_id}", response_model_exclude_none=True)
        async def get_api_key(
            api_key_id: str, caller: CallerDep, services: ServicesDep, owner: Owner = route_owner
        ) -> BearerApiKey:
            return BearerApiKey.of(await _visible_key(caller, services, owner, api_key_id))

    @routes.post("", response_model_exclude_none=True)
    async def create_api_key(
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[CreateApiKeyRequest | None, Body()] = None,
        owner: Owner = route_owner,
    ) -> CreateApiKeyResponse:
        """A new key for the path's scope; its token is in this answer and nowhere else."""
        caller.require("organization", "pod", doing="create API keys")
        request = request or CreateApiKeyRequest()
        if request.public_key is not None:
            raise NotImplementedHere(
                "public-key (AgentID) credentials are not supported by mailgate: its API keys "
                "are bearer keys"
            )
        if request.expires_at is not None:
            raise NotImplementedHere("keys that expire (expires_at) are not supported by mailgate")
        _check_permissions(request.permissions)
        key, token = await provision.issue_key(
            services.store, **_scope(caller, owner), label=request.name or ""
        )
        return CreateApiKeyResponse(**_common(key), api_key=token)

    @routes.patch("/{api_key_id}", response_model_exclude_none=True)
    async def update_api_key(
        api_key_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[UpdateApiKeyRequest, Body()],
        owner: Owner = route_owner,
    ) -> BearerApiKey:
        """Rename a key (`name`); its scope and token stay."""
        key = await _visible_key(caller, services, owner, api_key_id)
        caller.require("organization", "pod", doing="change API keys")
        if request.name is None and request.permissions is None:
            raise Invalid([FieldError((), "give name or permissions")])
        _check_permissions(request.permissions)
        if request.name is not None:
            key = await provision.rename_key(services.store, key.id, request.name)
        return BearerApiKey.of(key)

    @routes.delete("/{api_key_id}", status_code=204)
    async def delete_api_key(
        api_key_id: str, caller: CallerDep, services: ServicesDep, owner: Owner = route_owner
    ) -> Response:
        """Revoke the key: nothing opens with it from now on."""
        key = await _visible_key(caller, services, owner, api_key_id)
        caller.require("organization", "pod", doing="delete API keys")
        await provision.revoke_key(services.store, key.id)
        return Response(status_code=204)

    return routes


router = APIRouter()
router.include_router(_routes("/v0/api-keys", top_level, get_one=True))
router.include_router(_routes("/v0/pods/{pod_id}/api-keys", in_pod, get_one=False))
router.include_router(_routes("/v0/inboxes/{inbox_id}/api-keys", in_inbox, get_one=False))


def _age(key: KeyRecord) -> Cursor:
    return (key.created_at, key.id)


def _owner_token(owner: Owner) -> str:
    if isinstance(owner, PodRecord):
        return f"pod={owner.name}"
    return "" if owner is None else f"inbox={owner.address}"


def _sees(caller: Caller, key: KeyRecord) -> bool:
    """Whether the caller sees (and, unless it is an inbox key, manages) `key`."""
    if not key.active:
        return False
    if caller.scope == "inbox":
        return key.inbox_id == caller.key.inbox_id
    # A pod key: the keys of its pod and of its pod's inboxes (which carry the pod too).
    return caller.scope == "organization" or key.pod_id == caller.key.pod_id


def _belongs(key: KeyRecord, owner: Owner) -> bool:
    if isinstance(owner, PodRecord):
        return key.pod_id == owner.id
    return owner is None or key.inbox_id == owner.id


async def _visible_keys(caller: Caller, services: Services, owner: Owner) -> list[KeyRecord]:
    return [k for k in await services.store.list_keys() if _sees(caller, k) and _belongs(k, owner)]


async def _visible_key(caller: Caller, services: Services, owner: Owner, key_id: str) -> KeyRecord:
    """The key `key_id` if the caller sees it (under `owner`); else NotFound, the same as for a
    key that does not exist or was deleted."""
    key = await services.store.get_key(key_id)
    if key is None or not _sees(caller, key) or not _belongs(key, owner):
        raise NotFound(f"no API key {key_id}")
    return key


def _scope(caller: Caller, owner: Owner) -> dict[str, Any]:
    """The scope of a key created under `owner` (issue_key's arguments)."""
    if isinstance(owner, PodRecord):
        return {"pod": owner.name}
    if owner is not None:
        return {"inbox": owner.address}
    if caller.scope == "organization":
        return {"organization": True}
    return {"pod": caller.pod}


def _check_permissions(permissions: Permissions | None) -> None:
    """NotImplementedHere unless `permissions` (if given) grants every permission."""
    if permissions is None:
        return
    named = [*PERMISSIONS, *(p for p in permissions if p not in PERMISSIONS)]
    withheld = [p for p in named if permissions.get(p) is not True]
    if withheld:
        shown = ", ".join(withheld[:SHOWN])
        if len(withheld) > SHOWN:
            shown += f" and {len(withheld) - SHOWN} more"
        raise NotImplementedHere(
            "permissions: mailgate keys cannot be limited to some operations (this would "
            f"withhold {shown}); leave permissions out for a key that may do all its scope covers"
        )
