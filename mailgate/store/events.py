"""Change notification: "mailbox X changed" after each commit, fanned out in-process.

An event carries only the mailbox and its new HIGHESTMODSEQ. A session that receives one asks
the store for `changes_since` its own MODSEQ, so the same code catches up after a missed event,
a reconnect, or a change made by another node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailboxChanged:
    mailbox_id: int
    modseq: int


Listener = Callable[[MailboxChanged], None]


class Subscription:
    __slots__ = ("_bus", "_listener", "mailbox_id")

    def __init__(self, bus: EventBus, mailbox_id: int, listener: Listener) -> None:
        self._bus = bus
        self.mailbox_id = mailbox_id
        self._listener = listener

    def close(self) -> None:
        self._bus._remove(self.mailbox_id, self._listener)


class EventBus:
    """Listeners per mailbox id. Listeners must not block: they schedule work and return."""

    def __init__(self) -> None:
        self._listeners: dict[int, list[Listener]] = {}

    def subscribe(self, mailbox_id: int, listener: Listener) -> Subscription:
        self._listeners.setdefault(mailbox_id, []).append(listener)
        return Subscription(self, mailbox_id, listener)

    def _remove(self, mailbox_id: int, listener: Listener) -> None:
        listeners = self._listeners.get(mailbox_id)
        if listeners is None:
            return
        try:
            listeners.remove(listener)
        except ValueError:
            return
        if not listeners:
            del self._listeners[mailbox_id]

    def publish(self, event: MailboxChanged) -> None:
        for listener in tuple(self._listeners.get(event.mailbox_id, ())):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed for %s", event)

    def resync(self) -> None:
        """Events may have been missed (the database listener was cut off): every listener is
        told its mailbox changed (MODSEQ 0: "check"), and catches up from the store."""
        for mailbox_id, listeners in tuple(self._listeners.items()):
            event = MailboxChanged(mailbox_id, 0)
            for listener in tuple(listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("event listener failed during resync")

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
