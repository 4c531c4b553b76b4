"""NOTIFY (RFC 5465): what changes in the selected mailbox and in the inbox's other mailboxes,
told as it commits, between commands and during IDLE alike.

- The selected mailbox ("selected", "selected-delayed"): its view hears of changes as IDLE's
  does (mailbox_view.py); between commands a push tells them at once, as EXISTS, EXPUNGE (held
  for the next command that may have them under "selected-delayed") and FETCH (FLAGS), then a
  FETCH of MessageNew's fetch-att list for each new message. With a selected filter but
  without FlagChange, other sessions' flag changes to it are not told at all (as in Dovecot);
  without a selected filter, it is told at the next command as in plain IMAP.
- The other mailboxes: one watch per inbox on this node follows the inbox on the event bus (so
  changes committed on other nodes too) for all the NOTIFY sessions of that inbox. A change to a
  mailbox costs one read of its counters, whatever the number of sessions told of it: a STATUS
  with MESSAGES, UIDNEXT, UNSEEN, UIDVALIDITY and HIGHESTMODSEQ, what MessageNew,
  MessageExpunge and FlagChange each need (§5; as Dovecot, HIGHESTMODSEQ without CONDSTORE
  too: without it a flag change elsewhere would go unseen). A
  mailbox created, renamed or deleted (MailboxName), or a subscription (SubscriptionChange), is
  told as LIST, a rename with its OLDNAME.
- A session that is running a command or not reading keeps what it is to be told (a mailbox's
  newest STATUS only) until it can take it; past MAX_PENDING it is told
  `* OK [NOTIFICATIONOVERFLOW]` and NOTIFY NONE is in effect (RFC 5465 §5.8).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import weakref
from collections.abc import Iterable

from mailgate.imap.errors import Reply, bad
from mailgate.imap.fetch import fetch
from mailgate.imap.interfaces import LOGGED_IN, Session
from mailgate.imap.mailbox_view import MailboxGone
from mailgate.imap.registry import command
from mailgate.imap.syntax.notify import SELECTED
from mailgate.imap.syntax.values import (
    Fetch,
    FetchItem,
    Notify,
    NotifyGroup,
    Request,
    SeqRange,
    SequenceSet,
)
from mailgate.imap.wire import mailbox as wire_mailbox
from mailgate.store.api import Store
from mailgate.store.errors import MailboxNotFound, StoreError
from mailgate.store.events import (
    Change,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Resync,
    SubscriptionChanged,
)
from mailgate.store.records import HIERARCHY_DELIMITER, INBOX, SPAM, Mailbox, MailboxStatus

log = logging.getLogger(__name__)

SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange")
# Mailbox names one NOTIFY SET may give (Dovecot allows 100 too).
MAX_NAMES = 100
# Notifications a session may have waiting before it is told NOTIFICATIONOVERFLOW.
MAX_PENDING = 1000
# What the "inboxes" filter names: the mailboxes mail is delivered to (RFC 5465 §6).
INBOXES = frozenset({INBOX, SPAM})

NEW, EXPUNGE, FLAGS, NAME, SUBSCRIPTION = 1, 2, 4, 8, 16
MESSAGES = NEW | EXPUNGE | FLAGS
_BITS = {
    "MessageNew": NEW,
    "MessageExpunge": EXPUNGE,
    "FlagChange": FLAGS,
    "MailboxName": NAME,
    "SubscriptionChange": SUBSCRIPTION,
}
_KINDS: dict[type[Change], int] = {
    MessagesAdded: NEW,
    MessagesExpunged: EXPUNGE,
    FlagsChanged: FLAGS,
}
_NAMED = (MailboxCreated, MailboxRenamed, MailboxDeleted, SubscriptionChanged)
_OVERFLOW = b"OK [NOTIFICATIONOVERFLOW] Too many notifications waited; NOTIFY NONE is in effect"
_keys = itertools.count()


@dataclasses.dataclass(frozen=True, slots=True)
class _Filter:
    """One event group about the mailboxes other than the selected one."""

    kind: str
    names: tuple[str, ...]
    events: int

    def matches(self, name: str, subscribed: set[str]) -> bool:
        kind = self.kind
        if kind == "PERSONAL":
            return True
        if kind == "INBOXES":
            return name in INBOXES
        if kind == "SUBSCRIBED":
            return name in subscribed
        if kind == "MAILBOXES":
            return name in self.names
        return any(name == n or name.startswith(n + HIERARCHY_DELIMITER) for n in self.names)


class Notifier:
    """What NOTIFY SET asked of one session, and what waits to be told to it."""

    # One per NOTIFY session, held all day like IDLE's: slots, and nothing made before needed.
    __slots__ = (
        "_filters",
        "_overflowed",
        "_pushing",
        "_watch",
        "delayed",
        "fetch",
        "flag_changes",
        "pending",
        "pushes",
    )

    def __init__(self, groups: tuple[NotifyGroup, ...]) -> None:
        selected = next((g for g in groups if g.filter in SELECTED), None)
        events = selected.events if selected is not None else ()
        # MessageNew and MessageExpunge go together, and FlagChange needs them (the parser).
        self.pushes = "MessageNew" in events
        # A selected filter without FlagChange turns flag changes off (as in Dovecot); without
        # a selected filter the selected mailbox is told the usual way, at the next command.
        self.flag_changes = selected is None or "FlagChange" in events
        self.delayed = selected is not None and selected.filter == "SELECTED-DELAYED"
        self.fetch = tuple(_peek(item) for item in selected.fetch) if selected else ()
        self._filters = tuple(
            _Filter(g.filter, g.mailboxes, _mask(g.events))
            for g in groups
            if g.filter not in SELECTED and g.events
        )
        self._watch: _Watch | None = None
        self._pushing: asyncio.Task[None] | None = None
        self._overflowed = False
        # What waits to be told: a mailbox's STATUS under its id (the newest replaces the
        # older), anything else under a key of its own. None while nothing waits.
        self.pending: dict[object, bytes] | None = None

    @property
    def watches(self) -> bool:
        return bool(self._filters)

    def wants(self, name: str, events: int, subscribed: set[str]) -> bool:
        return any(f.events & events and f.matches(name, subscribed) for f in self._filters)

    # ---------------------------------------------------------------- telling

    def tell(self, s: Session, line: bytes, key: object = None) -> None:
        """Send an untagged response now if the session can take it, else keep it."""
        if s.closed or self._overflowed:
            return
        pending = self.pending
        if pending is None and s.running is None and not s.output_paused:
            s.untagged(line)
            s.flush()
            return
        if pending is None:
            pending = self.pending = {}
        if key is None:
            key = next(_keys)
        else:
            pending.pop(key, None)
        pending[key] = line
        if len(pending) > MAX_PENDING:
            self.stop()
            # From here on as after NOTIFY NONE (RFC 5465 §5.8).
            self._overflowed = True
            self.pushes = False
            self.flag_changes = True
            self.fetch = ()
            self.pending = {"overflow": _OVERFLOW}

    def release(self, s: Session) -> None:
        """Tell what waited, if the session can take it now."""
        pending = self.pending
        if pending is None or s.closed or s.running is not None or s.output_paused:
            return
        self.pending = None
        for line in pending.values():
            s.untagged(line)
        s.flush()
        if self._overflowed and s.notifier is self:
            s.notifier = None

    # ---------------------------------------------------------------- the session's events

    def command_done(self, s: Session) -> None:
        self.release(s)
        self.mailbox_changed(s)

    def tick(self, s: Session) -> None:
        self.release(s)

    def mailbox_changed(self, s: Session) -> None:
        if not self.pushes or self._overflowed or s.running is not None or s.holder is not None:
            return
        if (self._pushing is None or self._pushing.done()) and self._stale(s):
            self._pushing = s.run_in_background(self._push(s))

    def _stale(self, s: Session) -> bool:
        selected = s.selected
        if selected is None:
            return False
        return selected.dirty or (not self.delayed and selected.needs_catch_up)

    async def _push(self, s: Session) -> None:
        """Tell the selected mailbox's changes between commands (RFC 5465 §5)."""
        try:
            while (
                s.notifier is self
                and s.running is None
                and s.holder is None
                and not s.closed
                and self._stale(s)
            ):
                await s.catch_up(expunges_ok=not self.delayed)
                s.flush()
        except MailboxGone:
            s.close(b"The selected mailbox was deleted")
        except StoreError as exc:
            # The next change, or the next command, tries again.
            log.warning("NOTIFY update failed: %s", exc)
            s.metrics.store_error(exc)
            if s.selected is not None:
                s.selected.dirty = True

    async def new_messages(self, s: Session, after_uid: int) -> None:
        if not self.fetch:
            return
        # UID FETCH, so that messages expunged meanwhile are simply not found.
        every_new = SequenceSet((SeqRange(after_uid + 1, None),))
        try:
            await fetch(s, Request("*", "FETCH", True, Fetch(every_new, self.fetch)))
        except Reply as reply:
            # A message the list cannot be fetched from (BINARY of an unknown encoding): the
            # client was told it exists and fetches it itself; the command at hand goes on.
            log.info("NOTIFY fetch of new messages skipped: %s", reply.text)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.remove(self)
            self._watch = None


def _mask(events: Iterable[str]) -> int:
    mask = 0
    for event in events:
        mask |= _BITS[event]
    return mask


def _peek(item: FetchItem) -> FetchItem:
    """A notification never sets \\Seen: BODY[...] and BINARY[...] are read as .PEEK."""
    if item.sets_seen and item.name in ("BODY", "BINARY"):
        return dataclasses.replace(item, peek=True)
    return item


def _selects(s: Session, mailbox_id: int) -> bool:
    return s.selected is not None and s.selected.mailbox_id == mailbox_id


def status_line(name: str, status: MailboxStatus, *, utf8: bool) -> bytes:
    return b"STATUS %s (MESSAGES %d UIDNEXT %d UNSEEN %d UIDVALIDITY %d HIGHESTMODSEQ %d)" % (
        wire_mailbox(name, utf8),
        status.messages,
        status.uidnext,
        status.unseen,
        status.uidvalidity,
        status.highestmodseq,
    )


class _Watch:
    """The NOTIFY sessions of one inbox on this node and what they share: one subscription to
    the inbox's changes, its mailboxes and subscriptions as last read, and one worker that turns
    changes into responses for each session that asked."""

    # Agents watch an inbox each, all day: slots here too.
    __slots__ = (
        "_changed",
        "_loaded",
        "_named",
        "_resync",
        "_subscription",
        "_watches",
        "_worker",
        "boxes",
        "inbox_id",
        "sessions",
        "store",
        "subscribed",
    )

    def __init__(self, store: Store, inbox_id: int, watches: dict[int, _Watch]) -> None:
        self.store = store
        self.inbox_id = inbox_id
        self._watches = watches
        self.sessions: dict[Notifier, Session] = {}
        self.boxes: dict[int, Mailbox] = {}
        self.subscribed: set[str] = set()
        self._loaded = False
        # Heard and not yet told: message changes per mailbox (event bits, newest MODSEQ),
        # mailbox and subscription changes in order, and whether events may have been missed.
        self._changed: dict[int, tuple[int, int]] = {}
        self._named: list[Change] = []
        self._resync = False
        self._worker: asyncio.Task[None] | None = None
        self._subscription = store.bus.subscribe_inbox(inbox_id, self._heard)

    def add(self, notifier: Notifier, s: Session) -> None:
        self.sessions[notifier] = s
        notifier._watch = self

    def remove(self, notifier: Notifier) -> None:
        self.sessions.pop(notifier, None)
        if not self.sessions:
            self._subscription.close()
            if self._watches.get(self.inbox_id) is self:
                del self._watches[self.inbox_id]

    async def load(self) -> None:
        if self._loaded:
            return
        boxes = await self.store.list_mailboxes(self.inbox_id)
        subscribed = await self.store.subscriptions(self.inbox_id)
        if not self._loaded:
            self.boxes = {box.id: box for box in boxes}
            self.subscribed = subscribed
            self._loaded = True

    # ---------------------------------------------------------------- hearing

    def _heard(self, event: Change) -> None:
        kind = _KINDS.get(type(event))
        if kind is not None:
            bits, modseq = self._changed.get(event.mailbox_id, (0, 0))
            self._changed[event.mailbox_id] = (bits | kind, max(modseq, event.modseq))
        elif isinstance(event, _NAMED):
            self._named.append(event)
        elif isinstance(event, Resync):
            self._resync = True
        else:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        try:
            while self.sessions and (self._named or self._changed or self._resync):
                if self._resync and self._loaded:
                    self._resync = False
                    await self._reload()
                await self.load()
                self._resync = False
                named, self._named = self._named, []
                for event in named:
                    self._tell_named(event)
                changed, self._changed = self._changed, {}
                for mailbox_id, (bits, modseq) in changed.items():
                    await self._tell_status(mailbox_id, bits, modseq)
        except StoreError as exc:
            # Read everything again at the next change: nothing is missed, only told late.
            log.warning("NOTIFY update failed: %s", exc)
            self._resync = True
        except Exception:
            log.exception("NOTIFY update failed")
            self._resync = True

    async def _reload(self) -> None:
        """After events may have been missed: tell what differs from what was known."""
        boxes = {box.id: box for box in await self.store.list_mailboxes(self.inbox_id)}
        subscribed = await self.store.subscriptions(self.inbox_id)
        old_boxes, old_subscribed = self.boxes, self.subscribed
        self.boxes, self.subscribed = boxes, subscribed
        inbox = self.inbox_id
        for box in boxes.values():
            old = old_boxes.get(box.id)
            if old is None:
                self._named.append(MailboxCreated(inbox, box.id, box.highestmodseq, box.name))
                continue
            if old.name != box.name:
                self._named.append(
                    MailboxRenamed(inbox, box.id, box.highestmodseq, box.name, old.name)
                )
            if old.highestmodseq != box.highestmodseq:
                self._changed[box.id] = (MESSAGES, box.highestmodseq)
        for box_id, old in old_boxes.items():
            if box_id not in boxes:
                self._named.append(MailboxDeleted(inbox, box_id, 0, old.name))
        for name in sorted(subscribed ^ old_subscribed):
            self._named.append(SubscriptionChanged(inbox, 0, 0, name, name in subscribed))

    # ---------------------------------------------------------------- telling

    async def _tell_status(self, mailbox_id: int, bits: int, modseq: int) -> None:
        box = self.boxes.get(mailbox_id)
        if box is None:
            return
        targets = [
            (n, s)
            for n, s in self.sessions.items()
            if not _selects(s, mailbox_id) and n.wants(box.name, bits, self.subscribed)
        ]
        if not targets:
            if modseq > box.highestmodseq:
                self.boxes[mailbox_id] = dataclasses.replace(box, highestmodseq=modseq)
            return
        try:
            status = await self.store.status(mailbox_id)
        except MailboxNotFound:
            return
        box = self.boxes.get(mailbox_id)
        if box is None:
            return
        self.boxes[mailbox_id] = dataclasses.replace(box, highestmodseq=status.highestmodseq)
        lines: dict[bool, bytes] = {}
        for notifier, s in targets:
            if s.notifier is not notifier or _selects(s, mailbox_id):
                continue
            line = lines.get(s.utf8)
            if line is None:
                line = lines[s.utf8] = status_line(box.name, status, utf8=s.utf8)
            notifier.tell(s, line, key=mailbox_id)

    def _tell_named(self, event: Change) -> None:
        boxes, subscribed = self.boxes, self.subscribed
        names: tuple[str, ...]
        if isinstance(event, MailboxCreated):
            if event.mailbox_id not in boxes:
                boxes[event.mailbox_id] = Mailbox(
                    event.mailbox_id, self.inbox_id, event.name, None, 0, 0, event.modseq, ()
                )
            bits, names = NAME, (event.name,)
        elif isinstance(event, MailboxRenamed):
            box = boxes.get(event.mailbox_id)
            if box is not None:
                boxes[event.mailbox_id] = dataclasses.replace(box, name=event.name)
            if event.old_name in subscribed:  # the subscription moves with it (store)
                subscribed.discard(event.old_name)
                subscribed.add(event.name)
            bits, names = NAME, (event.name, event.old_name)
        elif isinstance(event, MailboxDeleted):
            boxes.pop(event.mailbox_id, None)
            bits, names = NAME, (event.name,)
        elif isinstance(event, SubscriptionChanged):
            if event.subscribed:
                subscribed.add(event.name)
            else:
                subscribed.discard(event.name)
            bits, names = SUBSCRIPTION, (event.name,)
            # An unsubscribed name was subscribed until now: the "subscribed" filter had it.
            subscribed = subscribed | {event.name}
        else:
            return
        head = self._list_head(names[0])
        lines: dict[bool, bytes] = {}  # by the session's mailbox name form
        for notifier, s in self.sessions.items():
            if s.notifier is not notifier or not any(
                notifier.wants(name, bits, subscribed) for name in names
            ):
                continue
            line = lines.get(s.utf8)
            if line is None:
                line = head + wire_mailbox(names[0], s.utf8)
                if isinstance(event, MailboxRenamed):
                    old = wire_mailbox(event.old_name, s.utf8)
                    line += b' ("OLDNAME" (' + old + b"))"
                lines[s.utf8] = line
            notifier.tell(s, line)

    def _list_head(self, name: str) -> bytes:
        """What a LIST (RETURN (SUBSCRIBED)) would answer for `name` now, up to the name."""
        box = next((b for b in self.boxes.values() if b.name == name), None)
        if box is None:
            attributes = [b"\\NonExistent"]
        else:
            prefix = name + HIERARCHY_DELIMITER
            children = any(b.name.startswith(prefix) for b in self.boxes.values())
            attributes = [b"\\HasChildren" if children else b"\\HasNoChildren"]
            if box.special_use:
                attributes.append(box.special_use.encode())
        if name in self.subscribed:
            attributes.append(b"\\Subscribed")
        delimiter = HIERARCHY_DELIMITER.encode()
        return b'LIST (%s) "%s" ' % (b" ".join(attributes), delimiter)


# The watches of each store (one per node; tests run several), by inbox id.
_WATCHES: weakref.WeakKeyDictionary[Store, dict[int, _Watch]] = weakref.WeakKeyDictionary()


def _watch(store: Store, inbox_id: int) -> _Watch:
    watches = _WATCHES.setdefault(store, {})
    watch = watches.get(inbox_id)
    if watch is None:
        watch = watches[inbox_id] = _Watch(store, inbox_id, watches)
    return watch


def _stop(s: Session) -> None:
    """NOTIFY NONE: what waited is told with this command's reply, then nothing more."""
    notifier = s.notifier
    if not isinstance(notifier, Notifier):
        return
    notifier.stop()
    for line in (notifier.pending or {}).values():
        s.untagged(line)
    s.notifier = None


@command("NOTIFY", LOGGED_IN)
async def notify(s: Session, request: Request) -> str:
    args = request.args
    assert isinstance(args, Notify)
    groups = args.groups
    if groups is None:
        _stop(s)
        return "NOTIFY completed"
    if any(e not in SUPPORTED for g in groups for e in g.events):
        raise Reply(
            "NO",
            "Supported events: " + ", ".join(SUPPORTED),
            "BADEVENT (" + " ".join(SUPPORTED) + ")",
        )
    if sum(len(g.mailboxes) for g in groups) > MAX_NAMES:
        raise Reply("NO", f"At most {MAX_NAMES} mailbox names", "NOTIFICATIONOVERFLOW")
    if any(i.name in ("RFC822", "RFC822.TEXT") for g in groups for i in g.fetch):
        raise bad("RFC822 and RFC822.TEXT set \\Seen; use BODY.PEEK[] or BODY.PEEK[TEXT]")
    notifier = Notifier(groups)
    if not notifier.watches:
        _stop(s)
        s.notifier = notifier
        return "NOTIFY completed"
    assert s.principal is not None
    # Listening starts before the mailboxes are read, so no change is missed between; and
    # before the last NOTIFY lets go, so that the watch it kept is kept, not read again.
    watch = _watch(s.store, s.principal.inbox.id)
    watch.add(notifier, s)
    _stop(s)
    s.notifier = notifier
    try:
        await watch.load()
        if args.status:
            await _initial_status(s, notifier, watch)
    except StoreError:
        notifier.stop()
        s.notifier = None
        raise
    return "NOTIFY completed"


async def _initial_status(s: Session, notifier: Notifier, watch: _Watch) -> None:
    """SET STATUS: a STATUS for each mailbox whose message events were asked for (RFC 5465 §3),
    the selected one excepted."""
    boxes = sorted(watch.boxes.values(), key=lambda b: (b.name != INBOX, b.name))
    for box in boxes:
        if _selects(s, box.id) or not notifier.wants(box.name, MESSAGES, watch.subscribed):
            continue
        try:
            status = await s.store.status(box.id)
        except MailboxNotFound:
            continue
        s.untagged(status_line(box.name, status, utf8=s.utf8))
