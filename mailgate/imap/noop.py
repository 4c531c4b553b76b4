"""NOOP and CHECK: nothing to do; a client sends them for the changes the end-of-command
catch-up reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.registry import ANY, State, command
from mailgate.imap.syntax.values import Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("NOOP", ANY)
async def noop(s: IMAPServer, request: Request) -> str:
    # The server's end-of-command catch-up is what makes NOOP useful: it reports changes.
    return "NOOP completed"


@command("CHECK", State.SELECTED)
async def check(s: IMAPServer, request: Request) -> str:
    # Every change is committed when it is acknowledged; there is nothing to checkpoint.
    return "CHECK completed"
