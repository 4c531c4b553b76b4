"""APPEND (and MULTIAPPEND, RFC 3502, and CATENATE, RFC 4469), answering with APPENDUID
(RFC 4315)."""

from __future__ import annotations

from mailgate.imap.copy import destination
from mailgate.imap.errors import no
from mailgate.imap.ext.catenate import assemble
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Append, Request
from mailgate.imap.wire import uid_set
from mailgate.mime.transfer import encode_binary_parts
from mailgate.store.records import INBOX, RECEIVED, Notice, Parcel, Target
from mailgate.telemetry import SOURCE_APPEND


def _check(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise no(f"The message is larger than the limit of {limit} bytes", "TOOBIG")
    if not data.strip():
        raise no("Empty messages cannot be stored", "CANNOT")


@command("APPEND", LOGGED_IN)
async def append(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Append)
    limit = s.settings.imap.max_message_size
    for message in args.messages:
        if message.catenate is None:
            _check(message.data, limit)
    dest = await destination(s, args.mailbox)
    # RFC 4469: CATENATE parts are resolved once the destination is known to exist (a missing
    # one is TRYCREATE whatever the URLs say), and all of them before anything is stored.
    datas = []
    for message in args.messages:
        data = message.data
        if message.catenate is not None:
            data = await assemble(s, message.catenate, limit)
            _check(data, limit)
        datas.append(data)
    # Mail put into INBOX is mail received, as the API reports it (an importer, a fetcher).
    notices = (Notice(RECEIVED),) if dest.name == INBOX else ()
    parcels = [
        Parcel(encode_binary_parts(data), (Target(dest.id, m.flags, notices),), m.date)
        for m, data in zip(args.messages, datas, strict=True)
    ]
    # All messages of a MULTIAPPEND commit together, or none does (RFC 3502 §6.3.11).
    placed = await s.store.deliver(parcels)
    for _ in placed:
        s.metrics.accepted(SOURCE_APPEND)
    uids = [targets[0].uid for targets in placed]
    return f"[APPENDUID {dest.uidvalidity} {uid_set(uids).decode()}] APPEND completed"
