"""Changes made by the other worker processes of one `mailgate serve` on SQLite, relayed into the
local event bus: what LISTEN/NOTIFY (store/notify.py) does across PostgreSQL nodes.

SQLite has no NOTIFY, so the parent process that supervises the workers gives each a socket
(one end of a socket pair) and relays every line one worker writes to all the others. After each
commit a worker publishes its events to its own bus and writes them to the socket, one line per
payload in notify.encode's form, naming itself; a worker skips lines that name it. A relayed
event reaches the other workers after their commit, so a session there that reads the store on
hearing it sees the change (WAL: a new read transaction sees every committed write).

On PostgreSQL the workers hear each other through NOTIFY as nodes do, and the socket only
carries the end of the parent.

The parent ends the socket only by exiting (or when it stops the worker): the end of the socket
means this worker has no parent any more, and `on_lost` is called to stop it, so that a killed
parent leaves no workers behind serving without one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence

from mailgate.background import stop_task
from mailgate.store import notify
from mailgate.store.events import Change, EventBus

log = logging.getLogger(__name__)

# A notify payload is under 8000 bytes; a longer line is not one of ours.
MAX_LINE = 64 * 1024


class ChangeChannel:
    """This worker's end of the parent's relay."""

    def __init__(
        self,
        sock: socket.socket,
        bus: EventBus,
        node: str,
        on_lost: Callable[[], None],
        *,
        relaying: bool,
    ) -> None:
        self._sock = sock
        self._relaying = relaying
        self._bus = bus
        self._node = node
        self._on_lost = on_lost
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock, limit=MAX_LINE)
        self._task = asyncio.create_task(self._read(reader), name="mailgate-change-channel")

    def send(self, events: Sequence[Change]) -> None:
        """Tell the other workers (called after the commit; never waits)."""
        writer = self._writer
        if not self._relaying or writer is None or writer.is_closing():
            return
        for payload in notify.encode(self._node, events):
            writer.write(payload.encode() + b"\n")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError) as exc:  # reset, or a line over MAX_LINE
                log.error("the channel to the other workers failed: %s", exc)
                line = b""
            if not line.endswith(b"\n"):
                log.warning("the supervising process is gone; this worker stops")
                self._on_lost()
                return
            node, events = notify.decode(line.decode(errors="replace"))
            if node == self._node:
                continue
            for event in events:
                self._bus.publish(event)
