"""The store's metrics at their edges: which bucket an event falls in, which window a recipient
counts in, and from when a stored thing counts in a usage series. The store's clocks are set,
so each row has the time the test means."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest

from mailgate.store.api import Store
from mailgate.store.metrics import Grid, Scope
from mailgate.store.outbox import Pending
from mailgate.store.records import Inbox
from tests.store.conftest import address, message, run

T = 1_800_000_000  # a whole number of every period used here
P = 60


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set the time the store writes rows with (events, messages, inboxes)."""

    def at(when: int) -> None:
        for module in ("outbox", "ingest", "tenancy"):
            monkeypatch.setattr(f"mailgate.store.{module}.now", lambda: when)

    return at


def sent(store: Store, inbox: Inbox, clock: Callable[[int], None], when: int, n: int) -> None:
    clock(when)
    recipients = [f"r{i}@example.org" for i in range(n)]
    run(store.record_events([Pending("message.sent", inbox.id, detail={"recipients": recipients})]))


def test_events_fall_in_the_bucket_of_their_second(
    store: Store, clock: Callable[[int], None]
) -> None:
    clock(T - 1000)
    mine = run(store.create_inbox(address(), "metrics"))
    neighbour = run(store.create_inbox(address(), "metrics"))
    elsewhere = run(store.create_inbox(address(), "other"))
    for when in (T, T + P - 1, T + P, T + 2 * P):
        sent(store, mine, clock, when, 1)
    sent(store, neighbour, clock, T, 1)
    sent(store, elsewhere, clock, T, 1)
    sent(store, mine, clock, T - 1, 1)  # before the range

    counted = run(store.event_counts(Scope(inbox=mine), ["message.sent"], T, T + 2 * P, P))
    # [T, T+P) holds two; the range's last second starts a bucket of its own (the API merges it).
    assert counted == {"message.sent": {0: 2, 1: 1, 2: 1}}
    pod = run(store.get_pod("metrics"))
    by_pod = run(store.event_counts(Scope(pod=pod), ["message.sent"], T, T + 2 * P, P))
    assert by_pod["message.sent"][0] == 3
    everyone = run(store.event_counts(Scope(), ["message.sent", "message.bounced"], T, T, P))
    assert everyone == {"message.sent": {0: 3}, "message.bounced": {}}

    times = run(store.event_times(Scope(inbox=mine), ["message.sent"], T, T + 2 * P, limit=3))
    assert times == {"message.sent": [T, T + P - 1, T + P]}
    newest = run(
        store.event_times(
            Scope(inbox=mine), ["message.sent"], T, T + 2 * P, limit=2, descending=True
        )
    )
    assert newest == {"message.sent": [T + 2 * P, T + P]}


def test_recipients_count_in_the_window_ending_at_or_after_them(
    store: Store, clock: Callable[[int], None]
) -> None:
    clock(T - 1000)
    inbox = run(store.create_inbox(address()))
    end = T + 10 * P
    # (when, recipients): bucket j holds (end - (j+1)P, end - jP].
    for when, n in ((end, 2), (end - P + 1, 1), (end - P, 3), (end - 3 * P, 5)):
        sent(store, inbox, clock, when, n)
    clock(end - P)
    bounce = {"type": "Permanent", "recipients": [{"address": "r0@example.org", "status": "5.1.1"}]}
    run(store.record_events([Pending("message.bounced", inbox.id, detail=bounce)]))

    found = run(
        store.recipient_counts(
            Scope(inbox=inbox), ["message.sent", "message.bounced"], end, P, buckets=3
        )
    )
    assert found == {"message.sent": [3, 3, 0], "message.bounced": [0, 1, 0]}


def test_usage_counts_what_exists_from_when_it_came(
    store: Store, clock: Callable[[int], None]
) -> None:
    clock(T)
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    drafts = run(store.get_mailbox(inbox.id, "Drafts"))
    first = message(1)
    run(
        store.append(
            box.id, first, internaldate=datetime.datetime.fromtimestamp(T + P, datetime.UTC)
        )
    )
    # Appended at T+2P with a date long before: it counts from when it was stored.
    clock(T + 2 * P)
    old = datetime.datetime.fromtimestamp(T - 86_400, datetime.UTC)
    second = message(2)
    run(store.append(box.id, second, internaldate=old))
    draft = message(3)
    run(store.append(drafts.id, draft, flags=["\\Draft"]))

    grid = Grid(end=T + 3 * P, period=P, count=4)  # points T, T+P, T+2P, T+3P
    usage = run(
        store.usage(
            Scope(inbox=inbox),
            ["message_count", "thread_count", "storage_bytes", "inbox_count"],
            grid,
        )
    )
    assert usage["message_count"] == [0, 1, 2, 2]
    assert usage["thread_count"] == [0, 1, 2, 2]
    # The draft is stored, though no message.
    assert usage["storage_bytes"] == [
        0,
        len(first),
        len(first) + len(second) + len(draft),
        len(first) + len(second) + len(draft),
    ]
    assert usage["inbox_count"] == [1, 1, 1, 1]
    # A grid ending before the mail came shows none of it.
    earlier = run(store.usage(Scope(), ["message_count"], Grid(end=T, period=P, count=2)))
    assert earlier["message_count"] == [0, 0]
