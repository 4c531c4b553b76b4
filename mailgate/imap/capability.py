"""CAPABILITY: what the server offers in the session's current state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.registry import ANY, command
from mailgate.imap.syntax.values import Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("CAPABILITY", ANY)
async def capability(s: IMAPServer, request: Request) -> str:
    s.untagged(b"CAPABILITY " + b" ".join(s.capability_list()))
    return "CAPABILITY completed"
