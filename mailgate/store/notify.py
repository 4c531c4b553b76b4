"""Changes made on other nodes: PostgreSQL LISTEN/NOTIFY relayed into the local event bus.

Every write transaction on PostgreSQL sends its events (`pg_notify(CHANNEL, <JSON>)`) before
it commits; PostgreSQL delivers it to every listening node at commit. Each payload names the node
that sent it, which skips its own: it has published those events itself after the commit.

The listener holds one connection of its own, outside the pool. When that connection is lost,
notifications sent meanwhile are lost with it, so after reconnecting the listener asks every
session on this node to catch up from the store (`EventBus.resync`): nothing is missed, only
learned late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from mailgate.background import stop_task
from mailgate.store.events import EVENT_TYPES, Change, EventBus

log = logging.getLogger(__name__)

CHANNEL = "mailgate_changes"
# How often the listener proves its connection is alive; a silently dead connection (a
# firewall dropping it, a network partition) is noticed within this many seconds.
HEALTH_INTERVAL = 2.0
RECONNECT_MAX_DELAY = 5.0


# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900


def encode(node: str, events: Sequence[Change]) -> list[str]:
    """JSON payloads under PostgreSQL's size limit, each a list: the sending node's id, then
    events, each a list of its type's name and its fields in order."""
    payloads: list[str] = []
    head = json.dumps(node)
    current: list[str] = [head]
    size = len(head) + 2
    for event in events:
        item = json.dumps(
            [type(event).__name__, *(getattr(event, f.name) for f in fields(event))],
            separators=(",", ":"),
        )
        if len(current) > 1 and size + len(item) + 1 > MAX_PAYLOAD:
            payloads.append("[" + ",".join(current) + "]")
            current, size = [head], len(head) + 2
        current.append(item)
        size += len(item) + 1
    if len(current) > 1:
        payloads.append("[" + ",".join(current) + "]")
    return payloads


def decode(payload: str) -> tuple[str, list[Change]]:
    """(the sending node's id, its events)."""
    try:
        items = json.loads(payload)
        node = str(items[0])
    except (ValueError, TypeError, KeyError, IndexError):
        log.warning("ignoring malformed change notification %r", payload[:200])
        return "", []
    events: list[Change] = []
    for item in items[1:]:
        try:
            events.append(EVENT_TYPES[item[0]](*item[1:]))
        except (KeyError, TypeError, IndexError):
            log.warning("ignoring malformed change notification %r", item)
    return node, events


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(False)


class ChangeListener:
    """Keeps a LISTEN connection open, reconnecting with backoff, until stopped."""

    def __init__(self, sqlalchemy_url: str, bus: EventBus, node: str) -> None:
        self._dsn = asyncpg_dsn(sqlalchemy_url)
        self._bus = bus
        self._node = node
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailgate-change-listener")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        node, events = decode(payload)
        if node == self._node:
            return
        for event in events:
            self._bus.publish(event)

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("change listener cannot connect (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connected.set()
                if not first:
                    log.info("change listener reconnected; sessions catch up")
                    self._bus.resync()
                first = False
                delay = 0.1
                await self._watch(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("change listener lost its connection (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    async def _watch(self, conn: asyncpg.Connection) -> None:
        """Return (or raise) once the connection is no longer usable."""
        while not conn.is_closed():
            await asyncio.sleep(HEALTH_INTERVAL)
            await asyncio.wait_for(conn.execute("SELECT 1"), HEALTH_INTERVAL)
