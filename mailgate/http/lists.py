"""Allow and block lists: /v0/pods/{pod_id}/lists/{direction}/{type} and
/v0/inboxes/{inbox_id}/lists/{direction}/{type} (the SDK's `client.pods.lists` and
`client.inboxes.lists`) are mailgate's sender rules (`mailgate list`), which its MX enforces on
the mail it receives. An entry is an address or a domain (a domain covers its subdomains), and
is its own id; `reason` is kept with it. Adding an entry that is listed already answers it as
it is.

Only `receive` lists exist: the MX refuses mail from a blocked sender (the envelope sender, or
the From header) and files mail from an allowed one in INBOX whatever its other checks say.
mailgate enforces no `send` or `reply` lists, so those answer 501; and it keeps lists per pod
and per inbox, none for the whole organization, so /v0/lists answers 501 too.

A pod's list holds the pod's own entries, which apply to every inbox of the pod; an inbox's list
holds the inbox's own (the pod's apply to it as well). An organization key manages every list,
a pod key its pod's and those of its inboxes, an inbox key its inbox's; an inbox key reads its
pod's lists but may not change them (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel

from mailgate import provision
from mailgate.http.caller import Caller, CallerDep, authenticated
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import NotFound, NotImplementedHere, naming
from mailgate.http.fields import Reason
from mailgate.http.inboxes import in_inbox
from mailgate.http.pagination import Cursor, PageFields, PagingDep
from mailgate.http.pods import in_pod
from mailgate.store import errors as store_errors
from mailgate.store.names import sender_rule
from mailgate.store.records import Inbox as InboxRecord
from mailgate.store.records import Pod as PodRecord
from mailgate.store.records import SenderRule

Direction = Literal["send", "receive", "reply"]
ListType = Literal["allow", "block"]
DirectionPath = Annotated[Direction, Path(description="Only `receive` lists are enforced")]
ListTypePath = Annotated[ListType, Path(alias="type")]
# Whose list a path names: a pod's or an inbox's.
Owner = PodRecord | InboxRecord


class PodListEntry(BaseModel):
    entry: str
    organization_id: str
    reason: str | None = None
    direction: str
    list_type: str
    entry_type: str  # "email" or "domain"
    created_at: datetime
    read_only: bool = False
    pod_id: str
    inbox_id: str | None = None  # set when the entry is an inbox's


class PodListListEntriesResponse(PageFields):
    entries: list[PodListEntry]


class CreateListEntryRequest(BaseModel):
    entry: str
    reason: Reason | None = None


def _routes(prefix: str, owner_lookup: Callable[..., Awaitable[Owner]]) -> APIRouter:
    """The list handlers under `prefix`; `owner_lookup` gives whose lists the path names."""
    routes = APIRouter(prefix=prefix + "/lists/{direction}/{type}", tags=["lists"])
    route_owner: Any = Depends(owner_lookup)  # see inboxes.py: a default, not an Annotated alias

    @routes.get("", response_model_exclude_none=True)
    async def list_entries(
        direction: DirectionPath,
        list_type: ListTypePath,
        services: ServicesDep,
        paging: PagingDep,
        owner: Owner = route_owner,
    ) -> PodListListEntriesResponse:
        """The entries, by entry ascending."""
        _receive_only(direction)
        window = await paging.window(f"lists:{_owner_token(owner)}:{list_type}")
        rules = [r for r in await _rules(services, owner) if r.action == list_type]
        page = await paging.page(window, rules, _order)
        entries = [_entry(services, owner, r) for r in page.items]
        return PodListListEntriesResponse(**page.fields(), entries=entries)

    @routes.get("/{entry}", response_model_exclude_none=True)
    async def get_entry(
        direction: DirectionPath,
        list_type: ListTypePath,
        entry: str,
        services: ServicesDep,
        owner: Owner = route_owner,
    ) -> PodListEntry:
        _receive_only(direction)
        wanted = _listed_form(list_type, entry)
        for rule in await _rules(services, owner):
            if (rule.action, rule.entry) == (list_type, wanted):
                return _entry(services, owner, rule)
        raise NotFound(f"no {list_type} entry {entry}")

    @routes.post("", response_model_exclude_none=True)
    async def create_entry(
        direction: DirectionPath,
        list_type: ListTypePath,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[CreateListEntryRequest, Body()],
        owner: Owner = route_owner,
    ) -> PodListEntry:
        _receive_only(direction)
        _may_change(caller, owner)
        with naming("entry"):
            rule = await provision.add_sender_rule(
                services.store, list_type, request.entry, **_whose(owner), reason=request.reason
            )
        return _entry(services, owner, rule)

    @routes.delete("/{entry}", status_code=204)
    async def delete_entry(
        direction: DirectionPath,
        list_type: ListTypePath,
        entry: str,
        caller: CallerDep,
        services: ServicesDep,
        owner: Owner = route_owner,
    ) -> Response:
        _receive_only(direction)
        _may_change(caller, owner)
        wanted = _listed_form(list_type, entry)
        await provision.remove_sender_rule(services.store, list_type, wanted, **_whose(owner))
        return Response(status_code=204)

    return routes


async def _organization_lists() -> None:
    raise NotImplementedHere(
        "organization-wide lists are not supported by mailgate: it keeps allow and block lists "
        "per pod and per inbox (/v0/pods/{pod_id}/lists, /v0/inboxes/{inbox_id}/lists)"
    )


# /v0/lists: the SDK's paths, each refused once the key is checked.
organization = APIRouter(
    prefix="/v0/lists/{direction}/{type}",
    dependencies=[Depends(authenticated)],
    include_in_schema=False,
)
for path, methods in (("", ["GET", "POST"]), ("/{entry}", ["GET", "DELETE"])):
    organization.add_api_route(path, _organization_lists, methods=methods)

router = APIRouter()
router.include_router(_routes("/v0/pods/{pod_id}", in_pod))
router.include_router(_routes("/v0/inboxes/{inbox_id}", in_inbox))
router.include_router(organization)


def _receive_only(direction: Direction) -> None:
    if direction != "receive":
        raise NotImplementedHere(
            f"{direction} lists are not supported by mailgate: it enforces allow and block lists "
            "only on the mail it receives (the receive lists)"
        )


def _may_change(caller: Caller, owner: Owner) -> None:
    if isinstance(owner, PodRecord):
        caller.require("organization", "pod", doing="change a pod's lists")


def _whose(owner: Owner) -> dict[str, str]:
    """provision's owner arguments for `owner`'s list."""
    if isinstance(owner, PodRecord):
        return {"pod": owner.name}
    return {"inbox": owner.address}


def _owner_token(owner: Owner) -> str:
    return f"pod={owner.name}" if isinstance(owner, PodRecord) else f"inbox={owner.address}"


async def _rules(services: Services, owner: Owner) -> list[SenderRule]:
    return await services.store.list_sender_rules(**_whose(owner))


def _order(rule: SenderRule) -> Cursor:
    return (rule.entry,)


def _listed_form(list_type: ListType, entry: str) -> str:
    """`entry` as the list keeps it; NotFound for what no list can hold."""
    try:
        return sender_rule(list_type, entry)[1]
    except store_errors.InvalidName:
        raise NotFound(f"no {list_type} entry {entry}") from None


def _entry(services: Services, owner: Owner, rule: SenderRule) -> PodListEntry:
    return PodListEntry(
        entry=rule.entry,
        organization_id=services.settings.server.hostname,
        reason=rule.reason,
        direction="receive",
        list_type=rule.action,
        entry_type="email" if "@" in rule.entry else "domain",
        created_at=datetime.fromtimestamp(rule.created_at, UTC),
        pod_id=owner.name if isinstance(owner, PodRecord) else owner.pod,
        inbox_id=None if isinstance(owner, PodRecord) else owner.address,
    )
