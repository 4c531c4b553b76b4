"""Inboxes: /v0/inboxes and /v0/pods/{pod_id}/inboxes (the SDK's `client.inboxes` and
`client.pods.inboxes`). An inbox's id is its address; its pod is named by the pod's name.

Both trees share one set of handlers: under a pod, the pod must be one the caller sees and the
inbox must be in it; at the top, an organization key sees every inbox and creates in the
default pod, a pod key sees and creates in its pod, an inbox key sees only its inbox.

Creating: `username` is random when not given; `domain` must be one this server hosts
(`mailgate domain list`), and when not given it is `[server] hostname` if hosted, else the
hostname's parent domain (mail.example.com -> example.com) if hosted, else the domain of the
pod's oldest inbox. `client_id` makes a create idempotent; `metadata` is a flat JSON object of
strings, numbers and booleans. Updating merges `metadata` key by key (null removes a key, a
null `metadata` clears it all). An inbox cannot be paused: `status: "paused"` is a 501.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, StrictBool, StrictFloat, StrictInt, StrictStr

from mailgate import provision
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid, NotFound, NotImplementedHere, naming
from mailgate.http.fields import ClientId, DisplayName
from mailgate.http.pagination import Cursor, PageFields, Paging, PagingDep, Window
from mailgate.http.pods import PodLookup, in_pod, top_level
from mailgate.mime.addresses import InvalidAddress, domain_of, normalize_address
from mailgate.store import errors as store_errors
from mailgate.store.records import Inbox as InboxRecord
from mailgate.store.records import Pod as PodRecord
from mailgate.store.tenancy import DEFAULT_POD

# Stored as JSON text beside the inbox; a flat object, not a document store.
MAX_METADATA = 16384
MetadataValue = StrictStr | StrictInt | StrictFloat | StrictBool
_WORD = re.compile(r"[^\W_]+")


class Inbox(BaseModel):
    pod_id: str
    inbox_id: str
    email: str
    display_name: str | None = None
    client_id: str | None = None
    metadata: dict[str, MetadataValue] | None = None
    updated_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, inbox: InboxRecord) -> Inbox:
        return cls(
            pod_id=inbox.pod,
            inbox_id=inbox.address,
            email=inbox.address,
            display_name=inbox.display_name,
            client_id=inbox.client_id,
            metadata=json.loads(inbox.metadata) if inbox.metadata else None,
            updated_at=datetime.fromtimestamp(inbox.updated_at or inbox.created_at, UTC),
            created_at=datetime.fromtimestamp(inbox.created_at, UTC),
        )


class ListInboxesResponse(PageFields):
    inboxes: list[Inbox]


class SearchInboxesResponse(PageFields):
    inboxes: list[Inbox]


class CreateInboxRequest(BaseModel):
    username: str | None = None
    domain: str | None = None
    display_name: DisplayName | None = None
    client_id: ClientId | None = None
    status: str | None = None
    metadata: dict[str, MetadataValue] | None = None


class UpdateInboxRequest(BaseModel):
    display_name: DisplayName | None = None
    status: str | None = None
    metadata: dict[str, MetadataValue | None] | None = None


def _routes(prefix: str, pod_lookup: PodLookup) -> APIRouter:
    """The inbox handlers under `prefix`; `pod_lookup` gives the pod the path names (or None)."""
    routes = APIRouter(prefix=prefix, tags=["inboxes"])
    # A default value, not an Annotated alias: FastAPI resolves string annotations in the
    # module's globals, where this function's `pod_lookup` is not.
    route_pod: Any = Depends(pod_lookup)

    @routes.get("", response_model_exclude_none=True)
    async def list_inboxes(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        ascending: bool = False,
        pod: PodRecord | None = route_pod,
    ) -> ListInboxesResponse:
        """Inboxes the key sees, newest first (`ascending`: oldest first)."""
        window = await paging.window(f"inboxes:pod={_pod_name(pod)}:ascending={ascending}")
        inboxes = sorted(
            await visible_inboxes(caller, services, pod), key=_age, reverse=not ascending
        )
        page = await paging.page(window, inboxes, _age, descending=not ascending)
        return ListInboxesResponse(**page.fields(), inboxes=[Inbox.of(i) for i in page.items])

    @routes.get("/search", response_model_exclude_none=True)
    async def search_inboxes(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        q: Annotated[str, Query(min_length=2, max_length=256)],
        pod: PodRecord | None = route_pod,
    ) -> SearchInboxesResponse:
        """Inboxes whose address or display name has, for each word of `q`, a word starting
        with it (`sup` finds support@example.com, `port` does not); the exact address first."""
        window = await paging.window(f"inboxes/search:pod={_pod_name(pod)}:q={q}")
        return SearchInboxesResponse(**await _search(caller, services, pod, paging, window, q))

    @routes.get("/{inbox_id}", response_model_exclude_none=True)
    async def get_inbox(
        inbox_id: str,
        caller: CallerDep,
        services: ServicesDep,
        pod: PodRecord | None = route_pod,
    ) -> Inbox:
        return Inbox.of(await visible_inbox(caller, services, pod, inbox_id))

    @routes.post("", response_model_exclude_none=True)
    async def create_inbox(
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[CreateInboxRequest | None, Body()] = None,
        pod: PodRecord | None = route_pod,
    ) -> Inbox:
        """A new inbox; with a `client_id` an inbox of the pod already has, that inbox, so
        repeating a create is harmless."""
        caller.require("organization", "pod", doing="create inboxes")
        return Inbox.of(await _create(caller, services, pod, request or CreateInboxRequest()))

    @routes.patch("/{inbox_id}", response_model_exclude_none=True)
    async def update_inbox(
        inbox_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[UpdateInboxRequest, Body()],
        pod: PodRecord | None = route_pod,
    ) -> Inbox:
        inbox = await visible_inbox(caller, services, pod, inbox_id)
        return Inbox.of(await _update(services, inbox, request))

    @routes.delete("/{inbox_id}", status_code=204)
    async def delete_inbox(
        inbox_id: str,
        caller: CallerDep,
        services: ServicesDep,
        pod: PodRecord | None = route_pod,
    ) -> Response:
        """The inbox, all its mail and the keys scoped to it."""
        inbox = await visible_inbox(caller, services, pod, inbox_id)
        caller.require("organization", "pod", doing="delete inboxes")
        await provision.delete_inbox(services.store, inbox.address)
        return Response(status_code=204)

    return routes


# The top-level tree by name too: the MCP tools (http/mcp/tools.py) call its handlers.
top_level_routes = _routes("/v0/inboxes", top_level)
router = APIRouter()
router.include_router(top_level_routes)
router.include_router(_routes("/v0/pods/{pod_id}/inboxes", in_pod))


def _pod_name(pod: PodRecord | None) -> str:
    return "" if pod is None else pod.name


def _age(inbox: InboxRecord) -> Cursor:
    return (inbox.created_at, inbox.id)


async def visible_inboxes(
    caller: Caller, services: Services, pod: PodRecord | None
) -> list[InboxRecord]:
    inboxes = await services.store.list_inboxes(pod.name if pod is not None else caller.pod)
    return [i for i in inboxes if caller.sees(i)]


async def visible_inbox(
    caller: Caller, services: Services, pod: PodRecord | None, inbox_id: str
) -> InboxRecord:
    """The inbox `inbox_id` if the caller sees it (in `pod`, if given); else NotFound, the same
    as for an inbox that does not exist."""
    try:
        inbox: InboxRecord | None = await services.store.get_inbox(inbox_id)
    except store_errors.InboxNotFound:
        inbox = None
    if inbox is None or not caller.sees(inbox) or (pod is not None and inbox.pod_id != pod.id):
        raise NotFound(f"no inbox {inbox_id}")
    return inbox


async def in_inbox(inbox_id: str, caller: CallerDep, services: ServicesDep) -> InboxRecord:
    """The inbox a path names (/v0/inboxes/{inbox_id}/...), if the caller sees it."""
    return await visible_inbox(caller, services, None, inbox_id)


async def _search(
    caller: Caller,
    services: Services,
    pod: PodRecord | None,
    paging: Paging,
    window: Window,
    q: str,
) -> dict[str, Any]:
    query = q.strip().lower()
    words = _WORD.findall(query)

    def rank(inbox: InboxRecord) -> Cursor:
        return (0 if inbox.address == query else 1, inbox.address)

    def matches(inbox: InboxRecord) -> bool:
        own = _WORD.findall(f"{inbox.address} {inbox.display_name or ''}".lower())
        return bool(words) and all(any(w.startswith(word) for w in own) for word in words)

    found = sorted(
        (i for i in await visible_inboxes(caller, services, pod) if matches(i)), key=rank
    )
    page = await paging.page(window, found, rank)
    return {**page.fields(), "inboxes": [Inbox.of(i) for i in page.items]}


async def _create(
    caller: Caller, services: Services, pod: PodRecord | None, request: CreateInboxRequest
) -> InboxRecord:
    _check_status(request.status)
    pod_name = pod.name if pod is not None else caller.pod or DEFAULT_POD
    domain = await _domain(services, request.domain, pod_name)
    username = request.username or f"agent-{secrets.token_hex(6)}"
    address = _address(username, domain)
    with naming("username"):
        return await provision.create_inbox(
            services.store,
            address,
            pod_name,
            display_name=request.display_name,
            client_id=request.client_id,
            metadata=_metadata_text(request.metadata),
        )


async def _domain(services: Services, requested: str | None, pod: str) -> str:
    store = services.store
    if requested is not None:
        try:
            return (await store.get_domain(requested)).name
        except (store_errors.DomainNotFound, store_errors.InvalidName):
            raise Invalid.field(
                "domain", f"{requested!r} is not a domain this server hosts (mailgate domain add)"
            ) from None
    hosted = {d.name for d in await store.list_domains()}
    hostname = services.settings.server.hostname.lower().rstrip(".")
    for candidate in (hostname, hostname.partition(".")[2]):
        if candidate in hosted:
            return candidate
    inboxes = await store.list_inboxes(pod)
    if inboxes:
        return domain_of(min(inboxes, key=_age).address)
    raise Invalid.field(
        "domain", "give a domain: neither [server] hostname nor the pod has one this server hosts"
    )


def _address(username: str, domain: str) -> str:
    try:
        address = normalize_address(f"{username}@{domain}")
    except InvalidAddress as exc:
        raise Invalid.field("username", str(exc)) from None
    if address != f"{username}@{domain}".lower():
        # What normalising dropped (<>, spaces) was not a user name.
        raise Invalid.field("username", f"{username!r} is not a user name for an address")
    return address


def _check_status(status: str | None) -> None:
    if status == "paused":
        raise NotImplementedHere("pausing an inbox (status: paused) is not supported by mailgate")
    if status not in (None, "active"):
        raise Invalid.field("status", f'{status!r}: an inbox status is "active" or "paused"')


def _metadata_text(metadata: dict[str, Any] | None) -> str | None:
    if not metadata:
        return None
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_METADATA:
        raise Invalid.field("metadata", f"at most {MAX_METADATA} bytes of JSON")
    return text


async def _update(
    services: Services, inbox: InboxRecord, request: UpdateInboxRequest
) -> InboxRecord:
    given = request.model_fields_set
    if not given & {"display_name", "status", "metadata"}:
        raise Invalid([FieldError((), "give display_name, status or metadata")])
    _check_status(request.status)
    changes: dict[str, Any] = {}
    if "display_name" in given:
        changes["display_name"] = request.display_name
    if "metadata" in given:
        if request.metadata == {}:
            raise Invalid.field("metadata", "an empty object changes nothing; null clears it")
        merged = json.loads(inbox.metadata) if inbox.metadata else {}
        for key, value in (request.metadata or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        changes["metadata"] = _metadata_text(merged if request.metadata is not None else None)
    if not changes:
        return inbox
    return await services.store.update_inbox(inbox.address, **changes)
