"""Mailbox management: LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB, STATUS,
CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE."""

from __future__ import annotations

import re
import unicodedata

from mailgate.imap.condstore import enable_condstore
from mailgate.imap.errors import Reply, no
from mailgate.imap.ext.objectid import mailbox_item
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.registry import command
from mailgate.imap.syntax.values import List, Lsub, MailboxArg, Rename, Request, Status
from mailgate.imap.wire import mailbox as wire_mailbox
from mailgate.store.errors import HasChildren, StoreError
from mailgate.store.names import canonical_mailbox_name, parents
from mailgate.store.records import HIERARCHY_DELIMITER, INBOX, Mailbox

DELIMITER = HIERARCHY_DELIMITER.encode()


def _inbox_id(s: Session) -> int:
    assert s.principal is not None
    return s.principal.inbox.id


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: "*" matches anything, "%" anything but the hierarchy delimiter."""
    full = canonical_mailbox_name(reference + pattern)
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(HIERARCHY_DELIMITER)}]*")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def _matches(regexes: list[re.Pattern[str]], name: str) -> bool:
    for regex in regexes:
        if regex.fullmatch(name):
            return True
        # INBOX is case-insensitive, so "inbox" and "Inb%" name it too.
        if (name == INBOX or name.startswith(INBOX + HIERARCHY_DELIMITER)) and re.fullmatch(
            regex.pattern, name, re.DOTALL | re.IGNORECASE
        ):
            return True
    return False


def _attributes(box: Mailbox, parents: set[str], subscribed: bool) -> bytes:
    attrs = [b"\\HasChildren" if box.name in parents else b"\\HasNoChildren"]
    if box.special_use:
        attrs.append(box.special_use.encode())
    if subscribed:
        attrs.append(b"\\Subscribed")
    return b"(" + b" ".join(attrs) + b")"


def _parents(boxes: list[Mailbox]) -> set[str]:
    parents = set()
    for box in boxes:
        head, sep, _ = box.name.rpartition(HIERARCHY_DELIMITER)
        while sep:
            parents.add(head)
            head, sep, _ = head.rpartition(HIERARCHY_DELIMITER)
    return parents


def _sorted(boxes: list[Mailbox]) -> list[Mailbox]:
    return sorted(boxes, key=lambda b: (b.name != INBOX, b.name))


@command("LIST", LOGGED_IN)
async def list_mailboxes(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, List)
    if args.patterns == ("",) and not args.selection:
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the root.
        s.untagged(b'LIST (\\Noselect) "' + DELIMITER + b'" ""')
        return "LIST completed"
    boxes = _sorted(await s.store.list_mailboxes(_inbox_id(s)))
    parents = _parents(boxes)
    regexes = [pattern_regex(args.reference, p) for p in args.patterns]
    selected_subscribed = "SUBSCRIBED" in args.selection
    want_subscribed = selected_subscribed or "SUBSCRIBED" in args.returns
    subscribed = await s.store.subscriptions(_inbox_id(s)) if want_subscribed else set()
    # RFC 5258 §3.5, RECURSIVEMATCH: a mailbox that matches the patterns is also listed, with
    # CHILDINFO ("SUBSCRIBED"), when one of its descendants is subscribed but does not match
    # them (a descendant that matches is listed itself).
    hidden: list[str] = []
    if "RECURSIVEMATCH" in args.selection and selected_subscribed:
        hidden = [name for name in subscribed if not _matches(regexes, name)]
    # With the SUBSCRIBED selection, a subscribed name whose mailbox is gone is listed too, as
    # \NonExistent (RFC 5258 §3; the subscription outlives the mailbox, RFC 3501 §6.3.6).
    entries: list[tuple[str, Mailbox | None]] = [(box.name, box) for box in boxes]
    if selected_subscribed:
        present = {box.name for box in boxes}
        entries += [(name, None) for name in subscribed - present]
        entries.sort(key=lambda entry: (entry[0] != INBOX, entry[0]))
    for name, box in entries:
        if not _matches(regexes, name):
            continue
        prefix = name + HIERARCHY_DELIMITER
        childinfo = any(other.startswith(prefix) for other in hidden)
        if selected_subscribed and name not in subscribed and not childinfo:
            continue
        if box is None:
            attrs = b"(\\NonExistent \\Subscribed)"
        else:
            if "SPECIAL-USE" in args.selection and not box.special_use:
                continue
            attrs = _attributes(box, parents, name in subscribed)
        line = b"LIST " + attrs + b' "' + DELIMITER + b'" ' + wire_mailbox(name, s.utf8)
        s.untagged(line + (b' (CHILDINFO ("SUBSCRIBED"))' if childinfo else b""))
        if args.status_items and box is not None:
            # RFC 5819: STATUS right after its LIST line; a failure there is not fatal.
            try:
                s.untagged(await _status_line(s, box, args.status_items))
            except StoreError:
                continue
    return "LIST completed"


async def list_line(s: Session, box: Mailbox) -> bytes:
    """The LIST response naming one mailbox, with its attributes (RFC 9051 §6.3.2: SELECT and
    EXAMINE of an IMAP4rev2 session say it)."""
    parents = _parents(await s.store.list_mailboxes(_inbox_id(s)))
    attrs = _attributes(box, parents, subscribed=False)
    return b"LIST " + attrs + b' "' + DELIMITER + b'" ' + wire_mailbox(box.name, s.utf8)


@command("LSUB", LOGGED_IN)
async def lsub(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Lsub)
    if args.pattern == "":
        s.untagged(b'LSUB (\\Noselect) "' + DELIMITER + b'" ""')
        return "LSUB completed"
    regexes = [pattern_regex(args.reference, args.pattern)]
    subscribed = await s.store.subscriptions(_inbox_id(s))
    # RFC 3501 §6.3.9: an unsubscribed parent of a subscribed mailbox that the pattern matches
    # (with "%", where the child does not) is answered with \Noselect.
    above = {parent for name in subscribed for parent in parents(name)} - subscribed
    found = [(name, b"()") for name in subscribed if _matches(regexes, name)]
    found += [(name, b"(\\Noselect)") for name in above if _matches(regexes, name)]
    for name, attrs in sorted(found, key=lambda item: (item[0] != INBOX, item[0])):
        s.untagged(b"LSUB " + attrs + b' "' + DELIMITER + b'" ' + wire_mailbox(name, s.utf8))
    return "LSUB completed"


async def _status_line(s: Session, box: Mailbox, items: tuple[str, ...]) -> bytes:
    status = await s.store.status(box.id)
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,  # not yet claimed by any session (RFC 3501 §6.3.10)
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highestmodseq,
        "SIZE": status.size,
        "DELETED": status.deleted,
        # RFC 9208 §4.2.2: in units of 1024 octets, as STORAGE is counted.
        "DELETED-STORAGE": status.deleted_size // 1024,
    }
    pairs = b" ".join(
        mailbox_item(box.id) if item == "MAILBOXID" else f"{item} {values[item]}".encode()
        for item in items
    )
    return b"STATUS " + wire_mailbox(box.name, s.utf8) + b" (" + pairs + b")"


@command("STATUS", LOGGED_IN)
async def status(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Status)
    box = await s.store.get_mailbox(_inbox_id(s), args.mailbox)
    if "HIGHESTMODSEQ" in args.items:
        enable_condstore(s)  # RFC 7162 §3.1: using a CONDSTORE item enables it
    s.untagged(await _status_line(s, box, args.items))
    return "STATUS completed"


_SEPARATORS = frozenset("\u2028\u2029")


def _check_net_unicode(name: str) -> None:
    """A new name is Net-Unicode (RFC 9051 §5.1, RFC 6855 §3): NFC, and without line or
    paragraph separators, in whichever form it came (modified UTF-7 or UTF-8), as IMAP4rev2
    clients see every name in UTF-8. Looking a name up takes any form."""
    if name.isascii():
        return
    if any(ch in _SEPARATORS for ch in name) or not unicodedata.is_normalized("NFC", name):
        raise no("A mailbox name must be Unicode NFC without line separators", "CANNOT")


@command("CREATE", LOGGED_IN)
async def create(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, MailboxArg)
    # RFC 3501 §6.3.3: a trailing delimiter only says that children will follow.
    name = args.mailbox.rstrip(HIERARCHY_DELIMITER) or args.mailbox
    if canonical_mailbox_name(name) == INBOX:
        raise Reply("NO", "INBOX always exists", "ALREADYEXISTS")
    _check_net_unicode(name)
    await s.store.create_mailbox(_inbox_id(s), name)
    return "CREATE completed"


@command("DELETE", LOGGED_IN)
async def delete(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, MailboxArg)
    try:
        await s.store.delete_mailbox(_inbox_id(s), args.mailbox)
    except HasChildren as exc:
        if s.rev2:
            raise no(str(exc), "HASCHILDREN") from None  # RFC 9051 §6.3.5
        raise
    if s.selected is not None and s.selected.name == canonical_mailbox_name(args.mailbox):
        s.unselect()
    return "DELETE completed"


@command("RENAME", LOGGED_IN)
async def rename(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Rename)
    # The selected mailbox (or a child of the renamed one) learns its new name from the
    # store's MailboxRenamed event, as in every other session.
    _check_net_unicode(args.new)
    await s.store.rename_mailbox(_inbox_id(s), args.old, args.new)
    return "RENAME completed"


@command("SUBSCRIBE", LOGGED_IN)
async def subscribe(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, MailboxArg)
    await s.store.set_subscribed(_inbox_id(s), args.mailbox, True)
    return "SUBSCRIBE completed"


@command("UNSUBSCRIBE", LOGGED_IN)
async def unsubscribe(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, MailboxArg)
    await s.store.set_subscribed(_inbox_id(s), args.mailbox, False)
    return "UNSUBSCRIBE completed"
