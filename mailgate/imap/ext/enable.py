"""ENABLE (RFC 5161): CONDSTORE and QRESYNC (which implies CONDSTORE, RFC 7162 §3.2.3) are
the extensions that need turning on."""

from __future__ import annotations

from mailgate.imap.condstore import enable_condstore
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Enable, Request


@command("ENABLE", LOGGED_IN)
async def enable(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Enable)
    enabled = [c.upper() for c in args.capabilities if c.upper() in ("CONDSTORE", "QRESYNC")]
    if enabled:
        enable_condstore(s)
    if "QRESYNC" in enabled:
        s.qresync = True
    s.untagged(b"ENABLED" + b"".join(b" " + c.encode() for c in enabled))
    return "ENABLE completed"
