"""Webhooks: /v0/webhooks, /v0/pods/{pod_id}/webhooks and /v0/inboxes/{inbox_id}/webhooks (the
SDK's `client.webhooks`, `client.pods.webhooks` and `client.inboxes.webhooks`): list, get,
create, update, delete, and the custom headers sent with each delivery. hooks.py delivers.

A webhook has an owner: an inbox, a pod, or the organization. The path chooses it: under an
inbox that inbox, under a pod that pod, at the top the creating key's own scope (an organization
key makes organization webhooks, a pod key its pod's, an inbox key its inbox's), so a webhook
never gets an event that the key which made it could not see. Which events it gets is its
owner's and, narrower, its filters': `event_types`, and `pod_ids`/`inbox_ids` (an event of any
listed pod or inbox; a pod webhook made without `inbox_ids` lists its pod, an inbox webhook its
inbox). Pod and inbox ids given must be ones the key sees, within the owner; at most 10.

An organization key sees every webhook, a pod key its pod's and its inboxes', an inbox key its
inbox's; other webhooks do not exist for the caller (404). Under a pod are the pod's webhooks,
those of its inboxes included, under an inbox the inbox's; an inbox key may not create pod
webhooks (403).

The secret (Svix's format, `whsec_` and base64) signs every delivery; the SDK's Webhook requires
it, so it is shown whenever the webhook is. `client_id` makes creating idempotent per owner.
Header values are write-only: only their names are shown. Polling webhooks are polling.py's.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel

from mailgate.http import destinations
from mailgate.http.caller import Caller, CallerDep
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import FieldError, Invalid, NotFound
from mailgate.http.events import EVENT_TYPES
from mailgate.http.fields import ClientId
from mailgate.http.inboxes import in_inbox
from mailgate.http.pagination import Cursor, PageFields, PagingDep
from mailgate.http.pods import in_pod, top_level
from mailgate.store import errors as store_errors
from mailgate.store.records import UNSET, Unset
from mailgate.store.records import Inbox as InboxRecord
from mailgate.store.records import Pod as PodRecord
from mailgate.store.records import Webhook as WebhookRecord

MAX_FILTERS = 10  # pod_ids and inbox_ids together (the SDK: "Maximum 10 per webhook")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
# Headers a delivery sets itself (and those HTTP reserves): not to be replaced.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "user-agent",
    }
)
RESERVED_PREFIXES = ("svix-", "webhook-", "proxy-")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
# Whose webhooks a path is about: everyone's (the top), a pod's, or an inbox's.
PathOwner = PodRecord | InboxRecord | None


class Webhook(BaseModel):
    webhook_id: str
    url: str
    event_types: list[str] | None = None
    pod_ids: list[str] | None = None
    inbox_ids: list[str] | None = None
    pod_id: str | None = None
    inbox_id: str | None = None
    secret: str
    enabled: bool
    updated_at: datetime
    created_at: datetime
    client_id: str | None = None

    @classmethod
    def of(cls, hook: WebhookRecord) -> Webhook:
        return cls(
            webhook_id=hook.public_id,
            url=hook.url,
            event_types=None if hook.event_types is None else list(hook.event_types),
            pod_ids=None if hook.pod_ids is None else list(hook.pod_ids),
            inbox_ids=None if hook.inbox_ids is None else list(hook.inbox_ids),
            pod_id=hook.pod,
            inbox_id=hook.inbox,
            secret=hook.secret,
            enabled=hook.enabled,
            updated_at=datetime.fromtimestamp(hook.updated_at, UTC),
            created_at=datetime.fromtimestamp(hook.created_at, UTC),
            client_id=hook.client_id,
        )


class ListWebhooksResponse(PageFields):
    webhooks: list[Webhook]


class CreateWebhookRequest(BaseModel):
    url: str
    event_types: list[str]
    pod_ids: list[str] | None = None
    inbox_ids: list[str] | None = None
    client_id: ClientId | None = None
    headers: dict[str, str] | None = None


class UpdateWebhookRequest(BaseModel):
    add_pod_ids: list[str] | None = None
    remove_pod_ids: list[str] | None = None
    add_inbox_ids: list[str] | None = None
    remove_inbox_ids: list[str] | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None


class UpdateWebhookHeadersRequest(BaseModel):
    headers: dict[str, str] | None = None
    remove_headers: list[str] | None = None


class WebhookHeaderNamesResponse(BaseModel):
    header_names: list[str]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a new webhook belongs to: the inbox (and its pod), the pod, or neither."""

    pod: PodRecord | None = None
    inbox: InboxRecord | None = None

    @property
    def pod_id(self) -> int | None:
        return self.inbox.pod_id if self.inbox is not None else self.pod.id if self.pod else None


def new_secret() -> str:
    """Svix's format: whsec_ and the base64 of the key's bytes (24 random ones)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _routes(prefix: str, path_owner: Any) -> APIRouter:
    """The webhook handlers under `prefix`; `path_owner` gives the pod or inbox the path names
    (or None at the top)."""
    routes = APIRouter(prefix=prefix, tags=["webhooks"])
    # A default value, not an Annotated alias, as in inboxes.py: the dependency is this tree's.
    at: Any = Depends(path_owner)

    @routes.get("", response_model_exclude_none=True)
    async def list_webhooks(
        caller: CallerDep,
        services: ServicesDep,
        paging: PagingDep,
        ascending: bool = False,
        owner: PathOwner = at,
    ) -> ListWebhooksResponse:
        """Webhooks the key sees (here), newest first (`ascending`: oldest first)."""
        window = await paging.window(f"webhooks:{_where(owner)}:ascending={ascending}")
        found = await services.store.list_webhooks(
            pod_id=owner.id if isinstance(owner, PodRecord) else None,
            inbox_id=owner.id if isinstance(owner, InboxRecord) else None,
        )
        hooks = sorted((h for h in found if sees(caller, h)), key=age, reverse=not ascending)
        page = await paging.page(window, hooks, age, descending=not ascending)
        return ListWebhooksResponse(**page.fields(), webhooks=[Webhook.of(h) for h in page.items])

    @routes.get("/{webhook_id}", response_model_exclude_none=True)
    async def get_webhook(
        webhook_id: str, caller: CallerDep, services: ServicesDep, owner: PathOwner = at
    ) -> Webhook:
        return Webhook.of(await _visible(caller, services, owner, webhook_id))

    @routes.get("/{webhook_id}/headers")
    async def get_webhook_headers(
        webhook_id: str, caller: CallerDep, services: ServicesDep, owner: PathOwner = at
    ) -> WebhookHeaderNamesResponse:
        """The names of the headers sent with each delivery (their values are never shown)."""
        hook = await _visible(caller, services, owner, webhook_id)
        return WebhookHeaderNamesResponse(header_names=[name for name, _ in hook.headers])

    @routes.post("", response_model_exclude_none=True)
    async def create_webhook(
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[CreateWebhookRequest, Body()],
        owner: PathOwner = at,
    ) -> Webhook:
        """A new webhook, sent the events committed from now on; with a `client_id` a webhook
        of the same owner has, that webhook."""
        return Webhook.of(await _create(caller, services, owner, request))

    @routes.patch("/{webhook_id}", response_model_exclude_none=True)
    async def update_webhook(
        webhook_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[UpdateWebhookRequest, Body()],
        owner: PathOwner = at,
    ) -> Webhook:
        """Add or remove pods and inboxes, replace `event_types` (when not empty), enable or
        disable. Re-enabled, it starts from the events committed from then on."""
        hook = await _visible(caller, services, owner, webhook_id)
        return Webhook.of(await _update(caller, services, owner, hook, request))

    @routes.patch("/{webhook_id}/headers", status_code=204)
    async def update_webhook_headers(
        webhook_id: str,
        caller: CallerDep,
        services: ServicesDep,
        request: Annotated[UpdateWebhookHeadersRequest, Body()],
        owner: PathOwner = at,
    ) -> Response:
        """Set, replace or remove headers, all at once."""
        hook = await _visible(caller, services, owner, webhook_id)
        given = request.headers or {}
        remove = request.remove_headers or []
        if not given and not remove:
            raise Invalid([FieldError((), "give headers to set or remove_headers")])
        both = {n.lower() for n in given} & {n.lower() for n in remove}
        if both:
            raise Invalid.field(
                "remove_headers", f"set and removed at once: {', '.join(sorted(both))}"
            )
        _check_headers(given, "headers")
        for i, name in enumerate(remove):
            if not _TOKEN.match(name):
                raise Invalid([FieldError(("remove_headers", i), "not a header name")])
        kept = {n.lower() for n, _ in hook.headers} - {n.lower() for n in remove}
        if len(kept | {n.lower() for n in given}) > MAX_HEADERS:
            raise Invalid.field("headers", f"a webhook sends at most {MAX_HEADERS} headers")
        await services.store.update_webhook_headers(
            hook.public_id, set_headers=given, remove=remove
        )
        return Response(status_code=204)

    @routes.delete("/{webhook_id}", status_code=204)
    async def delete_webhook(
        webhook_id: str, caller: CallerDep, services: ServicesDep, owner: PathOwner = at
    ) -> Response:
        hook = await _visible(caller, services, owner, webhook_id)
        await services.store.delete_webhook(hook.public_id)
        return Response(status_code=204)

    return routes


router = APIRouter()
router.include_router(_routes("/v0/webhooks", top_level))
router.include_router(_routes("/v0/pods/{pod_id}/webhooks", in_pod))
router.include_router(_routes("/v0/inboxes/{inbox_id}/webhooks", in_inbox))


def _where(owner: PathOwner) -> str:
    if isinstance(owner, InboxRecord):
        return f"inbox={owner.id}"
    return f"pod={owner.id}" if isinstance(owner, PodRecord) else "all"


class Hook(Protocol):
    """What webhooks and polling webhooks share for listing and access: age and owner."""

    @property
    def id(self) -> int: ...
    @property
    def created_at(self) -> int: ...
    @property
    def pod_id(self) -> int | None: ...
    @property
    def inbox_id(self) -> int | None: ...


H = TypeVar("H", bound=Hook)


def age(hook: Hook) -> Cursor:
    return (hook.created_at, hook.id)


def sees(caller: Caller, hook: Hook) -> bool:
    """Whether the key's scope covers the hook's owner."""
    key = caller.key
    if key.inbox_id is not None:
        return hook.inbox_id == key.inbox_id
    if key.pod_id is not None:
        return hook.pod_id == key.pod_id
    return True


def visible_to(caller: Caller, owner: PathOwner, hook: H | None, what: str) -> H:
    """`hook` if the caller sees it under the path's pod or inbox (if any); else NotFound
    naming `what`, the same as for one that does not exist."""
    if hook is not None and isinstance(owner, InboxRecord) and hook.inbox_id != owner.id:
        hook = None
    if hook is not None and isinstance(owner, PodRecord) and hook.pod_id != owner.id:
        hook = None
    if hook is None or not sees(caller, hook):
        raise NotFound(f"no {what}")
    return hook


async def _visible(
    caller: Caller, services: Services, owner: PathOwner, webhook_id: str
) -> WebhookRecord:
    try:
        hook: WebhookRecord | None = await services.store.get_webhook(webhook_id)
    except store_errors.WebhookNotFound:
        hook = None
    return visible_to(caller, owner, hook, f"webhook {webhook_id}")


async def owner_of(caller: Caller, services: Services, path: PathOwner) -> Owner:
    """Who a webhook created here belongs to: the path's inbox or pod, at the top the key's
    own scope."""
    if isinstance(path, InboxRecord):
        return Owner(inbox=path)
    if isinstance(path, PodRecord):
        caller.require("organization", "pod", doing="create pod webhooks")
        return Owner(pod=path)
    key = caller.key
    if key.inbox is not None:
        return Owner(inbox=await services.store.get_inbox(key.inbox))
    if key.pod is not None:
        return Owner(pod=await services.store.get_pod(key.pod))
    return Owner()


def event_types_of(values: Sequence[str], field: str) -> list[str]:
    errors = [
        FieldError((field, i), f"{value!r} is not an event type mailgate reports")
        for i, value in enumerate(values)
        if value not in EVENT_TYPES
    ]
    if errors:
        raise Invalid(errors)
    return list(dict.fromkeys(values))


async def pods_named(
    caller: Caller, services: Services, owner: Owner, names: Sequence[str], field: str
) -> list[str]:
    """The pods named, each one the caller sees and within the owner (else 400)."""
    found: list[str] = []
    for i, name in enumerate(names):
        try:
            pod: PodRecord | None = await services.store.get_pod(name)
        except (store_errors.PodNotFound, store_errors.InvalidName):
            pod = None
        if pod is None or not caller.sees_pod(pod):
            raise Invalid([FieldError((field, i), f"no pod {name}")])
        if owner.pod_id is not None and pod.id != owner.pod_id:
            raise Invalid([FieldError((field, i), f"pod {name} is not this webhook's pod")])
        found.append(pod.name)
    return list(dict.fromkeys(found))


async def inboxes_named(
    caller: Caller, services: Services, owner: Owner, addresses: Sequence[str], field: str
) -> list[str]:
    """The inboxes named, each one the caller sees and within the owner (else 400)."""
    found: list[str] = []
    for i, address in enumerate(addresses):
        try:
            inbox: InboxRecord | None = await services.store.get_inbox(address)
        except (store_errors.InboxNotFound, store_errors.InvalidName):
            inbox = None
        if inbox is None or not caller.sees(inbox):
            raise Invalid([FieldError((field, i), f"no inbox {address}")])
        outside = (owner.inbox is not None and inbox.id != owner.inbox.id) or (
            owner.pod_id is not None and inbox.pod_id != owner.pod_id
        )
        if outside:
            raise Invalid([FieldError((field, i), f"inbox {address} is outside this webhook's")])
        found.append(inbox.address)
    return list(dict.fromkeys(found))


def not_here(given: dict[str, Any], path: PathOwner) -> None:
    """Fields the path fixes: an inbox webhook's pods and inboxes, a pod webhook's pods."""
    if isinstance(path, InboxRecord):
        fixed = [f for f in given if "pod_ids" in f or "inbox_ids" in f]
        where = "an inbox's webhook is fixed to its inbox"
    elif isinstance(path, PodRecord):
        fixed = [f for f in given if "pod_ids" in f]
        where = "a pod's webhook is fixed to its pod"
    else:
        return
    if fixed:
        raise Invalid([FieldError((f,), f"not accepted here: {where}") for f in fixed])


def _check_headers(headers: dict[str, str], field: str) -> None:
    problems: list[FieldError] = []
    for name, value in headers.items():
        lowered = name.lower()
        if not _TOKEN.match(name):
            problems.append(FieldError((field, name), "not a header name"))
        elif lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
            problems.append(FieldError((field, name), "set by mailgate itself"))
        elif len(value) > MAX_HEADER_VALUE or not all(" " <= c <= "~" or c == "\t" for c in value):
            problems.append(
                FieldError((field, name), f"at most {MAX_HEADER_VALUE} printable ASCII characters")
            )
    if len({n.lower() for n in headers}) < len(headers):
        problems.append(FieldError((field,), "a header is named twice"))
    if len(headers) > MAX_HEADERS:
        problems.append(FieldError((field,), f"a webhook sends at most {MAX_HEADERS} headers"))
    if problems:
        raise Invalid(problems)


async def _create(
    caller: Caller, services: Services, path: PathOwner, request: CreateWebhookRequest
) -> WebhookRecord:
    not_here(request.model_dump(exclude_none=True, include={"pod_ids", "inbox_ids"}), path)
    owner = await owner_of(caller, services, path)
    why = await destinations.check(
        request.url, services.resolver, services.settings.api.allow_private_webhooks
    )
    if why is not None:
        raise Invalid.field("url", why)
    if not request.event_types:
        raise Invalid.field("event_types", "name at least one event type")
    event_types = event_types_of(request.event_types, "event_types")
    pod_ids = await pods_named(caller, services, owner, request.pod_ids or [], "pod_ids")
    inbox_ids = await inboxes_named(caller, services, owner, request.inbox_ids or [], "inbox_ids")
    if len(pod_ids) + len(inbox_ids) > MAX_FILTERS:
        raise Invalid([FieldError((), f"at most {MAX_FILTERS} pod_ids and inbox_ids in all")])
    # A pod's or inbox's webhook lists its owner when given no narrower list: adding an
    # inbox later then adds to it instead of narrowing it (the SDK's rule).
    if not pod_ids and not inbox_ids:
        if owner.inbox is not None:
            inbox_ids = [owner.inbox.address]
        elif owner.pod is not None:
            pod_ids = [owner.pod.name]
    headers = request.headers or {}
    _check_headers(headers, "headers")
    made = await services.store.create_webhook(
        public_id=f"wh_{secrets.token_hex(12)}",
        pod_id=owner.pod_id,
        inbox_id=owner.inbox.id if owner.inbox is not None else None,
        url=request.url,
        secret=new_secret(),
        event_types=event_types,
        pod_ids=pod_ids or None,
        inbox_ids=inbox_ids or None,
        headers=headers,
        client_id=request.client_id,
    )
    services.webhooks_changed()
    return made


async def _update(
    caller: Caller,
    services: Services,
    path: PathOwner,
    hook: WebhookRecord,
    request: UpdateWebhookRequest,
) -> WebhookRecord:
    given = request.model_dump(exclude_none=True)
    not_here(given, path)
    owner = Owner(
        pod=await services.store.get_pod(hook.pod) if hook.pod and hook.inbox is None else None,
        inbox=await services.store.get_inbox(hook.inbox) if hook.inbox else None,
    )
    event_types: list[str] | Unset = UNSET
    if request.event_types:  # an empty list leaves them as they are (the SDK's rule)
        event_types = event_types_of(request.event_types, "event_types")
    add_pods = await pods_named(caller, services, owner, request.add_pod_ids or [], "add_pod_ids")
    add_inboxes = await inboxes_named(
        caller, services, owner, request.add_inbox_ids or [], "add_inbox_ids"
    )
    try:
        updated = await services.store.update_webhook(
            hook.public_id,
            event_types=event_types,
            add_pod_ids=add_pods,
            remove_pod_ids=[_pod_name(n) for n in request.remove_pod_ids or []],
            add_inbox_ids=add_inboxes,
            remove_inbox_ids=[n.strip().lower() for n in request.remove_inbox_ids or []],
            enabled=UNSET if request.enabled is None else request.enabled,
            max_filters=MAX_FILTERS,
        )
    except (store_errors.LimitExceeded, store_errors.CannotModify) as exc:
        raise Invalid([FieldError((), str(exc))]) from None
    services.webhooks_changed()
    return updated


def _pod_name(name: str) -> str:
    return name.strip()
