"""Idempotent sends: the `Idempotency-Key` header the SDK sends with `idempotency_key=` on a
send, reply, reply-all, forward or draft send.

A retry carrying the same key within a day is answered with the message the first request sent,
and nothing is sent again; the key reused for a different request (another body, another
endpoint or message) is a 409. Keys belong to the sending inbox. The key is kept in the send's
own transaction (store.deliver), so a send and its key are committed together or not at all,
and two requests with one key at once send one message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fastapi import Request

from mailgate.http.context import Services
from mailgate.http.errors import Conflict, Invalid
from mailgate.store.conversations import Mail
from mailgate.store.records import Inbox

HEADER = "Idempotency-Key"
_MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class Once:
    """A request's idempotency key, and what the request was."""

    key: str
    fingerprint: str


async def once(request: Request) -> Once | None:
    """The request's key and fingerprint, if it carries a key; 400 for an unusable key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        raise Invalid.field(HEADER, f"1 to {_MAX_KEY} printable characters")
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:  # no body (a draft send may have none), or not JSON
        canonical = body.decode("utf-8", "replace")
    request_line = f"{request.method} {request.url.path}\n{canonical}"
    return Once(key, hashlib.sha256(request_line.encode()).hexdigest())


async def sent_before(services: Services, inbox: Inbox, key: Once | None) -> Mail | None:
    """The message this key sent already, if it did; 409 if it was for another request."""
    if key is None:
        return None
    found = await services.store.recall_receipt(inbox.id, key.key)
    if found is None:
        return None
    message_id, fingerprint = found
    return await replay(services, inbox, key, message_id, fingerprint)


async def replay(
    services: Services, inbox: Inbox, key: Once, message_id: str, fingerprint: str
) -> Mail:
    """The answer to a retry: the message sent the first time."""
    if fingerprint != key.fingerprint:
        raise Conflict(f"this {HEADER} was used for another request")
    found = await services.store.mail_by_ids([inbox.id], [message_id])
    if not found:
        raise Conflict(f"the message sent with this {HEADER} has since been deleted")
    return found[0]
