"""Replacing a message entry with a new version (a draft saved again): the new one filed and the
old one expunged in one transaction, so there is always exactly one version."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.events import Change, MessagesAdded, MessagesExpunged
from mailgate.store.records import Inbox, Mailbox
from tests.harness import DOMAIN
from tests.store.conftest import count, run

ALL = [(1, 2**32 - 1)]


def version(message_id: str, n: int) -> bytes:
    """Version `n` of one draft: the same Message-ID, other bytes."""
    return (
        f"From: me@{DOMAIN}\r\nTo: you@{DOMAIN}\r\nSubject: Plan v{n}\r\n"
        f"Message-ID: {message_id}\r\n\r\nVersion {n}.\r\n"
    ).encode()


@pytest.fixture
def drafts(store: Store, inbox: Inbox) -> Mailbox:
    return run(store.get_mailbox(inbox.id, "Drafts"))


def test_replace_files_the_new_version_and_expunges_the_old_at_one_modseq(
    store: Store, inbox: Inbox, drafts: Mailbox
) -> None:
    draft_id = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    old = run(store.append(drafts.id, version(draft_id, 1), flags=["\\Draft", "\\Seen"]))
    (before,) = run(store.mail_by_ids([inbox.id], [draft_id]))
    modseq = run(store.get_mailbox(inbox.id, "Drafts")).highestmodseq
    events: list[Change] = []
    subscription = store.bus.subscribe(drafts.id, events.append)
    try:
        placed = run(
            store.replace(
                drafts.id, [old.uid], version(draft_id, 2), flags=["\\Draft", "\\Seen", "later"]
            )
        )
    finally:
        subscription.close()

    assert placed.uid == old.uid + 1
    (row,) = run(store.fetch(drafts.id, ALL, ["data"]))
    assert (row.uid, row.flags, row.data) == (
        placed.uid,
        ("\\Seen", "\\Draft", "later"),
        version(draft_id, 2),
    )
    changes = run(store.changes_since(drafts.id, modseq))
    assert changes.expunged == [old.uid]
    assert [(c.uid, c.modseq) for c in changes.changed] == [(placed.uid, modseq + 1)]
    assert changes.highestmodseq == modseq + 1
    assert changes.keywords == ("later",)
    assert [type(e) for e in events] == [MessagesAdded, MessagesExpunged]
    assert {e.modseq for e in events} == {modseq + 1}
    # The old version's bytes are gone; the new one stays in the draft's conversation.
    assert count(store, "messages") == 1
    (after,) = run(store.mail_by_ids([inbox.id], [draft_id]))
    assert after.thread == before.thread
    assert after.blob_id != before.blob_id


def test_replacing_an_entry_that_is_gone_files_nothing(
    store: Store, inbox: Inbox, drafts: Mailbox
) -> None:
    draft_id = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    old = run(store.append(drafts.id, version(draft_id, 1)))
    status = run(store.status(drafts.id))
    with pytest.raises(errors.NotFound):
        run(store.replace(drafts.id, [old.uid, old.uid + 1], version(draft_id, 2)))
    assert run(store.status(drafts.id)) == status
    assert [r.data for r in run(store.fetch(drafts.id, ALL, ["data"]))] == [version(draft_id, 1)]
    assert count(store, "messages") == 1


def test_replace_stopped_at_any_point_leaves_exactly_one_version(
    store: Store, inbox: Inbox, drafts: Mailbox, open_store: Callable[..., Store]
) -> None:
    """A replace cut short anywhere (a client gone, a server stopping) has either happened
    entirely or not at all: every reader, and the store reopened, finds one version."""
    draft_id = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    run(store.append(drafts.id, version(draft_id, 0)))

    async def go() -> None:
        for n in range(1, 31):
            snapshot = await store.snapshot(drafts.id)
            assert len(snapshot.uids) == 1
            task = asyncio.ensure_future(
                store.replace(drafts.id, list(snapshot.uids), version(draft_id, n))
            )
            await asyncio.sleep(random.uniform(0, 0.01))
            task.cancel()
            # NotFound: a replace whose caller gave up committed after this one looked.
            with contextlib.suppress(asyncio.CancelledError, errors.NotFound):
                await task

    run(go())
    run(store.close())  # waits for the writes whose callers gave up
    reopened = open_store()
    (row,) = run(reopened.fetch(drafts.id, ALL, ["data"]))
    assert row.data in {version(draft_id, n) for n in range(31)}
    assert count(reopened, "messages") == 1
