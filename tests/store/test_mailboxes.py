"""Mailboxes: create (with parents), get, list, rename (children move too), delete, subscribe,
UIDVALIDITY that never repeats for a re-created name, and names that are case-sensitive except
INBOX."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.names import canonical_mailbox_name
from mailgate.store.records import Inbox, Mailbox
from tests.store.conftest import address, count, message, run


def names(store: Store, inbox: Inbox) -> list[str]:
    return sorted(m.name for m in run(store.list_mailboxes(inbox.id)))


BUILTINS = ["Drafts", "INBOX", "Sent", "Spam", "Trash"]


def test_create_mailbox_and_its_missing_parents(store: Store, inbox: Inbox) -> None:
    box = run(store.create_mailbox(inbox.id, "Work/2026/Q4"))
    assert box.name == "Work/2026/Q4"
    assert box.special_use is None
    assert not box.builtin
    assert box.uidnext == 1
    assert box.highestmodseq >= 1
    assert names(store, inbox) == sorted([*BUILTINS, "Work", "Work/2026", "Work/2026/Q4"])
    assert run(store.get_mailbox(inbox.id, "Work/2026/Q4")) == box


def test_create_existing_mailbox_is_mailbox_exists(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "Work"))
    with pytest.raises(errors.MailboxExists):
        run(store.create_mailbox(inbox.id, "Work"))
    with pytest.raises(errors.MailboxExists):
        run(store.create_mailbox(inbox.id, "inbox"))
    with pytest.raises(errors.MailboxExists):
        run(store.create_mailbox(inbox.id, "Sent"))


def test_mailbox_names_other_than_inbox_are_case_sensitive(store: Store, inbox: Inbox) -> None:
    work = run(store.create_mailbox(inbox.id, "Work"))
    other = run(store.create_mailbox(inbox.id, "work"))
    assert work.id != other.id
    with pytest.raises(errors.MailboxNotFound, match="case-sensitive"):
        run(store.get_mailbox(inbox.id, "WORK"))
    with pytest.raises(errors.MailboxNotFound):
        run(store.get_mailbox(inbox.id, "sent"))
    assert run(store.get_mailbox(inbox.id, "inbox")).name == "INBOX"
    assert run(store.get_mailbox(inbox.id, "InBoX")).name == "INBOX"


def test_inbox_is_case_insensitive_also_as_a_parent(store: Store, inbox: Inbox) -> None:
    assert canonical_mailbox_name("inbox/Sub") == "INBOX/Sub"
    assert canonical_mailbox_name("inboxes") == "inboxes"
    box = run(store.create_mailbox(inbox.id, "inbox/Sub"))
    assert box.name == "INBOX/Sub"
    assert run(store.get_mailbox(inbox.id, "Inbox/Sub")).id == box.id
    with pytest.raises(errors.MailboxNotFound):
        run(store.get_mailbox(inbox.id, "INBOX/sub"))


@pytest.mark.parametrize(
    "bad",
    ["", "a//b", "/lead", "trail/", "tab\there", "nul\x00", "del\x7f", "star*", "pct%", "x" * 1001],
)
def test_invalid_mailbox_names_are_refused(store: Store, inbox: Inbox, bad: str) -> None:
    with pytest.raises(errors.InvalidName):
        run(store.create_mailbox(inbox.id, bad))
    assert names(store, inbox) == BUILTINS


@pytest.mark.parametrize("odd", ["nul\x00", "\udcff", "a\x00b/c"])
def test_a_name_that_cannot_exist_is_not_found(store: Store, inbox: Inbox, odd: str) -> None:
    with pytest.raises(errors.MailboxNotFound):
        run(store.get_mailbox(inbox.id, odd))
    with pytest.raises(errors.MailboxNotFound):
        run(store.delete_mailbox(inbox.id, odd))
    with pytest.raises(errors.MailboxNotFound):
        run(store.set_subscribed(inbox.id, odd, False))
    with pytest.raises(errors.InvalidName):
        run(store.create_mailbox(inbox.id, odd))


def test_unicode_mailbox_names(store: Store, inbox: Inbox) -> None:
    box = run(store.create_mailbox(inbox.id, "Entwürfe/日本"))
    assert run(store.get_mailbox(inbox.id, "Entwürfe/日本")) == box
    assert "Entwürfe" in names(store, inbox)


def test_create_mailbox_in_a_missing_inbox_is_inbox_not_found(store: Store) -> None:
    with pytest.raises(errors.InboxNotFound):
        run(store.create_mailbox(987654, "Work"))


def test_list_mailboxes_is_per_inbox(store: Store, inbox: Inbox) -> None:
    other = run(store.create_inbox(address()))
    run(store.create_mailbox(other.id, "Elsewhere"))
    assert names(store, inbox) == BUILTINS
    assert run(store.list_mailboxes(987654)) == []


# ------------------------------------------------------------------------ UIDVALIDITY


def test_uidvalidity_never_repeats_for_a_recreated_name(store: Store, inbox: Inbox) -> None:
    seen = set()
    for _ in range(5):
        box = run(store.create_mailbox(inbox.id, "Again"))
        assert box.uidvalidity not in seen
        seen.add(box.uidvalidity)
        run(store.delete_mailbox(inbox.id, "Again"))


def test_uidvalidity_never_repeats_after_a_rename_away(store: Store, inbox: Inbox) -> None:
    first = run(store.create_mailbox(inbox.id, "Name"))
    run(store.rename_mailbox(inbox.id, "Name", "Other"))
    second = run(store.create_mailbox(inbox.id, "Name"))
    assert second.uidvalidity != first.uidvalidity


def test_uidvalidity_never_repeats_when_the_whole_inbox_is_recreated(store: Store) -> None:
    """A client caches by (address, mailbox, UIDVALIDITY): deleting an inbox and creating it
    again, even within the same second, must not give its mailboxes an old UIDVALIDITY."""
    seen: dict[str, set[int]] = {}
    for _ in range(3):
        inbox = run(store.create_inbox("cycle@example.test"))
        for box in run(store.list_mailboxes(inbox.id)):
            assert box.uidvalidity not in seen.setdefault(box.name, set()), box.name
            seen[box.name].add(box.uidvalidity)
        run(store.delete_inbox(inbox.address))


def test_uidvalidity_fits_in_32_bits(store: Store, inbox: Inbox) -> None:
    for box in run(store.list_mailboxes(inbox.id)):
        assert 0 < box.uidvalidity < 2**32


def test_ids_are_never_reused(store: Store) -> None:
    """Sessions and event subscriptions hold mailbox ids: a deleted mailbox's id must never
    come back as another mailbox's, nor a deleted inbox's id as another inbox's."""
    inbox = run(store.create_inbox(address()))
    box = run(store.create_mailbox(inbox.id, "Temp"))
    run(store.delete_mailbox(inbox.id, "Temp"))
    again = run(store.create_mailbox(inbox.id, "Temp"))
    assert again.id != box.id
    run(store.delete_inbox(inbox.address))
    other = run(store.create_inbox(address()))
    assert other.id != inbox.id
    assert min(m.id for m in run(store.list_mailboxes(other.id))) > again.id


# ------------------------------------------------------------------------ rename


def test_rename_moves_children_and_keeps_uids(store: Store, inbox: Inbox) -> None:
    parent = run(store.create_mailbox(inbox.id, "Old"))
    child = run(store.create_mailbox(inbox.id, "Old/Child/Leaf"))
    run(store.create_mailbox(inbox.id, "Oldish"))  # shares a prefix, not a child
    run(store.append(child.id, message(1)))

    run(store.rename_mailbox(inbox.id, "Old", "New/Place"))

    assert names(store, inbox) == sorted(
        [*BUILTINS, "New", "New/Place", "New/Place/Child", "New/Place/Child/Leaf", "Oldish"]
    )
    moved = run(store.get_mailbox(inbox.id, "New/Place"))
    assert (moved.id, moved.uidvalidity) == (parent.id, parent.uidvalidity)
    leaf = run(store.get_mailbox(inbox.id, "New/Place/Child/Leaf"))
    assert (leaf.id, leaf.uidvalidity) == (child.id, child.uidvalidity)
    assert [r.uid for r in run(store.fetch(leaf.id, [(1, 10)]))] == [1]
    with pytest.raises(errors.MailboxNotFound):
        run(store.get_mailbox(inbox.id, "Old"))


def test_rename_children_is_case_sensitive(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "a"))
    run(store.create_mailbox(inbox.id, "A/child"))
    run(store.rename_mailbox(inbox.id, "a", "b"))
    assert "A/child" in names(store, inbox)
    assert "b/child" not in names(store, inbox)


def test_rename_refusals(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "Work/Sub"))
    run(store.create_mailbox(inbox.id, "Taken"))
    for builtin in BUILTINS:
        with pytest.raises(errors.CannotModify):
            run(store.rename_mailbox(inbox.id, builtin, "Elsewhere"))
    with pytest.raises(errors.CannotModify):
        run(store.rename_mailbox(inbox.id, "Work", "Work/Sub/Deeper"))
    with pytest.raises(errors.CannotModify):
        run(store.rename_mailbox(inbox.id, "Work", "Work"))
    with pytest.raises(errors.MailboxExists):
        run(store.rename_mailbox(inbox.id, "Work", "Taken"))
    with pytest.raises(errors.MailboxExists):
        run(store.rename_mailbox(inbox.id, "Work", "INBOX"))
    with pytest.raises(errors.MailboxNotFound):
        run(store.rename_mailbox(inbox.id, "Missing", "Else"))
    with pytest.raises(errors.InvalidName):
        run(store.rename_mailbox(inbox.id, "Work", "bad//name"))
    assert names(store, inbox) == sorted([*BUILTINS, "Taken", "Work", "Work/Sub"])


def test_rename_onto_an_existing_child_name_is_mailbox_exists(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "a/x"))
    run(store.create_mailbox(inbox.id, "b/x"))
    run(store.delete_mailbox(inbox.id, "b/x"))
    run(store.delete_mailbox(inbox.id, "b"))
    run(store.create_mailbox(inbox.id, "b/x"))
    run(store.delete_mailbox(inbox.id, "b/x"))
    # "b" exists now (left behind), so the rename is refused outright.
    with pytest.raises(errors.MailboxExists):
        run(store.rename_mailbox(inbox.id, "a", "b"))


# ------------------------------------------------------------------------ delete


def test_delete_refuses_builtins(store: Store, inbox: Inbox) -> None:
    for builtin in [*BUILTINS, "inbox"]:
        with pytest.raises(errors.CannotModify):
            run(store.delete_mailbox(inbox.id, builtin))
    assert names(store, inbox) == BUILTINS


def test_delete_refuses_a_parent_with_children(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "Parent/Child"))
    with pytest.raises(errors.CannotModify, match="child"):
        run(store.delete_mailbox(inbox.id, "Parent"))
    run(store.delete_mailbox(inbox.id, "Parent/Child"))
    run(store.delete_mailbox(inbox.id, "Parent"))
    assert names(store, inbox) == BUILTINS


def test_delete_child_check_is_case_sensitive(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "p"))
    run(store.create_mailbox(inbox.id, "P/child"))
    run(store.delete_mailbox(inbox.id, "p"))  # "P/child" is not a child of "p"
    assert "p" not in names(store, inbox)


def test_delete_child_check_treats_like_wildcards_literally(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "a_b"))
    run(store.create_mailbox(inbox.id, "axb/child"))
    run(store.delete_mailbox(inbox.id, "a_b"))
    assert "a_b" not in names(store, inbox)


def test_delete_mailbox_removes_its_messages(store: Store, inbox: Inbox) -> None:
    box = run(store.create_mailbox(inbox.id, "Doomed"))
    run(store.append(box.id, message(1)))
    run(store.append(box.id, message(2)))
    assert count(store, "messages") == 2
    run(store.delete_mailbox(inbox.id, "Doomed"))
    assert count(store, "messages") == 0
    assert count(store, "blobs") == 0
    with pytest.raises(errors.MailboxNotFound):
        run(store.delete_mailbox(inbox.id, "Doomed"))
    # Operations on the deleted mailbox's id say so.
    with pytest.raises(errors.MailboxNotFound):
        run(store.status(box.id))
    with pytest.raises(errors.MailboxNotFound):
        run(store.append(box.id, message(3)))
    changes = run(store.changes_since(box.id, 0))
    assert not changes.exists


# ------------------------------------------------------------------------ subscribe


def test_subscribe_and_unsubscribe(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "Lists"))
    assert "Lists" not in run(store.subscriptions(inbox.id))  # CREATE does not subscribe
    run(store.set_subscribed(inbox.id, "Lists", True))
    run(store.set_subscribed(inbox.id, "Lists", True))  # idempotent
    assert "Lists" in run(store.subscriptions(inbox.id))
    run(store.set_subscribed(inbox.id, "Lists", False))
    assert "Lists" not in run(store.subscriptions(inbox.id))
    with pytest.raises(errors.MailboxNotFound):
        run(store.set_subscribed(inbox.id, "lists", True))


def test_a_subscription_outlives_its_mailbox_and_follows_a_rename(
    store: Store, inbox: Inbox
) -> None:
    run(store.create_mailbox(inbox.id, "Old/Child"))
    run(store.set_subscribed(inbox.id, "Old", True))
    run(store.set_subscribed(inbox.id, "Old/Child", True))
    run(store.rename_mailbox(inbox.id, "Old", "New"))
    assert {"New", "New/Child"} <= run(store.subscriptions(inbox.id))
    assert not {"Old", "Old/Child"} & run(store.subscriptions(inbox.id))
    run(store.delete_mailbox(inbox.id, "New/Child"))
    assert "New/Child" in run(store.subscriptions(inbox.id))  # RFC 3501 §6.3.6
    run(store.set_subscribed(inbox.id, "New/Child", False))  # and can be dropped then
    assert "New/Child" not in run(store.subscriptions(inbox.id))
    with pytest.raises(errors.MailboxNotFound):
        run(store.set_subscribed(inbox.id, "New/Child", False))


# ------------------------------------------------------------------------ status / snapshot


def test_status_and_snapshot_of_an_empty_mailbox(store: Store, mailbox: Mailbox) -> None:
    status = run(store.status(mailbox.id))
    assert (status.messages, status.unseen, status.deleted, status.size) == (0, 0, 0, 0)
    assert status.uidnext == 1
    assert status.uidvalidity == mailbox.uidvalidity
    snap = run(store.snapshot(mailbox.id))
    assert list(snap.uids) == []
    assert snap.unseen == 0
    assert snap.first_unseen is None


def test_rename_that_would_make_a_child_name_too_long(store: Store, inbox: Inbox) -> None:
    run(store.create_mailbox(inbox.id, "a/" + "c" * 990))
    with pytest.raises(errors.InvalidName):
        run(store.rename_mailbox(inbox.id, "a", "b" * 20))
    assert "a/" + "c" * 990 in names(store, inbox)


def test_delete_pod_while_another_node_adds_an_inbox_to_it(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Either the inbox lands (and the pod is refused as not empty) or the pod goes first and
    the inbox gets a fresh pod of the same name: never an inbox that silently vanishes."""
    node_b = open_store()
    for i in range(5):
        run(store.create_pod(f"p{i}"))

        async def race(pod: str = f"p{i}") -> list[object]:
            return await asyncio.gather(
                store.delete_pod(pod),
                node_b.create_inbox(f"x{pod}@example.test", pod),
                return_exceptions=True,
            )

        deleted, created = run(race())
        assert not isinstance(created, BaseException), repr(created)
        assert deleted is None or isinstance(deleted, errors.CannotModify), repr(deleted)
        assert run(store.get_inbox(f"xp{i}@example.test")).pod == f"p{i}"
        assert len(run(store.list_mailboxes(created.id))) == 5  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ \Recent


def test_recent_is_claimed_once_across_nodes(
    store: Store, open_store: Callable[..., Store], inbox: Inbox, mailbox: Mailbox
) -> None:
    """claim_recent hands each unclaimed UID to exactly one caller, whichever node it is on,
    however many ask at once; STATUS RECENT counts what is left."""
    other = open_store()  # a second node on the same database
    for i in range(6):
        run(store.append(mailbox.id, message(i)))
    assert run(store.status(mailbox.id)).recent == 6

    async def race() -> list[tuple[int, int] | None]:
        claims = [s.claim_recent(mailbox.id, 4) for s in (store, other, store, other)]
        return list(await asyncio.gather(*claims))

    got = [claim for claim in run(race()) if claim is not None]
    assert got == [(1, 4)]
    assert run(store.status(mailbox.id)).recent == 2
    assert run(other.claim_recent(mailbox.id, 6)) == (5, 6)
    assert run(store.claim_recent(mailbox.id, 6)) is None
    assert run(store.status(mailbox.id)).recent == 0
    assert run(store.get_mailbox(inbox.id, "INBOX")).recent_uid == 7
