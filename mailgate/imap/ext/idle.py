"""IDLE (RFC 2177): new mail, flag changes and expunges pushed as soon as they commit.

No coroutine waits for DONE: the session is only held by an Idling (interfaces.Holder), so an
idle connection costs no task, no frames and no timer. The server hands the holder the client's
next line (DONE), news that the selected mailbox changed (pushed at once) and the sweeper's
ticks (keepalives).
"""

from __future__ import annotations

import asyncio
import logging
import time

from mailgate.imap.errors import Reply
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.mailbox_view import MailboxGone
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request
from mailgate.store.errors import StoreError

log = logging.getLogger(__name__)


class Idling:
    """A session in IDLE: the tag DONE will answer, the last keepalive, the push in progress."""

    # Agents hold IDLE open all day: three slots, no dict (DESIGN: 32 KiB per idle session).
    __slots__ = ("last_ping", "pushing", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.last_ping = time.monotonic()
        self.pushing: asyncio.Task[None] | None = None

    def line_received(self, s: Session, line: bytes) -> None:
        s.holder = None
        if line.strip().upper() == b"DONE":
            reply = f"{self.tag} OK IDLE terminated\r\n".encode()
        else:
            reply = Reply("BAD", "Expected DONE to end IDLE").line(self.tag)
        pushing = self.pushing
        if pushing is None or pushing.done():
            s.send(reply)
            s.flush()
            return
        # A push is still writing: the tagged reply must come after its responses, and the
        # next command must wait for it.
        s.pauseProducing()

        def answer(_: asyncio.Task[None]) -> None:
            if s.closed:
                return
            s.send(reply)
            s.flush()
            s.resumeProducing()

        pushing.add_done_callback(answer)

    def tick(self, s: Session, now: float) -> None:
        if now - self.last_ping >= s.settings.imap.idle_keepalive:
            self.last_ping = now
            s.untagged(b"OK Still here")
            s.flush()

    def mailbox_changed(self, s: Session) -> None:
        if self.pushing is None or self.pushing.done():
            self.pushing = s.run_in_background(self._push_changes(s))

    async def _push_changes(self, s: Session) -> None:
        """Send what changed as soon as it is committed (RFC 2177)."""
        try:
            while s.holder is self and s.selected and s.selected.needs_catch_up:
                await s.catch_up()
                s.flush()
        except MailboxGone:
            s.close(b"The selected mailbox was deleted")
        except StoreError as exc:
            # The next event, or the end of IDLE, tries again.
            log.warning("IDLE update failed: %s", exc)
            s.metrics.store_error(exc)
            if s.selected is not None:
                s.selected.dirty = True


@command("IDLE", LOGGED_IN)
async def idle(s: Session, request: Request) -> None:
    idling = Idling(request.tag)
    s.holder = idling
    s.send(b"+ idling\r\n")
    if s.selected is not None and s.selected.needs_catch_up:
        idling.mailbox_changed(s)
