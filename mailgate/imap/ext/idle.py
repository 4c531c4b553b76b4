"""IDLE (RFC 2177): new mail, flag changes and expunges pushed as soon as they commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.registry import LOGGED_IN, command
from mailgate.imap.server import IDLING
from mailgate.imap.syntax.values import Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("IDLE", LOGGED_IN)
async def idle(s: IMAPServer, request: Request) -> str:
    s.start_idle(request.tag)
    return IDLING
