"""NOOP and CHECK: nothing to do; a client sends them for the changes the end-of-command
catch-up reports."""

from __future__ import annotations

from mailgate.imap.interfaces import ANY, Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request


@command("NOOP", ANY)
async def noop(s: Session, request: Request) -> str:
    # The server's end-of-command catch-up is what makes NOOP useful: it reports changes.
    return "NOOP completed"


@command("CHECK", State.SELECTED)
async def check(s: Session, request: Request) -> str:
    # Every change is committed when it is acknowledged; there is nothing to checkpoint.
    return "CHECK completed"
