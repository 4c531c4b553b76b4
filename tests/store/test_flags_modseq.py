"""store_flags (+, -, replace, UNCHANGEDSINCE) and MODSEQ: HIGHESTMODSEQ rises with every change,
one MODSEQ per transaction, none for a change that changes nothing."""

from __future__ import annotations

import pytest

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import Mailbox
from mailgate.store.rows import MAX_KEYWORDS
from tests.store.conftest import message, run


def highest(store: Store, mailbox: Mailbox) -> int:
    return run(store.status(mailbox.id)).highestmodseq


def flags_of(store: Store, mailbox: Mailbox) -> dict[int, tuple[str, ...]]:
    return {r.uid: r.flags for r in run(store.fetch(mailbox.id, [(1, 2**32 - 1)]))}


@pytest.fixture
def three(store: Store, mailbox: Mailbox) -> Mailbox:
    """The mailbox with UIDs 1, 2, 3; 2 starts \\Seen."""
    run(store.append(mailbox.id, message(1)))
    run(store.append(mailbox.id, message(2), flags=["\\Seen"]))
    run(store.append(mailbox.id, message(3)))
    return mailbox


def test_add_remove_replace(store: Store, three: Mailbox) -> None:
    run(store.store_flags(three.id, [(1, 3)], "+", ["\\Flagged", "$Work"]))
    assert flags_of(store, three) == {
        1: ("\\Flagged", "$Work"),
        2: ("\\Seen", "\\Flagged", "$Work"),
        3: ("\\Flagged", "$Work"),
    }
    run(store.store_flags(three.id, [(2, 3)], "-", ["\\Flagged", "$Nope"]))
    assert flags_of(store, three) == {
        1: ("\\Flagged", "$Work"),
        2: ("\\Seen", "$Work"),
        3: ("$Work",),
    }
    run(store.store_flags(three.id, [(1, 1), (3, 3)], "", ["\\Answered", "\\Draft", "$New"]))
    assert flags_of(store, three) == {
        1: ("\\Answered", "\\Draft", "$New"),
        2: ("\\Seen", "$Work"),
        3: ("\\Answered", "\\Draft", "$New"),
    }
    run(store.store_flags(three.id, [(1, 3)], "", []))
    assert flags_of(store, three) == {1: (), 2: (), 3: ()}


def test_result_lists_new_flags_and_modseq(store: Store, three: Mailbox) -> None:
    before = highest(store, three)
    result = run(store.store_flags(three.id, [(1, 3)], "+", ["\\Seen"]))
    assert result.highestmodseq == before + 1
    assert result.modified == []
    # UID 2 already had \Seen: reported with its flags, but not changed (old MODSEQ).
    by_uid = {s.uid: s for s in result.updated}
    assert [s.uid for s in result.updated] == [1, 2, 3]
    assert by_uid[1].flags == ("\\Seen",)
    assert by_uid[1].modseq == before + 1
    assert by_uid[3].modseq == before + 1
    assert by_uid[2].modseq < before + 1
    assert highest(store, three) == before + 1


def test_a_change_that_changes_nothing_keeps_highestmodseq(store: Store, three: Mailbox) -> None:
    before = highest(store, three)
    result = run(store.store_flags(three.id, [(2, 2)], "+", ["\\Seen"]))
    assert result.highestmodseq == before
    result = run(store.store_flags(three.id, [(1, 1)], "-", ["\\Deleted"]))
    assert result.highestmodseq == before
    result = run(store.store_flags(three.id, [(100, 200)], "+", ["\\Seen"]))
    assert result.updated == []
    assert highest(store, three) == before


def test_highestmodseq_rises_with_every_change(store: Store, mailbox: Mailbox) -> None:
    other = run(store.create_mailbox(mailbox.inbox_id, "Other"))
    values = [highest(store, mailbox)]

    def step() -> None:
        now = highest(store, mailbox)
        assert now > values[-1]
        values.append(now)

    run(store.append(mailbox.id, message(1)))
    step()
    run(store.append(mailbox.id, message(2)))
    step()
    run(store.store_flags(mailbox.id, [(1, 1)], "+", ["\\Seen"]))
    step()
    run(store.store_flags(mailbox.id, [(1, 2)], "+", ["\\Deleted"]))
    step()
    run(store.expunge(mailbox.id, [(1, 1)]))
    step()
    run(store.copy(other.id, [(1, 1)], mailbox.id))  # nothing to copy: no change
    assert highest(store, mailbox) == values[-1]
    run(store.append(other.id, message(3)))
    run(store.copy(other.id, [(1, 1)], mailbox.id))
    step()
    run(store.move(mailbox.id, [(3, 3)], other.id))
    step()
    run(store.expunge(mailbox.id))
    step()


def test_every_entry_of_one_transaction_shares_its_modseq(store: Store, three: Mailbox) -> None:
    result = run(store.store_flags(three.id, [(1, 3)], "+", ["$A"]))
    assert {r.modseq for r in run(store.fetch(three.id, [(1, 3)]))} == {result.highestmodseq}


def test_unchangedsince_skips_entries_changed_later(store: Store, three: Mailbox) -> None:
    """RFC 7162 §3.1.3: entries whose MODSEQ is above UNCHANGEDSINCE are left alone and listed
    as modified; the others are updated."""
    base = highest(store, three)
    run(store.store_flags(three.id, [(2, 2)], "+", ["$Touched"]))
    result = run(store.store_flags(three.id, [(1, 3)], "+", ["\\Flagged"], unchangedsince=base))
    assert result.modified == [2]
    assert [s.uid for s in result.updated] == [1, 3]
    assert flags_of(store, three) == {
        1: ("\\Flagged",),
        2: ("\\Seen", "$Touched"),
        3: ("\\Flagged",),
    }


def test_unchangedsince_equal_to_entry_modseq_is_allowed(store: Store, three: Mailbox) -> None:
    (row,) = run(store.fetch(three.id, [(1, 1)]))
    result = run(store.store_flags(three.id, [(1, 1)], "+", ["$x"], unchangedsince=row.modseq))
    assert result.modified == []
    assert flags_of(store, three)[1] == ("$x",)


def test_unchangedsince_zero_modifies_nothing(store: Store, three: Mailbox) -> None:
    before = highest(store, three)
    result = run(store.store_flags(three.id, [(1, 3)], "", ["$x"], unchangedsince=0))
    assert result.modified == [1, 2, 3]
    assert result.updated == []
    assert highest(store, three) == before


def test_many_uid_ranges(store: Store, mailbox: Mailbox) -> None:
    for i in range(1, 201):
        run(store.append(mailbox.id, message(i)))
    odd = [(u, u) for u in range(1, 201, 2)]  # 100 ranges: more than one SQL expression holds
    result = run(store.store_flags(mailbox.id, odd, "+", ["\\Seen"]))
    assert [s.uid for s in result.updated] == list(range(1, 201, 2))
    status = run(store.status(mailbox.id))
    assert status.unseen == 100
    assert [r.uid for r in run(store.fetch(mailbox.id, odd))] == list(range(1, 201, 2))
    assert run(store.expunge(mailbox.id, odd)) == []


def test_mailbox_keywords_accumulate_for_select(store: Store, three: Mailbox) -> None:
    run(store.store_flags(three.id, [(1, 1)], "+", ["$B", "$A"]))
    run(store.store_flags(three.id, [(1, 1)], "-", ["$A"]))
    run(store.append(three.id, message(9), flags=["$C"]))
    box = run(store.get_mailbox(three.inbox_id, "INBOX"))
    assert box.keywords == ("$A", "$B", "$C")
    changes = run(store.changes_since(three.id, 0))
    assert changes.keywords == ("$A", "$B", "$C")


def test_too_many_keywords_is_limit_exceeded(store: Store, three: Mailbox) -> None:
    many = [f"$k{i}" for i in range(MAX_KEYWORDS)]
    run(store.store_flags(three.id, [(1, 1)], "+", many))
    before = flags_of(store, three)
    with pytest.raises(errors.LimitExceeded):
        run(store.store_flags(three.id, [(2, 2)], "+", ["$one-too-many"]))
    assert flags_of(store, three) == before  # nothing half-done


def test_keywords_keep_their_case(store: Store, three: Mailbox) -> None:
    run(store.store_flags(three.id, [(1, 1)], "+", ["$MixedCase", "NonJunk"]))
    assert flags_of(store, three)[1] == ("$MixedCase", "NonJunk")


def test_invalid_flags_and_mode_are_refused(store: Store, three: Mailbox) -> None:
    with pytest.raises(ValueError, match="mode"):
        run(store.store_flags(three.id, [(1, 1)], "*", ["\\Seen"]))
    for bad in ["", "a b", "a\x00", "\udcff"]:
        with pytest.raises(errors.InvalidName):
            run(store.store_flags(three.id, [(1, 1)], "+", [bad]))
    with pytest.raises(errors.MailboxNotFound):
        run(store.store_flags(987654, [(1, 1)], "+", ["\\Seen"]))


def test_status_and_snapshot_count_flags(store: Store, three: Mailbox) -> None:
    run(store.store_flags(three.id, [(3, 3)], "+", ["\\Deleted"]))
    status = run(store.status(three.id))
    assert (status.messages, status.unseen, status.deleted) == (3, 2, 1)
    assert status.uidnext == 4
    assert status.size == sum(r.size for r in run(store.fetch(three.id, [(1, 3)])))
    run(store.store_flags(three.id, [(1, 1)], "+", ["\\Seen"]))
    snap = run(store.snapshot(three.id))
    assert list(snap.uids) == [1, 2, 3]
    assert snap.unseen == 1
    assert snap.first_unseen == 3  # a sequence number
    assert snap.mailbox.highestmodseq == highest(store, three)


def test_system_flags_are_case_insensitive(store: Store, three: Mailbox) -> None:
    run(store.store_flags(three.id, [(1, 1)], "+", ["\\FLAGGED", "\\seen"]))
    assert flags_of(store, three)[1] == ("\\Seen", "\\Flagged")
    run(store.store_flags(three.id, [(1, 1)], "-", ["\\flagged"]))
    assert flags_of(store, three)[1] == ("\\Seen",)
    run(store.append(three.id, message(8), flags=["\\DRAFT"]))
    assert flags_of(store, three)[4] == ("\\Draft",)
    assert run(store.get_mailbox(three.inbox_id, "INBOX")).keywords == ()


@pytest.mark.parametrize("flag", ["\\Recent", "\\Foo", "\\"])
def test_other_backslash_flags_cannot_be_set(store: Store, three: Mailbox, flag: str) -> None:
    with pytest.raises(errors.InvalidName):
        run(store.store_flags(three.id, [(1, 1)], "+", [flag]))
    with pytest.raises(errors.InvalidName):
        run(store.append(three.id, message(8), flags=[flag]))
    assert flags_of(store, three)[1] == ()


def test_reversed_ranges_mean_the_same(store: Store, three: Mailbox) -> None:
    assert [r.uid for r in run(store.fetch(three.id, [(3, 1)]))] == [1, 2, 3]
    # Bounds beyond the UID space (a client's "*" as a huge number) just mean "to the end".
    assert [r.uid for r in run(store.fetch(three.id, [(2, 2**64)]))] == [2, 3]
    assert run(store.fetch(three.id, [(2**64, 2**65)])) == []
    result = run(store.store_flags(three.id, [(3, 2)], "+", ["$r"]))
    assert [s.uid for s in result.updated] == [2, 3]
