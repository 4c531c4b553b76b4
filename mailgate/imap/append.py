"""APPEND (and MULTIAPPEND, RFC 3502), answering with APPENDUID (RFC 4315)."""

from __future__ import annotations

from mailgate.imap.copy import destination
from mailgate.imap.errors import no
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import Append, Request
from mailgate.imap.wire import uid_set
from mailgate.mime.transfer import encode_binary_parts
from mailgate.store.records import INBOX, RECEIVED, Notice, Parcel, Target
from mailgate.telemetry import SOURCE_APPEND


@command("APPEND", LOGGED_IN)
async def append(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Append)
    limit = s.settings.imap.max_message_size
    for message in args.messages:
        if len(message.data) > limit:
            raise no(f"The message is larger than the limit of {limit} bytes", "TOOBIG")
        if not message.data.strip():
            raise no("Empty messages cannot be stored", "CANNOT")
    dest = await destination(s, args.mailbox)
    # Mail put into INBOX is mail received, as the API reports it (an importer, a fetcher).
    notices = (Notice(RECEIVED),) if dest.name == INBOX else ()
    parcels = [
        Parcel(encode_binary_parts(m.data), (Target(dest.id, m.flags, notices),), m.date)
        for m in args.messages
    ]
    # All messages of a MULTIAPPEND commit together, or none does (RFC 3502 §6.3.11).
    placed = await s.store.deliver(parcels)
    for _ in placed:
        s.metrics.accepted(SOURCE_APPEND)
    uids = [targets[0].uid for targets in placed]
    return f"[APPENDUID {dest.uidvalidity} {uid_set(uids).decode()}] APPEND completed"
