"""Svix's consumer API for polling webhooks (http/polling.py makes them): what
`svix.AutoConfigConsumer(token, SinkInCommon(...))` calls on the server its token names, with
the token's `tok` as `Authorization: Bearer`:

    GET  /api/v1/app/{app_id}/autoconfig/{autoconfig_id}                  the subscription
    PUT  /api/v1/app/{app_id}/autoconfig/{autoconfig_id}/destination      subscribe()
    GET  /api/v1/app/{app_id}/polling-endpoint/{sink_id}/consumer/{id}    receive()
    POST /api/v1/app/{app_id}/polling-endpoint/{sink_id}/consumer/{id}/commit   commit()

A token is `auto_v2_` and the base64 of `{"aid", "sid", "surl", "esec", "tok"}`: the app, the
AutoConfig subscription and (once subscribed) the sink are all the polling webhook's id; `surl`
is this API's base URL as the creating request reached it; `tok` is random and kept only as its
hash. `esec` is a Svix endpoint secret, which only an HTTP endpoint would sign with: polled
events are not signed (they come over the authenticated connection), so it is fresh and unused.

Each polled message's `payload` is the event a webhook POSTs (http/events.py), from the same
outbox and filters: the owner's scope, the webhook's `event_types`, `pod_ids` and `inbox_ids`,
narrowed by the event types and channels (pod names, inbox addresses) `subscribe()` gave. Its
`offset` is the event's seq. A consumer reads after its commit, or during the lease of its last
poll (`lease_duration_ms`) after what that poll gave; so a poll that is not committed is given
again once its lease is over (at least once, as Svix). A poll gives at most `limit` events and
about MAX_BATCH_BYTES of them, and says `done` when nothing after them is there yet.

The JSON is Svix's (camelCase); failures are too, `{"code", "detail"}`, 422 with
`{"detail": [{"loc", "msg", "type"}]}` (svix raises HttpError and HTTPValidationError).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from mailgate.auth import AuthFailed, LockedOut, hash_secret
from mailgate.http.context import Services, ServicesDep
from mailgate.http.events import EVENT_TYPES, matches, rendered
from mailgate.store import errors as store_errors
from mailgate.store.records import OutboxEvent, PollingWebhook

router = APIRouter(prefix="/api/v1/app/{app_id}", include_in_schema=False)

TOKEN_PREFIX = "auto_v2_"
TOK_PREFIX = "mgpoll_"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250
DEFAULT_LEASE_MS = 30_000
MAX_LEASE_MS = 3_600_000
# A poll stops adding events past this many bytes (always giving one): a message event carries
# the message's text and HTML.
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_CONSUMER_ID = 255
MAX_CHANNELS = 10
# What is compared against when the subscription does not exist, so that costs the same.
_DUMMY_HASH = hash_secret("mailgate polling")


class Refused(Exception):
    """A failure in Svix's shape."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "detail": detail}
        self.headers = headers

    @classmethod
    def invalid(cls, where: list[str], message: str) -> Refused:
        refused = cls(422, "validation", message)
        refused.body = {"detail": [{"loc": where, "msg": message, "type": "value_error"}]}
        return refused


async def refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def new_tok() -> str:
    """A fresh `tok`: 256 random bits, as an API key's secret."""
    return TOK_PREFIX + secrets.token_urlsafe(32)


def token(hook: PollingWebhook, server_url: str, tok: str) -> str:
    """The token the SDK's create answers with, for svix's AutoConfigConsumer."""
    content = {
        "aid": hook.public_id,
        "sid": hook.public_id,
        "surl": server_url.rstrip("/"),
        "esec": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "tok": tok,
    }
    return TOKEN_PREFIX + base64.b64encode(json.dumps(content).encode()).decode()


# ---------------------------------------------------------------------------- the endpoints


@router.get("/autoconfig/{autoconfig_id}")
async def get_subscription(
    app_id: str, autoconfig_id: str, request: Request, services: ServicesDep
) -> JSONResponse:
    hook = await _opened(request, services, app_id, autoconfig_id)
    return JSONResponse(
        {
            "createdAt": _when(hook.created_at),
            "tokenCensored": TOK_PREFIX + "****",
            "id": hook.public_id,
            "endpId": None,
            "destId": hook.public_id if hook.destination is not None else None,
            "status": "active" if hook.destination is not None else "pending",
        }
    )


@router.put("/autoconfig/{autoconfig_id}/destination")
async def subscribe(
    app_id: str, autoconfig_id: str, request: Request, services: ServicesDep
) -> JSONResponse:
    """Bind the polling destination (made, or replaced with what is given now)."""
    hook = await _opened(request, services, app_id, autoconfig_id)
    given = await _body(request)
    kind = given.get("type")
    if kind != "pollingEndpoint":
        raise Refused.invalid(
            ["body", "type"], "mailgate's polling webhooks take only a pollingEndpoint"
        )
    status = given.get("status")
    if status not in (None, "enabled"):
        raise Refused.invalid(
            ["body", "status"], "a polling webhook is stopped by deleting it (over the API)"
        )
    uid = _optional_text(given.get("uid"), "uid")
    event_types = _strings(_either(given, "eventTypes", "event_types"), "eventTypes")
    unknown = [t for t in event_types or () if t not in EVENT_TYPES]
    if unknown:
        raise Refused.invalid(
            ["body", "eventTypes"], f"not event types mailgate reports: {', '.join(unknown)}"
        )
    channels = _strings(given.get("channels"), "channels")
    if channels is not None and len(channels) > MAX_CHANNELS:
        raise Refused.invalid(["body", "channels"], f"at most {MAX_CHANNELS} channels")
    metadata = given.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise Refused.invalid(["body", "metadata"], "an object of strings")
    stamp = int(time.time())
    before = hook.destination or {}
    destination = {
        "uid": uid,
        "event_types": event_types or None,
        "channels": channels or None,
        "metadata": metadata,
        "created_at": before.get("created_at", stamp),
        "updated_at": stamp,
    }
    hook = await services.store.subscribe_polling_webhook(hook.public_id, destination)
    return JSONResponse(_destination(hook))


@router.put("/autoconfig/{autoconfig_id}/endpoint")
async def subscribe_endpoint(
    app_id: str, autoconfig_id: str, request: Request, services: ServicesDep
) -> None:
    """svix's AutoConfig (an HTTP endpoint Svix would POST to): not what a polling webhook is."""
    await _opened(request, services, app_id, autoconfig_id)
    raise Refused(
        422,
        "not_supported",
        "a polling webhook is read with svix's AutoConfigConsumer; for events POSTed to a URL, "
        "create a webhook with that URL instead",
    )


@router.get("/polling-endpoint/{sink_id}/consumer/{consumer_id}")
async def poll(
    app_id: str, sink_id: str, consumer_id: str, request: Request, services: ServicesDep
) -> Response:
    """The consumer's next events (receive())."""
    hook = await _subscribed(request, services, app_id, sink_id)
    consumer = _consumer(consumer_id)
    query = request.query_params
    limit = _number(query.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    lease_ms = _number(
        query.get("lease_duration_ms"), "lease_duration_ms", 0, MAX_LEASE_MS, DEFAULT_LEASE_MS
    )
    starting = query.get("starting_position")
    if starting not in (None, "earliest", "latest"):
        raise Refused.invalid(["query", "starting_position"], "earliest or latest")
    now_ms = int(time.time() * 1000)
    position = await services.store.polling_position(
        hook, consumer, latest=starting == "latest", now_ms=now_ms
    )
    found = await services.store.events_after(position.after, limit=limit + 1, **_filters(hook))
    parts: list[str] = []
    size, last, full = 0, position.after, False
    for event in found[:limit]:
        if parts and size >= MAX_BATCH_BYTES:
            full = True
            break
        last = event.seq
        if wanted(hook, event):
            parts.append(_message(event, await rendered(services, event)))
            size += len(parts[-1])
    done = not full and len(found) <= limit
    if last > position.after and not parts and position.after == position.committed:
        # Nothing since its commit was for it (the store cannot filter on a destination's
        # channels): done with, or a consumer without a lease would read them again forever.
        await services.store.commit_polling(hook, consumer, last)
    elif last > position.after and lease_ms:
        await services.store.lease_polling(hook, consumer, through=last, until_ms=now_ms + lease_ms)
    body = '{"data":[' + ",".join(parts) + '],"done":' + ("true" if done else "false") + "}"
    return Response(body, media_type="application/json")


@router.post("/polling-endpoint/{sink_id}/consumer/{consumer_id}/commit", status_code=204)
async def commit(
    app_id: str, sink_id: str, consumer_id: str, request: Request, services: ServicesDep
) -> Response:
    """The consumer is done with the events up to `offset`: it reads after it from now on."""
    hook = await _subscribed(request, services, app_id, sink_id)
    consumer = _consumer(consumer_id)
    offset = (await _body(request)).get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise Refused.invalid(["body", "offset"], "an offset a poll gave (a whole number)")
    if not await services.store.commit_polling(hook, consumer, offset):
        raise Refused.invalid(["body", "offset"], f"no event has offset {offset} yet")
    return Response(status_code=204)


# ---------------------------------------------------------------------------- which events


def wanted(hook: PollingWebhook, event: OutboxEvent) -> bool:
    """Whether the subscription gets the event: its owner sees it (the organization every
    event, a pod its inboxes', an inbox its own), its filters take it, and so do those its
    destination was subscribed with."""
    if hook.inbox is not None:
        if event.inbox != hook.inbox:
            return False
    elif hook.pod is not None and event.pod != hook.pod:
        return False
    if not matches(
        event,
        None if hook.event_types is None else frozenset(hook.event_types),
        None if hook.inbox_ids is None else frozenset(hook.inbox_ids),
        None if hook.pod_ids is None else frozenset(hook.pod_ids),
    ):
        return False
    destination = hook.destination or {}
    types = destination.get("event_types")
    if types and event.event_type not in types:
        return False
    channels = destination.get("channels")
    return not channels or event.pod in channels or event.inbox in channels


def _filters(hook: PollingWebhook) -> dict[str, Any]:
    """What the store can filter on: the lists, else the owner; the event types both name."""
    inboxes, pods = hook.inbox_ids, hook.pod_ids
    if inboxes is None and pods is None:
        if hook.inbox is not None:
            inboxes = (hook.inbox,)
        elif hook.pod is not None:
            pods = (hook.pod,)
    types: tuple[str, ...] | None = hook.event_types
    narrower = (hook.destination or {}).get("event_types")
    if narrower:
        types = tuple(t for t in (types or EVENT_TYPES) if t in narrower)
    return {"inboxes": inboxes, "pods": pods, "event_types": types}


def _message(event: OutboxEvent, payload: str) -> str:
    """A PollerV2MessageOut, its payload the event's JSON as it is (not parsed again)."""
    head = {
        "offset": event.seq,
        "id": event.event_id,
        "eventId": event.event_id,
        "eventType": event.event_type,
        "channels": [c for c in (event.pod, event.inbox) if c is not None],
        "timestamp": _when(event.created_at),
    }
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"payload":' + payload + "}"


def _destination(hook: PollingWebhook) -> dict[str, Any]:
    """A DestinationOut: the filters it reads with."""
    destination = hook.destination or {}
    types = destination.get("event_types") or hook.event_types
    channels = destination.get("channels") or [*(hook.pod_ids or ()), *(hook.inbox_ids or ())]
    return {
        "id": hook.public_id,
        "uid": destination.get("uid"),
        "status": "enabled",
        "currentIterator": "",
        "createdAt": _when(int(destination.get("created_at", hook.created_at))),
        "updatedAt": _when(int(destination.get("updated_at", hook.updated_at))),
        "batchSize": DEFAULT_LIMIT,
        "maxWaitSecs": 0,
        "eventTypes": list(types) if types else None,
        "channels": list(channels) or None,
        "metadata": destination.get("metadata") or {},
        "type": "pollingEndpoint",
        "config": {},
    }


# ---------------------------------------------------------------------------- the request


async def _opened(
    request: Request, services: Services, app_id: str, subscription_id: str
) -> PollingWebhook:
    """The polling webhook the bearer token opens, if it is the one the path names."""
    scheme, _, tok = request.headers.get("authorization", "").partition(" ")
    tok = tok.strip()
    if scheme.lower() != "bearer" or not tok:
        raise Refused(
            401,
            "authentication_failed",
            "send the polling webhook's token as `Authorization: Bearer` (svix does)",
        )
    client = request.client.host if request.client is not None else "unknown"

    async def verify() -> PollingWebhook | None:
        hook: PollingWebhook | None = None
        if len(subscription_id) <= 64:
            try:
                hook = await services.store.get_polling_webhook(subscription_id)
            except store_errors.PollingWebhookNotFound:
                hook = None
        expected = hook.token_hash if hook is not None else _DUMMY_HASH
        if not hmac.compare_digest(expected, hash_secret(tok)) or hook is None:
            return None
        return hook if app_id == hook.public_id else None

    try:
        return await services.authenticator.verify_token(
            subscription_id, client, verify, protocol="api"
        )
    except AuthFailed:
        raise Refused(
            401,
            "authentication_failed",
            "invalid token (unknown, re-issued since, or its polling webhook deleted)",
        ) from None
    except LockedOut as exc:
        raise Refused(
            429,
            "rate_limited",
            str(exc),
            headers={"Retry-After": str(int(exc.retry_after) + 1)},
        ) from None


async def _subscribed(
    request: Request, services: Services, app_id: str, sink_id: str
) -> PollingWebhook:
    hook = await _opened(request, services, app_id, sink_id)
    if hook.destination is None:
        raise Refused(404, "not_found", "nothing subscribed yet: call subscribe() first")
    return hook


async def _body(request: Request) -> dict[str, Any]:
    try:
        given = json.loads(await request.body())
    except ValueError:
        raise Refused.invalid(["body"], "not JSON") from None
    if not isinstance(given, dict):
        raise Refused.invalid(["body"], "a JSON object")
    return given


def _consumer(consumer_id: str) -> str:
    if not 0 < len(consumer_id) <= MAX_CONSUMER_ID or not consumer_id.isprintable():
        raise Refused.invalid(
            ["path", "consumer_id"], f"1 to {MAX_CONSUMER_ID} printable characters"
        )
    return consumer_id


def _number(value: str | None, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise Refused.invalid(["query", name], f"a whole number from {low} to {high}")
    return number


def _either(given: dict[str, Any], camel: str, snake: str) -> Any:
    return given.get(camel, given.get(snake))


def _strings(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Refused.invalid(["body", name], "a list of strings")
    return list(dict.fromkeys(value))


def _optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise Refused.invalid(["body", name], "a string of 1 to 255 characters")
    return value


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
