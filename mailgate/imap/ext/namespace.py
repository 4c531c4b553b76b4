"""NAMESPACE (RFC 2342): one personal namespace, no shared or other users' folders."""

from __future__ import annotations

from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Request
from mailgate.store.records import HIERARCHY_DELIMITER


@command("NAMESPACE", LOGGED_IN)
async def namespace(s: Session, request: Request) -> str:
    s.untagged(b'NAMESPACE (("" "' + HIERARCHY_DELIMITER.encode() + b'")) NIL NIL')
    return "NAMESPACE completed"
