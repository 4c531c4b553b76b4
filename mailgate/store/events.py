"""Typed, inbox-scoped changes, published after each commit and fanned out in-process.

Every event names the inbox, the mailbox and the mailbox's HIGHESTMODSEQ after the change (0
where there is none: a deleted mailbox, or a `Resync`). Events are hints, not the state: a
subscriber that needs the details asks the store (`changes_since` its own MODSEQ), so the same
code catches up after a missed event, a reconnect, or a change made by another node.

Subscribers listen to one mailbox (an IMAP session's selected mailbox: the path every new
message takes to IDLE, so it is one dict lookup) or to a whole inbox (every mailbox in it, the
mailbox list and the subscriptions included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    inbox_id: int
    mailbox_id: int
    modseq: int


@dataclass(frozen=True, slots=True)
class MessagesAdded(Change):
    """New entries: delivered, appended, copied or moved in."""


@dataclass(frozen=True, slots=True)
class FlagsChanged(Change):
    pass


@dataclass(frozen=True, slots=True)
class MessagesExpunged(Change):
    """Entries removed: expunged, or moved out."""


@dataclass(frozen=True, slots=True)
class MailboxCreated(Change):
    name: str


@dataclass(frozen=True, slots=True)
class MailboxRenamed(Change):
    name: str
    old_name: str


@dataclass(frozen=True, slots=True)
class MailboxDeleted(Change):
    name: str


@dataclass(frozen=True, slots=True)
class SubscriptionChanged(Change):
    """A name was subscribed or unsubscribed (mailbox_id and modseq 0: a subscription is the
    inbox's, and may name no mailbox)."""

    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class EventsRecorded(Change):
    """The event outbox grew up to `modseq`, its last event's seq (inbox and mailbox 0: it
    goes to listeners of the outbox, `subscribe_outbox`)."""


@dataclass(frozen=True, slots=True)
class Resync(Change):
    """Events may have been missed (the link to other nodes was cut): check the store."""


EVENT_TYPES: dict[str, type[Change]] = {
    cls.__name__: cls
    for cls in (
        MessagesAdded,
        FlagsChanged,
        MessagesExpunged,
        MailboxCreated,
        MailboxRenamed,
        MailboxDeleted,
        SubscriptionChanged,
        EventsRecorded,
        Resync,
    )
}

Listener = Callable[[Change], None]


class Subscription:
    __slots__ = ("_bus", "_key", "_listener")

    def __init__(self, bus: EventBus, key: tuple[str, int], listener: Listener) -> None:
        self._bus = bus
        self._key = key
        self._listener = listener

    def close(self) -> None:
        self._bus._remove(self._key, self._listener)


class EventBus:
    """Listeners per mailbox and per inbox. Listeners must not block: they schedule work and
    return."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], list[Listener]] = {}
        # Events published so far: a read begun at one count sees every commit whose event
        # came before it (events follow their commit), which lets readers share it.
        self.published = 0

    def subscribe(self, mailbox_id: int, listener: Listener) -> Subscription:
        """Changes to one mailbox."""
        return self._add(("mailbox", mailbox_id), listener)

    def subscribe_inbox(self, inbox_id: int, listener: Listener) -> Subscription:
        """Changes to every mailbox of one inbox, creations and deletions included."""
        return self._add(("inbox", inbox_id), listener)

    def subscribe_outbox(self, listener: Listener) -> Subscription:
        """New events in the outbox (`EventsRecorded`), and `Resync` when some may have been
        missed."""
        return self._add(("outbox", 0), listener)

    def _add(self, key: tuple[str, int], listener: Listener) -> Subscription:
        self._listeners.setdefault(key, []).append(listener)
        return Subscription(self, key, listener)

    def _remove(self, key: tuple[str, int], listener: Listener) -> None:
        listeners = self._listeners.get(key)
        if listeners is None:
            return
        try:
            listeners.remove(listener)
        except ValueError:
            return
        if not listeners:
            del self._listeners[key]

    def publish(self, event: Change) -> None:
        self.published += 1
        if isinstance(event, EventsRecorded):
            for listener in tuple(self._listeners.get(("outbox", 0), ())):
                _call(listener, event)
            return
        for key in (("mailbox", event.mailbox_id), ("inbox", event.inbox_id)):
            for listener in tuple(self._listeners.get(key, ())):
                _call(listener, event)

    def resync(self) -> None:
        """Events may have been missed (the database listener was cut off): every listener is
        sent a `Resync`, and catches up from the store."""
        self.published += 1
        for (scope, key_id), listeners in tuple(self._listeners.items()):
            event = Resync(key_id, 0, 0) if scope != "mailbox" else Resync(0, key_id, 0)
            for listener in tuple(listeners):
                _call(listener, event)

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())


def _call(listener: Listener, event: Change) -> None:
    try:
        listener(event)
    except Exception:
        log.exception("event listener failed for %s", event)
