"""The NOTIFY grammar (RFC 5465 §8):

    notify           = "NOTIFY" SP (notify-set / notify-none)
    notify-none      = "NONE"
    notify-set       = "SET" [SP "STATUS"] SP event-groups
    event-group      = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" /
                       "subscribed" / ("subtree" SP one-or-more-mailbox) /
                       ("mailboxes" SP one-or-more-mailbox)
    events           = ("(" event *(SP event) ")") / "NONE"
    event            = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / atom

Beyond the grammar, the rules of §5 and §6 that make a command malformed (BAD): for the selected
mailbox MessageNew and MessageExpunge go together, FlagChange and AnnotationChange need them,
it takes message events only and is named once, and only it takes a fetch-att list. Events the
server does not support are the command's business (NO [BADEVENT]), not the grammar's.
"""

from __future__ import annotations

from collections.abc import Callable

from mailgate.imap.syntax.reader import LPAREN, RPAREN, SP, Reader, dedupe
from mailgate.imap.syntax.values import FetchItem, Notify, NotifyGroup, ParseError

EVENTS = {
    name.upper(): name
    for name in (
        "MessageNew",
        "MessageExpunge",
        "FlagChange",
        "AnnotationChange",
        "MailboxName",
        "SubscriptionChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
    )
}
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
_MAILBOX_EVENTS = frozenset(EVENTS.values()) - MESSAGE_EVENTS
SELECTED = frozenset({"SELECTED", "SELECTED-DELAYED"})
_FILTERS = SELECTED | {"INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}

FetchAtt = Callable[[Reader], FetchItem]


def parse_notify(r: Reader, fetch_att: FetchAtt) -> Notify:
    """`fetch_att` reads one fetch-att as FETCH does (commands.py owns that grammar)."""
    r.sp()
    verb = r.word()
    if verb == "NONE":
        r.finish()
        return Notify(None)
    if verb != "SET":
        raise ParseError("Expected NOTIFY NONE or NOTIFY SET")
    r.sp()
    status = False
    if r.peek() != LPAREN:
        if r.word() != "STATUS":
            raise ParseError("Expected STATUS or an event group")
        status = True
        r.sp()
    groups = [_group(r, fetch_att)]
    while r.more():
        groups.append(_group(r, fetch_att))
    r.finish()
    if sum(g.filter in SELECTED for g in groups) > 1:
        raise ParseError("The selected mailbox may be named in one event group only")
    return Notify(tuple(groups), status)


def _group(r: Reader, fetch_att: FetchAtt) -> NotifyGroup:
    r.expect(LPAREN, "(")
    name = r.word()
    if name not in _FILTERS:
        raise ParseError("Unknown mailbox filter")
    mailboxes: tuple[str, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        r.sp()
        if r.peek() == LPAREN:
            mailboxes = dedupe(r.paren_list(Reader.mailbox, empty_ok=False))
        else:
            mailboxes = (r.mailbox(),)
    r.sp()
    events, fetch = _events(r, fetch_att)
    r.expect(RPAREN, ")")
    group = NotifyGroup(name, mailboxes, events, fetch)
    _check(group)
    return group


def _events(r: Reader, fetch_att: FetchAtt) -> tuple[tuple[str, ...], tuple[FetchItem, ...]]:
    if r.peek() != LPAREN:
        if r.word() != "NONE":
            raise ParseError("Expected a list of events or NONE")
        return (), ()
    r.pos += 1
    events: list[str] = []
    fetch: tuple[FetchItem, ...] = ()
    while True:
        atom = r.atom().decode("ascii")
        event = EVENTS.get(atom.upper(), atom)
        events.append(event)
        if event == "MessageNew" and r.line[r.pos : r.pos + 2] == b" (":
            r.pos += 1
            fetch = dedupe(r.paren_list(fetch_att, empty_ok=False))
        if r.peek() != SP:
            break
        r.pos += 1
    r.expect(RPAREN, ")")
    return dedupe(events), fetch


def _check(group: NotifyGroup) -> None:
    events = set(group.events)
    if group.filter in SELECTED:
        # Its sequence numbers are the session's: they move with both events or neither.
        # Other mailboxes are told by STATUS, where any one event makes sense alone.
        if ("MessageNew" in events) != ("MessageExpunge" in events):
            raise ParseError("MessageNew and MessageExpunge go together (RFC 5465 §5)")
        if events & {"FlagChange", "AnnotationChange"} and "MessageNew" not in events:
            raise ParseError("FlagChange needs MessageNew and MessageExpunge (RFC 5465 §5)")
        if events & _MAILBOX_EVENTS:
            raise ParseError("The selected mailbox takes message events only")
    elif group.fetch:
        raise ParseError("A fetch-att list applies to the selected mailbox only")
