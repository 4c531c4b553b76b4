"""MCP subscriptions (mailgate/http/mcp/watch.py): a change waiting to be told is told once,
however many come, and an inbox is followed on the event bus only while someone watches it."""

from __future__ import annotations

import asyncio

from mailgate.http.mcp.watch import InboxWatch, Watcher
from mailgate.store.events import EventBus, FlagsChanged, MailboxCreated, MessagesAdded


def test_a_reader_that_never_reads_costs_one_entry_per_inbox() -> None:
    async def run() -> tuple[int, list[str], list[str]]:
        bus = EventBus()
        watch = InboxWatch(bus)
        watcher = Watcher("key")
        watch.watch(watcher, 1, "mailgate://inboxes/a@example.test")
        watch.watch(watcher, 2, "mailgate://inboxes/b@example.test")
        for modseq in range(10_000):
            bus.publish(MessagesAdded(1, 10, modseq))
            bus.publish(FlagsChanged(2, 20, modseq))
        waiting = len(watcher.changed)
        first = await watcher.changes()
        # A new mailbox changes no thread: nothing to tell.
        bus.publish(MailboxCreated(1, 11, 0, "Archive"))
        bus.publish(MessagesAdded(2, 20, 1))
        second = await watcher.changes()
        return waiting, first, second

    waiting, first, second = asyncio.run(run())
    assert waiting == 2
    assert first == ["mailgate://inboxes/a@example.test", "mailgate://inboxes/b@example.test"]
    assert second == ["mailgate://inboxes/b@example.test"]


def test_an_inbox_is_followed_only_while_watched() -> None:
    bus = EventBus()
    watch = InboxWatch(bus)
    one, two = Watcher("key"), Watcher("key")
    watch.watch(one, 1, "mailgate://inboxes/a@example.test")
    watch.watch(two, 1, "mailgate://inboxes/a@example.test")
    assert (bus.listener_count(), watch.inboxes, watch.count("key")) == (1, 1, 2)
    watch.drop(one)
    assert bus.listener_count() == 1
    watch.drop(two)
    assert (bus.listener_count(), watch.inboxes, watch.count("key")) == (0, 0, 0)


def test_closing_ends_a_waiting_watcher() -> None:
    async def run() -> list[str]:
        watch = InboxWatch(EventBus())
        watcher = Watcher("key")
        watch.watch(watcher, 1, "mailgate://inboxes/a@example.test")
        waiting = asyncio.create_task(watcher.changes())
        await asyncio.sleep(0)
        watch.close()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(run()) == []
