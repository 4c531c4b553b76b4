"""Told, not polling: MCP clients subscribed to inbox resources, and the changes that tell them.

A subscription names inbox resources (`mailgate://inboxes/{inbox_id}`); the client is sent
`notifications/resources/updated` for one when a message arrives in that inbox, leaves it, or
its flags or labels change, by any door, on any node (the event bus carries other nodes'
changes through NOTIFY). Each protocol era subscribes its own way:

- handshake era: `resources/subscribe` on a session; notifications go out on the session's
  standalone stream (the client's GET), as the SDK sends them (`Sessions`);
- 2026-07-28: `subscriptions/listen`, whose response is the stream (`listen`).

Both are `Watcher`s: the URIs they want, and those changed since they were last told. That is a
set, and a notification a level trigger ("read it again"), so a change to an inbox already
waiting is not queued twice: a client that reads slowly, or never, costs at most one entry per
inbox it watches, however much mail arrives.

`InboxWatch` follows the event bus for each inbox someone on this node watches, and for no
other; it only marks watchers, never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from mcp import types
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY, ResourceUpdated
from mcp.shared.subscriptions import event_to_notification as notification_of

from mailgate.store.events import (
    Change,
    EventBus,
    FlagsChanged,
    MessagesAdded,
    MessagesExpunged,
    Resync,
    Subscription,
)

log = logging.getLogger(__name__)

# Inboxes one session or listen stream may watch at once.
MAX_WATCHED = 1000
# The changes that alter what an inbox resource reads (its newest threads).
_TELLING = (MessagesAdded, MessagesExpunged, FlagsChanged, Resync)


class Watcher:
    """One subscriber: the inboxes it watches (store id -> URI) and the URIs changed since it
    was last told, in the order they changed."""

    __slots__ = ("changed", "closed", "key_id", "uris", "wake")

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.uris: dict[int, str] = {}
        self.changed: dict[str, None] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def touch(self, inbox_id: int) -> None:
        uri = self.uris.get(inbox_id)
        if uri is not None:
            self.changed[uri] = None
            self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    async def changes(self) -> list[str]:
        """The URIs changed since the last call, once there are some; empty once closed."""
        while not self.changed and not self.closed:
            await self.wake.wait()
            self.wake.clear()
        if self.closed:
            return []
        found = list(self.changed)
        self.changed.clear()
        return found


class InboxWatch:
    """The inboxes watched on this node, each followed on the event bus while someone does."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._inboxes: dict[int, tuple[Subscription, set[Watcher]]] = {}
        self._watchers: set[Watcher] = set()

    def watch(self, watcher: Watcher, inbox_id: int, uri: str) -> None:
        if inbox_id not in watcher.uris and len(watcher.uris) >= MAX_WATCHED:
            raise MCPError(types.INVALID_REQUEST, f"at most {MAX_WATCHED} inboxes per subscription")
        watcher.uris[inbox_id] = uri
        self._watchers.add(watcher)
        entry = self._inboxes.get(inbox_id)
        if entry is None:
            follow = self._bus.subscribe_inbox(inbox_id, functools.partial(self._changed, inbox_id))
            entry = self._inboxes[inbox_id] = (follow, set())
        entry[1].add(watcher)

    def unwatch(self, watcher: Watcher, inbox_id: int) -> None:
        watcher.uris.pop(inbox_id, None)
        entry = self._inboxes.get(inbox_id)
        if entry is None:
            return
        entry[1].discard(watcher)
        if not entry[1]:
            entry[0].close()
            del self._inboxes[inbox_id]

    def drop(self, watcher: Watcher) -> None:
        for inbox_id in list(watcher.uris):
            self.unwatch(watcher, inbox_id)
        self._watchers.discard(watcher)

    def count(self, key_id: str) -> int:
        return sum(1 for w in self._watchers if w.key_id == key_id)

    def close(self) -> None:
        """Every watcher is told to end (the server stops)."""
        for watcher in list(self._watchers):
            watcher.close()

    @property
    def inboxes(self) -> int:
        return len(self._inboxes)

    def _changed(self, inbox_id: int, change: Change) -> None:
        if isinstance(change, _TELLING):
            for watcher in tuple(self._inboxes.get(inbox_id, ((), ()))[1]):
                watcher.touch(inbox_id)


class _Session:
    __slots__ = ("mcp", "telling", "watcher")

    def __init__(self, watcher: Watcher, mcp: ServerSession) -> None:
        self.watcher = watcher
        self.mcp = mcp
        self.telling: asyncio.Task[None] | None = None


class Sessions:
    """Handshake-era subscriptions (`resources/subscribe`), by MCP session id; forgotten when
    the session ends (closed by the client, expired, or the server stopping)."""

    def __init__(self, watch: InboxWatch) -> None:
        self._watch = watch
        self._sessions: dict[str, _Session] = {}

    def subscribe(
        self, session_id: str, mcp: ServerSession, key_id: str, inbox_id: int, uri: str
    ) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session(Watcher(key_id), mcp)
            session.telling = asyncio.create_task(
                self._tell(session), name=f"mailgate-mcp-subscriptions-{session_id[:8]}"
            )
        self._watch.watch(session.watcher, inbox_id, uri)

    def unsubscribe(self, session_id: str, inbox_id: int) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            self._watch.unwatch(session.watcher, inbox_id)

    def forget(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._watch.drop(session.watcher)
            if session.telling is not None:
                session.telling.cancel()

    async def stop(self) -> None:
        tasks = [s.telling for s in self._sessions.values() if s.telling is not None]
        for session_id in list(self._sessions):
            self.forget(session_id)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def open(self) -> int:
        return len(self._sessions)

    @staticmethod
    async def _tell(session: _Session) -> None:
        while uris := await session.watcher.changes():
            for uri in uris:
                try:
                    await session.mcp.send_resource_updated(uri)
                except Exception as exc:  # the stream went away: the session's end forgets it
                    log.debug("MCP: cannot tell a session of %s: %s", uri, exc)


async def listen(
    watch: InboxWatch,
    key_id: str,
    limit: int,
    subscription_id: str | int | None,
    honored: dict[int, str],
    send: Callable[..., Awaitable[None]],
) -> types.SubscriptionsListenResult:
    """Serve one `subscriptions/listen` stream: acknowledge the inboxes it will be told of
    (`honored`: store id -> URI, those of the requested the key sees), then a notification for
    each change, until the client goes (the request is cancelled) or the server stops (the
    stream ends with its result, as the specification's graceful close)."""
    if subscription_id is None:
        raise MCPError(types.INVALID_REQUEST, "subscriptions/listen requires a request id")
    if watch.count(key_id) >= limit:
        raise MCPError(types.INTERNAL_ERROR, f"at most {limit} subscriptions per API key at once")
    meta = {SUBSCRIPTION_ID_META_KEY: subscription_id}
    watcher = Watcher(key_id)
    try:
        for inbox_id, uri in honored.items():
            watch.watch(watcher, inbox_id, uri)
        acknowledged = types.SubscriptionFilter(
            resource_subscriptions=list(honored.values()) or None
        )
        await send(
            types.SubscriptionsAcknowledgedNotification(
                params=types.SubscriptionsAcknowledgedNotificationParams(
                    notifications=acknowledged, _meta=meta
                )
            ),
            related_request_id=subscription_id,
        )
        while uris := await watcher.changes():
            for uri in uris:
                await send(
                    notification_of(ResourceUpdated(uri=uri), meta),
                    related_request_id=subscription_id,
                )
    finally:
        watch.drop(watcher)
    return types.SubscriptionsListenResult(_meta=meta)
