"""ID (RFC 2971): tell the client who we are; what it says of itself is only logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailgate import __version__
from mailgate.imap.registry import ANY, command
from mailgate.imap.syntax.values import Id, Request

if TYPE_CHECKING:
    from mailgate.imap.server import IMAPServer

log = logging.getLogger(__name__)


@command("ID", ANY)
async def client_id(s: IMAPServer, request: Request) -> str:
    args = request.args
    assert isinstance(args, Id)
    if args.params:
        log.debug("client %s says ID %s", s.client_ip, dict(args.params))
    s.untagged(f'ID ("name" "mailgate" "version" "{__version__}")'.encode())
    return "ID completed"
