"""ENABLE (RFC 5161): the extensions that need turning on. CONDSTORE, QRESYNC (which implies
CONDSTORE, RFC 7162 §3.2.3), UTF8=ACCEPT (RFC 6855: UTF-8 mailbox names and quoted strings)
and IMAP4rev2 (RFC 9051 Appendix A: the session follows RFC 9051 from then on, UTF-8 names
included). Each answers as spelled in its RFC; what the server does not know is ignored."""

from __future__ import annotations

from mailgate.imap.condstore import enable_condstore
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Enable, Request

_KNOWN = {name.upper(): name for name in ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4rev2")}


@command("ENABLE", LOGGED_IN)
async def enable(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Enable)
    enabled = [_KNOWN[c] for c in args.capabilities if c in _KNOWN]
    if "CONDSTORE" in enabled or "QRESYNC" in enabled:
        enable_condstore(s)
    if "QRESYNC" in enabled:
        s.qresync = True
    if "UTF8=ACCEPT" in enabled:
        s.utf8_accept = True
    if "IMAP4rev2" in enabled:
        s.rev2 = True
        if s.selected is not None:  # RFC 5161 says ENABLE comes first; not every client obeys
            s.selected.drop_recent()
    s.untagged(b"ENABLED" + b"".join(b" " + c.encode() for c in enabled))
    return "ENABLE completed"
