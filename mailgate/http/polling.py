"""Polling webhooks: /v0/webhooks/polling, /v0/pods/{pod_id}/webhooks/polling and
/v0/inboxes/{inbox_id}/webhooks/polling (the SDK's `client.webhooks.polling`,
`client.pods.webhooks.polling` and `client.inboxes.webhooks.polling`): list, get, create,
delete. The events are read with svix's AutoConfigConsumer and the token create answers with
(http/poller.py serves what it calls).

A polling webhook has an owner as a webhook has, chosen by the path the same way (under an inbox
that inbox, under a pod that pod, at the top the creating key's own scope), the same filters
(`event_types`, `pod_ids`, `inbox_ids`) and the same rules for who sees it (webhooks.py). Each
owner holds at most MAX_PER_OWNER. A list shows the ones its path's owner holds (the SDK: "the
polling webhooks created through this route"), so the top lists the key's own scope's.

The token is shown once, by create: the store keeps its hash. Creating again with the owner's
`client_id` answers that polling webhook with a new token (the old one stops working; consumers
keep their places), which is how a lost token is replaced. Deleting one ends its token at once.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel

from mailgate.auth import hash_secret
from mailgate.http import poller
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid
from mailgate.http.fields import ClientId
from mailgate.http.inboxes import in_inbox
from mailgate.http.pagination import PageFields, PagingDep
from mailgate.http.pods import in_pod, top_level
from mailgate.http.webhooks import (
    MAX_FILTERS,
    Owner,
    PathOwner,
    age,
    event_types_of,
    inboxes_named,
    not_here,
    owner_of,
    pods_named,
    sees,
    visible_to,
)
from mailgate.store import errors as store_errors
from mailgate.store.records import Inbox as InboxRecord
from mailgate.store.records import Pod as PodRecord
from mailgate.store.records import PollingWebhook as PollingRecord

MAX_PER_OWNER = 10  # per organization, pod and inbox (the SDK's rule)


class PollingWebhook(BaseModel):
    webhook_id: str
    client_id: str
    event_types: list[str]
    pod_ids: list[str] | None = None
    inbox_ids: list[str] | None = None
    pod_id: str | None = None
    inbox_id: str | None = None
    updated_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, hook: PollingRecord) -> PollingWebhook:
        return cls(
            webhook_id=hook.public_id,
            client_id=hook.client_id,
            event_types=list(hook.event_types or ()),
            pod_ids=None if hook.pod_ids is None else list(hook.pod_ids),
            inbox_ids=None if hook.inbox_ids is None else list(hook.inbox_ids),
            pod_id=hook.pod,
            inbox_id=hook.inbox,
            updated_at=datetime.fromtimestamp(hook.updated_at, UTC),
            created_at=datetime.fromtimestamp(hook.created_at, UTC),
        )


class CreatePollingWebhookResponse(PollingWebhook):
    token: str


class ListPollingWebhooksResponse(PageFields):
    polling_webhooks: list[PollingWebhook]


class CreatePollingWebhookRequest(BaseModel):
    client_id: ClientId
    event_types: list[str]
    pod_ids: list[str] | None = None
    inbox_ids: list[str] | None = None


def _routes(prefix: str, path_owner: Any) -> APIRouter:
    routes = APIRouter(prefix=prefix, tags=["webhooks"])
    # A default value, not an Annotated alias, as in webhooks.py: the dependency is this tree's.
    at: Any = Depends(path_owner)

    @routes.get("", response_model_exclude_none=True)
    async def list_polling_webhooks(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        ascending: bool = False,
        owner: PathOwner = at,
    ) -> ListPollingWebhooksResponse:
        """The polling webhooks this path's owner holds, newest first (`ascending`: oldest
        first); at the top, those of the key's own scope."""
        held = _held_by(caller, owner)
        window = await paging.window(f"polling-webhooks:{held}:ascending={ascending}")
        found = await services.store.list_polling_webhooks(pod_id=held[0], inbox_id=held[1])
        hooks = sorted((h for h in found if sees(caller, h)), key=age, reverse=not ascending)
        page = await paging.page(window, hooks, age, descending=not ascending)
        return ListPollingWebhooksResponse(
            **page.fields(), polling_webhooks=[PollingWebhook.of(h) for h in page.items]
        )

    @routes.get("/{webhook_id}", response_model_exclude_none=True)
    async def get_polling_webhook(
        webhook_id: str, caller: CallerDep, services: ServicesDep, owner: PathOwner = at
    ) -> PollingWebhook:
        """The polling webhook, without its token (create again with its `client_id` for a
        new one)."""
        return PollingWebhook.of(await _visible(caller, services, owner, webhook_id))

    @routes.post("", response_model_exclude_none=True)
    async def create_polling_webhook(
        caller: CallerDep,
        services: ServicesDep,
        request: Request,
        body: Annotated[CreatePollingWebhookRequest, Body()],
        owner: PathOwner = at,
    ) -> CreatePollingWebhookResponse:
        """A new polling webhook, read from the events committed from now on, and the token
        that reads it (shown this once); with a `client_id` the owner has, that one and a new
        token."""
        hook, tok = await _create(caller, services, owner, body)
        server_url = str(request.base_url)
        shown = PollingWebhook.of(hook).model_dump()
        return CreatePollingWebhookResponse(**shown, token=poller.token(hook, server_url, tok))

    @routes.delete("/{webhook_id}", status_code=204)
    async def delete_polling_webhook(
        webhook_id: str, caller: CallerDep, services: ServicesDep, owner: PathOwner = at
    ) -> Response:
        """Delete it: its token stops working at once, and its consumers' places are gone."""
        hook = await _visible(caller, services, owner, webhook_id)
        await services.store.delete_polling_webhook(hook.public_id)
        return Response(status_code=204)

    return routes


router = APIRouter()
router.include_router(_routes("/v0/webhooks/polling", top_level))
router.include_router(_routes("/v0/pods/{pod_id}/webhooks/polling", in_pod))
router.include_router(_routes("/v0/inboxes/{inbox_id}/webhooks/polling", in_inbox))


def _held_by(caller: Caller, path: PathOwner) -> tuple[int | None, int | None]:
    """(pod id, inbox id) of the owner whose polling webhooks a list shows: the path's inbox
    or pod, at the top the key's own scope."""
    if isinstance(path, InboxRecord):
        return path.pod_id, path.id
    if isinstance(path, PodRecord):
        return path.id, None
    return caller.key.pod_id, caller.key.inbox_id


async def _visible(
    caller: Caller, services: Services, owner: PathOwner, webhook_id: str
) -> PollingRecord:
    try:
        hook: PollingRecord | None = await services.store.get_polling_webhook(webhook_id)
    except store_errors.PollingWebhookNotFound:
        hook = None
    return visible_to(caller, owner, hook, f"polling webhook {webhook_id}")


async def _create(
    caller: Caller, services: Services, path: PathOwner, request: CreatePollingWebhookRequest
) -> tuple[PollingRecord, str]:
    not_here(request.model_dump(exclude_none=True, include={"pod_ids", "inbox_ids"}), path)
    owner: Owner = await owner_of(caller, services, path)
    if not request.event_types:
        raise Invalid.field("event_types", "name at least one event type")
    event_types = event_types_of(request.event_types, "event_types")
    pod_ids = await pods_named(caller, services, owner, request.pod_ids or [], "pod_ids")
    inbox_ids = await inboxes_named(caller, services, owner, request.inbox_ids or [], "inbox_ids")
    if len(pod_ids) + len(inbox_ids) > MAX_FILTERS:
        raise Invalid([FieldError((), f"at most {MAX_FILTERS} pod_ids and inbox_ids in all")])
    # As a webhook: an inbox's or pod's lists its owner when given no narrower list.
    if not pod_ids and not inbox_ids:
        if owner.inbox is not None:
            inbox_ids = [owner.inbox.address]
        elif owner.pod is not None:
            pod_ids = [owner.pod.name]
    tok = poller.new_tok()
    try:
        made, _ = await services.store.create_polling_webhook(
            public_id=f"wh_{secrets.token_hex(12)}",
            pod_id=owner.pod_id,
            inbox_id=owner.inbox.id if owner.inbox is not None else None,
            client_id=request.client_id,
            event_types=event_types,
            pod_ids=pod_ids or None,
            inbox_ids=inbox_ids or None,
            token_hash=hash_secret(tok),
            limit=MAX_PER_OWNER,
        )
    except store_errors.LimitExceeded:
        where = "inbox" if owner.inbox else "pod" if owner.pod else "organization"
        raise Invalid(
            [
                FieldError(
                    (),
                    f"this {where} has {MAX_PER_OWNER} polling webhooks already (the most it "
                    "may): delete one, or create again with one's client_id for a new token",
                )
            ]
        ) from None
    return made, tok
