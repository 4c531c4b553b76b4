"""changes_since: what a session (IDLE, or its next command) catches up with. New entries, flag
changes and expunges are each reported once, by the first call after they happen."""

from __future__ import annotations

import asyncio
import random

from mailgate.store.api import Store
from mailgate.store.events import MessagesAdded
from mailgate.store.records import DELETED, Changes, Mailbox
from tests.store.conftest import message, run


def test_nothing_new(store: Store, mailbox: Mailbox) -> None:
    run(store.append(mailbox.id, message(1)))
    box = run(store.get_mailbox(mailbox.inbox_id, "INBOX"))
    changes = run(store.changes_since(mailbox.id, box.highestmodseq))
    assert changes.highestmodseq == box.highestmodseq
    assert changes.uidnext == 2
    assert (changes.changed, changes.expunged) == ([], [])
    assert changes.exists


def test_new_entries_then_flags_then_expunge_each_once(store: Store, mailbox: Mailbox) -> None:
    seen = run(store.status(mailbox.id)).highestmodseq

    run(store.append(mailbox.id, message(1)))
    run(store.append(mailbox.id, message(2), flags=["\\Seen"]))
    changes = run(store.changes_since(mailbox.id, seen))
    assert [(e.uid, e.flags) for e in changes.changed] == [(1, ()), (2, ("\\Seen",))]
    assert changes.expunged == []
    assert changes.uidnext == 3
    seen = changes.highestmodseq
    assert run(store.changes_since(mailbox.id, seen)).changed == []

    run(store.store_flags(mailbox.id, [(1, 1)], "+", ["\\Flagged", DELETED]))
    changes = run(store.changes_since(mailbox.id, seen))
    assert [(e.uid, e.flags) for e in changes.changed] == [(1, ("\\Flagged", DELETED))]
    assert changes.changed[0].modseq == changes.highestmodseq
    seen = changes.highestmodseq
    assert run(store.changes_since(mailbox.id, seen)).changed == []

    run(store.expunge(mailbox.id))
    changes = run(store.changes_since(mailbox.id, seen))
    assert changes.expunged == [1]
    assert changes.changed == []
    seen = changes.highestmodseq
    again = run(store.changes_since(mailbox.id, seen))
    assert (again.changed, again.expunged) == ([], [])


def test_added_and_changed_since_is_one_entry_with_its_latest_flags(
    store: Store, mailbox: Mailbox
) -> None:
    seen = run(store.status(mailbox.id)).highestmodseq
    run(store.append(mailbox.id, message(1)))
    run(store.store_flags(mailbox.id, [(1, 1)], "+", ["$a"]))
    run(store.store_flags(mailbox.id, [(1, 1)], "+", ["$b"]))
    changes = run(store.changes_since(mailbox.id, seen))
    assert [(e.uid, e.flags) for e in changes.changed] == [(1, ("$a", "$b"))]


def test_added_and_expunged_since(store: Store, mailbox: Mailbox) -> None:
    """A message that came and went while the session looked away: reported as expunged only,
    which a session that never knew the UID simply ignores."""
    seen = run(store.status(mailbox.id)).highestmodseq
    run(store.append(mailbox.id, message(1), flags=[DELETED]))
    run(store.expunge(mailbox.id))
    changes = run(store.changes_since(mailbox.id, seen))
    assert changes.changed == []
    assert changes.expunged == [1]
    assert changes.uidnext == 2


def test_from_zero_reports_everything_there(store: Store, mailbox: Mailbox) -> None:
    for i in range(3):
        run(store.append(mailbox.id, message(i)))
    changes = run(store.changes_since(mailbox.id, 0))
    assert [e.uid for e in changes.changed] == [1, 2, 3]


def test_deleted_mailbox(store: Store, mailbox: Mailbox) -> None:
    box = run(store.create_mailbox(mailbox.inbox_id, "Going"))
    run(store.delete_mailbox(mailbox.inbox_id, "Going"))
    changes = run(store.changes_since(box.id, 1))
    assert not changes.exists


def test_deleted_inbox(store: Store, mailbox: Mailbox) -> None:
    inbox = run(store.list_inboxes())[0]
    run(store.delete_inbox(inbox.address))
    assert not run(store.changes_since(mailbox.id, 1)).exists


def test_a_session_following_changes_stays_exact(store: Store, mailbox: Mailbox) -> None:
    """A model session: SELECT, then after each random change apply changes_since from its
    last HIGHESTMODSEQ. Every report must be exactly what changed since, and the session's view
    must always equal the mailbox."""
    rng = random.Random(7)
    other = run(store.create_mailbox(mailbox.inbox_id, "Other"))
    for i in range(5):
        run(store.append(other.id, message(1000 + i)))
    snap = run(store.snapshot(mailbox.id))
    view: dict[int, tuple[str, ...]] = {}
    seen, uidnext = snap.mailbox.highestmodseq, snap.mailbox.uidnext
    before: dict[int, tuple[int, tuple[str, ...]]] = {}
    n = 0

    def truth() -> dict[int, tuple[int, tuple[str, ...]]]:
        return {r.uid: (r.modseq, r.flags) for r in run(store.fetch(mailbox.id, [(1, 2**32 - 1)]))}

    for _ in range(80):
        uids = sorted(view)
        op = rng.choice(["append", "append", "flag", "flag", "delete", "expunge", "copy", "move"])
        if op == "append":
            n += 1
            run(store.append(mailbox.id, message(n), flags=rng.choice([[], ["\\Seen"], ["$k"]])))
        elif op == "flag" and uids:
            lo = rng.choice(uids)
            flag = rng.choice(["\\Seen", "\\Flagged", "$k", "$j"])
            run(store.store_flags(mailbox.id, [(lo, lo + 2)], rng.choice("+-"), [flag]))
        elif op == "delete" and uids:
            run(store.store_flags(mailbox.id, [(rng.choice(uids), 2**32 - 1)], "+", [DELETED]))
        elif op == "expunge":
            run(store.expunge(mailbox.id))
        elif op == "copy":
            run(store.copy(other.id, [(1, 2)], mailbox.id))
        elif op == "move" and uids:
            run(store.move(mailbox.id, [(rng.choice(uids), rng.choice(uids))], other.id))

        changes = run(store.changes_since(mailbox.id, seen))
        now = truth()
        expected_changed = sorted(uid for uid, (modseq, _) in now.items() if modseq > seen)
        assert [e.uid for e in changes.changed] == expected_changed
        # Expunges: exactly the UIDs the session knew that are gone, plus (harmless) UIDs it
        # never saw because they came and went since its last look.
        assert set(changes.expunged) & set(view) == set(view) - set(now)
        assert all(uid >= uidnext for uid in set(changes.expunged) - set(view))
        assert not set(changes.expunged) & set(now)
        for uid in changes.expunged:
            view.pop(uid, None)
        for entry in changes.changed:
            view[entry.uid] = entry.flags
        assert view == {uid: flags for uid, (_, flags) in now.items()}
        # HIGHESTMODSEQ rose exactly when something changed.
        assert (changes.highestmodseq > seen) == (now != before)
        seen, uidnext, before = changes.highestmodseq, changes.uidnext, now
    assert view


def test_callers_at_once_share_one_read(store: Store, mailbox: Mailbox) -> None:
    # Thousands of sessions idling on one mailbox all ask at the same moment when it changes.
    run(store.append(mailbox.id, message(1)))

    async def together() -> list[Changes]:
        return list(await asyncio.gather(*(store.changes_since(mailbox.id, 0) for _ in range(50))))

    answers = run(together())
    assert all(a is answers[0] for a in answers)
    assert [e.uid for e in answers[0].changed] == [1]


def test_a_caller_after_an_event_is_not_given_a_read_begun_before_it(
    store: Store, mailbox: Mailbox
) -> None:
    # The event may be of a commit the read in flight began too early to see: a session that
    # heard of it must get a read of its own.
    run(store.append(mailbox.id, message(1)))

    async def race() -> tuple[Changes, Changes]:
        early = asyncio.ensure_future(store.changes_since(mailbox.id, 0))
        await asyncio.sleep(0)  # its read is under way
        store.bus.publish(MessagesAdded(mailbox.inbox_id, mailbox.id, 0))
        late = asyncio.ensure_future(store.changes_since(mailbox.id, 0))
        return await early, await late

    early, late = run(race())
    assert early is not late
    assert [e.uid for e in late.changed] == [1]


def test_a_caller_that_goes_away_leaves_the_read_to_the_others(
    store: Store, mailbox: Mailbox
) -> None:
    run(store.append(mailbox.id, message(1)))

    async def one_cancelled() -> list[int]:
        gone = asyncio.ensure_future(store.changes_since(mailbox.id, 0))
        stays = asyncio.ensure_future(store.changes_since(mailbox.id, 0))
        await asyncio.sleep(0)
        gone.cancel()
        return [e.uid for e in (await stays).changed]

    assert run(one_cancelled()) == [1]
