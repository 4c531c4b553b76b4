"""Events as the agentmail SDK reads them (`agentmail/events/types/`): what a webhook POSTs and a
websocket streams, made from one outbox event (store/outbox.py).

A message event shows the message and its thread as they are when the event is sent, read from
the store as GET would; a message deleted since shows what the outbox kept of it (ids, time).
Which events a key may see: an organization key every one, a pod key its pod's, an inbox key its
inbox's; a domain's events are the organization's.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from mailgate.http.context import Services
from mailgate.http.domains import verified
from mailgate.http.mail import message
from mailgate.http.threads import counted_messages, described
from mailgate.store import errors as store_errors
from mailgate.store.records import ApiKey, OutboxEvent

# The SDK's event types mailgate writes (store/records.py names them).
MESSAGE_RECEIVED = (
    "message.received",
    "message.received.spam",
    "message.received.blocked",
    "message.received.unauthenticated",
)
EVENT_TYPES = (
    *MESSAGE_RECEIVED,
    "message.sent",
    "message.delivered",
    "message.bounced",
    "message.complained",
    "message.rejected",
    "domain.verified",
)
# The object each kind of event carries its details in.
_DETAIL_FIELD = {
    "message.sent": "send",
    "message.delivered": "delivery",
    "message.bounced": "bounce",
    "message.rejected": "reject",
}


def visible(key: ApiKey, event: OutboxEvent) -> bool:
    """Whether the key's scope covers the event."""
    if key.inbox_id is not None:
        return event.inbox is not None and event.inbox == key.inbox
    if key.pod_id is not None:
        return event.pod is not None and event.pod == key.pod
    return True


def matches(
    event: OutboxEvent,
    event_types: frozenset[str] | None,
    inbox_ids: frozenset[str] | None,
    pod_ids: frozenset[str] | None,
) -> bool:
    """Whether a subscription's filters take the event: its type is listed (or none are), and
    its inbox or pod is (a listed pod covers its inboxes; neither listed: any)."""
    if event_types is not None and event.event_type not in event_types:
        return False
    if inbox_ids is None and pod_ids is None:
        return True
    return (inbox_ids is not None and event.inbox in inbox_ids) or (
        pod_ids is not None and event.pod in pod_ids
    )


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def payload(services: Services, event: OutboxEvent) -> dict[str, Any]:
    """The event object: a webhook's body, a websocket's message."""
    body: dict[str, Any] = {
        "type": "event",
        "event_type": event.event_type,
        "event_id": event.event_id,
    }
    if event.event_type == "domain.verified":
        body["domain"] = await _domain(services, event)
    elif event.event_type in MESSAGE_RECEIVED:
        body["message"], body["thread"] = await _message_and_thread(services, event)
    else:
        body[_DETAIL_FIELD.get(event.event_type, "detail")] = _outcome(event)
    return body


# How long a rendered event is reused: the websocket stream and the webhooks render each event
# at about the same moment; a retry minutes later renders it afresh.
REUSE_SECONDS = 10.0
_REUSED = 256


async def rendered(services: Services, event: OutboxEvent) -> str:
    """The event's JSON text, rendered once for every reader that sends it at about the same
    time (message events read the message, its body and its thread: several milliseconds);
    readers that come while it is being rendered wait for that rendering."""
    texts = services.event_texts
    now = time.monotonic()
    found = texts.get(event.seq)
    if found is not None and now - found[0] < REUSE_SECONDS and _usable(found[1]):
        return await asyncio.shield(found[1])
    task = asyncio.ensure_future(_text(services, event))
    # Its failure is each waiter's to raise; none left waiting must not make it "unretrieved".
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    texts[event.seq] = (now, task)
    texts.move_to_end(event.seq)
    while len(texts) > _REUSED:
        texts.popitem(last=False)
    return await asyncio.shield(task)


def _usable(rendering: asyncio.Future[str]) -> bool:
    """Still being rendered, or rendered well (a failed one is tried again)."""
    if not rendering.done():
        return True
    return not rendering.cancelled() and rendering.exception() is None


async def _text(services: Services, event: OutboxEvent) -> str:
    return json.dumps(await payload(services, event), separators=(",", ":"))


def _outcome(event: OutboxEvent) -> dict[str, Any]:
    """A send, delivery, bounce or reject: which message, and what became of it."""
    return {
        "inbox_id": event.inbox,
        "thread_id": event.thread_id or "",
        "message_id": event.message_id or "",
        "timestamp": _when(event.created_at),
        **event.detail,
    }


async def _message_and_thread(
    services: Services, event: OutboxEvent
) -> tuple[dict[str, Any], dict[str, Any]]:
    found = None
    if event.inbox is not None and event.blob_id is not None:
        found = await services.store.message_and_thread(
            event.inbox, event.blob_id, event.thread_id, counted_messages()
        )
    if found is None:
        kept = _kept(event)
        return kept, {
            **{k: kept[k] for k in ("inbox_id", "thread_id", "labels", "timestamp", "size")},
            "senders": [],
            "recipients": [],
            "last_message_id": kept["message_id"],
            "message_count": 0,
            "updated_at": kept["updated_at"],
            "created_at": kept["created_at"],
        }
    shown = await message(services, found.mail, found.raw)
    thread = described(found.thread, found.thread_messages) if found.thread else None
    thread_shown = thread.model_dump(mode="json", by_alias=True) if thread is not None else {}
    return (
        _without_none(shown.model_dump(mode="json", by_alias=True)),
        _without_none(thread_shown),
    )


def _kept(event: OutboxEvent) -> dict[str, Any]:
    """What the outbox kept of a message that is no longer there."""
    when = _when(event.created_at)
    return {
        "inbox_id": event.inbox or "",
        "thread_id": event.thread_id or "",
        "message_id": event.message_id or "",
        "labels": [],
        "timestamp": when,
        "from": "unknown",
        "to": [],
        "size": 0,
        "updated_at": when,
        "created_at": when,
    }


async def _domain(services: Services, event: OutboxEvent) -> dict[str, Any]:
    name = str(event.detail.get("domain", ""))
    try:
        domain = await services.store.get_domain(name)
    except store_errors.NotFound:
        when = _when(event.created_at)
        return {
            "domain_id": name,
            "domain": name,
            "status": "VERIFIED",
            "records": [],
            "updated_at": when,
            "created_at": when,
        }
    shown = verified(domain, services.settings.server.hostname)
    return _without_none(shown.model_dump(mode="json", by_alias=True))


def _without_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}
