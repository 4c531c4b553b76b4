"""ID (RFC 2971): tell the client who we are; what it says of itself is only logged."""

from __future__ import annotations

import logging

from mailgate import __version__
from mailgate.imap.interfaces import ANY, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Id, Request

log = logging.getLogger(__name__)


@command("ID", ANY)
async def client_id(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Id)
    if args.params:
        log.debug("client %s says ID %s", s.client_ip, dict(args.params))
    s.untagged(f'ID ("name" "mailgate" "version" "{__version__}")'.encode())
    return "ID completed"
