"""NAMESPACE (RFC 2342): one personal namespace, no shared or other users' folders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate.imap.registry import LOGGED_IN, command
from mailgate.imap.syntax.values import Request
from mailgate.store.records import HIERARCHY_DELIMITER

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer


@command("NAMESPACE", LOGGED_IN)
async def namespace(s: IMAPServer, request: Request) -> str:
    s.untagged(b'NAMESPACE (("" "' + HIERARCHY_DELIMITER.encode() + b'")) NIL NIL')
    return "NAMESPACE completed"
