"""QUOTA (RFC 9208) with the STORAGE resource: one quota root, named "", per inbox.

The root covers every mailbox of the inbox; its usage is what the inbox's messages take, in
units of 1024 octets as the RFC counts STORAGE. An inbox without a limit has no quota root
(RFC 9208 §3.2: a mailbox with no root has no limits). Users cannot set their own quota: the
administrator does (`mailgate inbox quota`), so SETQUOTA is answered NO.
"""

from __future__ import annotations

from mailgate.imap.errors import no
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import MailboxArg, QuotaRoot, Request, SetQuota
from mailgate.imap.wire import mailbox as wire_mailbox
from mailgate.store.records import Quota

ROOT = ""
KIB = 1024


async def _quota(s: Session) -> Quota:
    assert s.principal is not None
    return await s.store.quota(s.principal.inbox.id)


def _quota_line(quota: Quota) -> bytes:
    return b'QUOTA "" (STORAGE %d %d)' % (quota.used // KIB, quota.limit // KIB)


@command("GETQUOTA", LOGGED_IN)
async def getquota(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, QuotaRoot)
    quota = await _quota(s)
    if args.root != ROOT or not quota.limit:
        raise no("No such quota root", "NONEXISTENT")
    s.untagged(_quota_line(quota))
    return "GETQUOTA completed"


@command("GETQUOTAROOT", LOGGED_IN)
async def getquotaroot(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, MailboxArg)
    assert s.principal is not None
    box = await s.store.get_mailbox(s.principal.inbox.id, args.mailbox)
    quota = await _quota(s)
    line = b"QUOTAROOT " + wire_mailbox(box.name, s.utf8)
    if quota.limit:
        s.untagged(line + b' ""')
        s.untagged(_quota_line(quota))
    else:
        s.untagged(line)
    return "GETQUOTAROOT completed"


@command("SETQUOTA", LOGGED_IN)
async def setquota(s: Session, request: Request) -> str:
    assert isinstance(request.args, SetQuota)
    raise no("Quotas are set by the administrator, not over IMAP", "NOPERM")
