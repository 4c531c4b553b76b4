"""UNSELECT (RFC 3691): leave the mailbox without expunging it."""

from __future__ import annotations

from mailgate.imap.interfaces import Session, State
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request


@command("UNSELECT", State.SELECTED)
async def unselect(s: Session, request: Request) -> str:
    s.unselect()
    return "UNSELECT completed"
