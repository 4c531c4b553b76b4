"""The websocket event stream at /v0, as the agentmail SDK's `client.websockets.connect()` speaks
it: the API key in `Authorization: Bearer` or the `api_key` query parameter; the client sends
`{"type": "subscribe", "event_types", "inbox_ids", "pod_ids"}` and is answered `subscribed`, then
gets each event (http/events.py) the moment its transaction commits, on any node.

One `EventHub` per node follows the outbox for every websocket: told by the event bus that
events were recorded (here, or on another node through NOTIFY), it reads those after its cursor
once, renders each once, and hands the text to each subscriber whose key and filters take it.
Nobody subscribed, it reads nothing.

Each connection sends from one queue, in order, by a task that lives while there is something to
send. A client that does not read fills it: past
MAX_BACKLOG events or MAX_BACKLOG_BYTES it is closed (1008) rather than let its backlog grow
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.responses import JSONResponse

from mailgate.auth import AuthFailed, LockedOut
from mailgate.background import stop_task
from mailgate.http.context import Services
from mailgate.http.events import EVENT_TYPES, matches, rendered, visible
from mailgate.store.errors import StoreError
from mailgate.store.events import Change, EventsRecorded
from mailgate.store.records import ApiKey, OutboxEvent

log = logging.getLogger(__name__)

# Events (and their bytes) waiting for one client; past either it is too slow, and is closed.
MAX_BACKLOG = 1000
MAX_BACKLOG_BYTES = 8 * 1024 * 1024
# Events read from the outbox at once.
BATCH = 200
# A subscribe message longer than this is refused (the SDK's are a few hundred bytes).
MAX_MESSAGE = 64 * 1024
# How long closing a client that does not read may wait before its connection is cut.
CLOSE_WAIT = 2.0
# The policy-violation close code: too slow, or a protocol error.
TOO_SLOW = 1008
# Seconds before reading again after the store failed to answer.
RETRY_DELAY = 1.0


class Subscriber:
    """One websocket's subscription, and the texts waiting to be sent to it. A task sends them
    while there are some (an idle connection holds no task of its own besides its handler)."""

    __slots__ = (
        "_sending",
        "event_types",
        "inbox_ids",
        "key",
        "overflowed",
        "pod_ids",
        "queue",
        "queued_bytes",
        "websocket",
    )

    def __init__(self, key: ApiKey, websocket: WebSocket) -> None:
        self.key = key
        self.websocket = websocket
        self.event_types: frozenset[str] | None = None
        self.inbox_ids: frozenset[str] | None = None
        self.pod_ids: frozenset[str] | None = None
        self.queue: deque[str] | None = None  # made when first needed: 760 bytes each
        self.queued_bytes = 0
        self.overflowed = False
        self._sending: asyncio.Task[None] | None = None

    def wants(self, event: OutboxEvent) -> bool:
        return visible(self.key, event) and matches(
            event, self.event_types, self.inbox_ids, self.pod_ids
        )

    def offer(self, text: str) -> None:
        if self.overflowed:
            return
        waiting = len(self.queue) if self.queue is not None else 0
        if waiting >= MAX_BACKLOG or self.queued_bytes + len(text) > MAX_BACKLOG_BYTES:
            self.overflowed = True
            self.queue = None
            # Its sender may be stuck writing to a socket that takes nothing: interrupt it.
            if self._sending is not None and not self._sending.done():
                self._sending.cancel()
            else:
                self._sending = asyncio.create_task(_close_slow(self.websocket))
            return
        self._push(text)

    def reply(self, message: dict[str, Any]) -> None:
        """An answer to the client's own message: never dropped for the backlog."""
        self._push(json.dumps(message))

    def _push(self, text: str) -> None:
        if self.queue is None:
            self.queue = deque()
        self.queue.append(text)
        self.queued_bytes += len(text)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        """Send what waits, in order. Cancelled because the client let its backlog overflow (it
        may be waiting for the socket to take more), close the connection."""
        try:
            while self.queue:
                text = self.queue.popleft()
                self.queued_bytes -= len(text)
                await self.websocket.send_text(text)
            self.queue = None
        except asyncio.CancelledError:
            if not self.overflowed:
                raise
            await _close_slow(self.websocket)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # gone: the handler notices and leaves

    async def stop(self) -> None:
        if self._sending is not None and not self._sending.done():
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sending


class EventHub:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._subscribers: set[Subscriber] = set()
        self._cursor: int | None = None  # None: nobody listens, nothing is followed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscription = services.store.bus.subscribe_outbox(self._on_change)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _on_change(self, change: Change) -> None:
        if self._subscribers:
            self._wake.set()
        elif isinstance(change, EventsRecorded) and self._cursor is not None:
            self._cursor = max(self._cursor, change.modseq)

    async def join(self, subscriber: Subscriber) -> None:
        """Start sending `subscriber` the events committed from now on."""
        if self._cursor is None:
            self._cursor = await self._services.store.last_event_seq()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="mailgate-event-hub")
        self._subscribers.add(subscriber)

    def leave(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def stop(self) -> None:
        self._subscription.close()
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
            except StoreError as exc:
                # The cursor keeps its place: tried again shortly, or at the next event.
                log.warning("event stream: cannot read events now: %s", exc)
                asyncio.get_running_loop().call_later(RETRY_DELAY, self._wake.set)
            except Exception:
                log.exception("event stream: failed to send events")

    async def _catch_up(self) -> None:
        while self._subscribers and self._cursor is not None:
            found = await self._services.store.events_after(self._cursor, limit=BATCH)
            for event in found:
                takers = [s for s in self._subscribers if s.wants(event)]
                if takers:
                    text = await self._render(event)
                    for subscriber in takers:
                        if text is not None:
                            subscriber.offer(text)
                self._cursor = event.seq
            if len(found) < BATCH:
                return

    async def _render(self, event: OutboxEvent) -> str | None:
        """The event's text; None, and the event skipped, if it cannot be rendered at all (a
        StoreError is not that: it leaves the cursor where it is, to try again)."""
        try:
            return await rendered(self._services, event)
        except StoreError:
            raise
        except Exception:
            log.exception("event stream: cannot render event %s", event.event_id)
            return None


router = APIRouter()


@router.get("/v0", include_in_schema=False)
async def not_upgraded() -> JSONResponse:
    """A plain GET of the stream's URL: say how to use it."""
    return JSONResponse(
        {"name": "UpgradeRequired", "message": "connect to /v0 with a websocket"},
        status_code=426,
        headers={"Upgrade": "websocket"},
    )


async def stream(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    hub: EventHub = websocket.app.state.event_hub
    key = await _authenticated(websocket, services)
    if key is None:
        return
    await websocket.accept()
    subscriber = Subscriber(key, websocket)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                subscriber.reply(_error("ValidationError", "messages must be JSON text frames"))
            elif len(text) > MAX_MESSAGE:
                subscriber.reply(_error("ValidationError", "message too long"))
            else:
                await _handle(text, subscriber, hub)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        hub.leave(subscriber)
        await subscriber.stop()


# A plain Starlette route: FastAPI's dependency machinery would hold its exit stacks (about
# 3 KiB) for as long as each connection lasts, for nothing (it authenticates by hand).
router.add_websocket_route("/v0", stream)


async def _close_slow(websocket: WebSocket) -> None:
    reason = "too slow: too many events waiting"
    try:
        await asyncio.wait_for(websocket.close(TOO_SLOW, reason), CLOSE_WAIT)
    except (TimeoutError, RuntimeError, OSError):
        # Its socket takes nothing more, the close frame included: cut it.
        abort: Callable[[], None] | None = websocket.scope.get("extensions", {}).get(ABORT)
        if abort is not None:
            abort()


async def _handle(text: str, subscriber: Subscriber, hub: EventHub) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        subscriber.reply(_error("ValidationError", "messages must be JSON objects"))
        return
    if not isinstance(message, dict):
        subscriber.reply(_error("ValidationError", "messages must be JSON objects"))
        return
    kind = message.get("type")
    if kind != "subscribe":
        subscriber.reply(_error("ValidationError", f"unknown message type {kind!r}"))
        return
    try:
        event_types = _names(message, "event_types")
        inbox_ids = _names(message, "inbox_ids")
        pod_ids = _names(message, "pod_ids")
    except ValueError as exc:
        subscriber.reply(_error("ValidationError", str(exc)))
        return
    unknown = sorted((event_types or frozenset()) - set(EVENT_TYPES))
    if unknown:
        subscriber.reply(_error("ValidationError", f"unknown event types: {', '.join(unknown)}"))
        return
    subscriber.event_types, subscriber.inbox_ids, subscriber.pod_ids = (
        event_types,
        inbox_ids,
        pod_ids,
    )
    await hub.join(subscriber)
    answer: dict[str, Any] = {"type": "subscribed"}
    for name, value in (
        ("event_types", event_types),
        ("inbox_ids", inbox_ids),
        ("pod_ids", pod_ids),
    ):
        if value is not None:
            answer[name] = sorted(value)
    subscriber.reply(answer)


def _names(message: dict[str, Any], field: str) -> frozenset[str] | None:
    value = message.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of strings")
    if len(value) > 1000:
        raise ValueError(f"{field}: at most 1000")
    return frozenset(value)


def _error(name: str, message: str) -> dict[str, str]:
    return {"type": "error", "name": name, "message": message}


async def _authenticated(websocket: WebSocket, services: Services) -> ApiKey | None:
    """The key the client sent, or None once it has been refused with an HTTP status (the SDK
    reports a 401 as invalid credentials)."""
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = websocket.query_params.get("api_key", "")
    if not token:
        await _deny(websocket, 401, "Unauthorized", "send a mailgate API key")
        return None
    client = websocket.client.host if websocket.client is not None else "unknown"
    try:
        return await services.authenticator.verify_key(token, client, protocol="api")
    except AuthFailed:
        await _deny(websocket, 401, "Unauthorized", "invalid API key (unknown or revoked)")
    except LockedOut as exc:
        await _deny(websocket, 429, "RateLimited", str(exc))
    return None


async def _deny(websocket: WebSocket, status: int, name: str, message: str) -> None:
    await websocket.send_denial_response(
        JSONResponse({"name": name, "message": message}, status_code=status)
    )


# The scope extension by which the websocket protocol (http/server.py) lets a handler cut a
# connection whose socket takes nothing more.
ABORT = "mailgate.abort"
