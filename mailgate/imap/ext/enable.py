"""ENABLE (RFC 5161): CONDSTORE is the one extension that needs turning on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.commands import LOGGED_IN, command
from mailgate.imap.parser import Enable, Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("ENABLE", LOGGED_IN)
async def enable(s: IMAPServer, request: Request) -> str:
    args = request.args
    assert isinstance(args, Enable)
    enabled = [c for c in args.capabilities if c.upper() == "CONDSTORE"]
    if enabled:
        s.condstore = True
    s.untagged(b"ENABLED" + b"".join(b" " + c.upper().encode() for c in enabled))
    return "ENABLE completed"
