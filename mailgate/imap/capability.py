"""CAPABILITY: what the server offers in the session's current state."""

from __future__ import annotations

from mailgate.imap.interfaces import ANY, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request


@command("CAPABILITY", ANY)
async def capability(s: Session, request: Request) -> str:
    s.untagged(b"CAPABILITY " + b" ".join(s.capability_list()))
    return "CAPABILITY completed"
