"""UNSELECT (RFC 3691): leave the mailbox without expunging it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.registry import State, command
from mailgate.imap.syntax.values import Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("UNSELECT", State.SELECTED)
async def unselect(s: IMAPServer, request: Request) -> str:
    s.unselect()
    return "UNSELECT completed"
