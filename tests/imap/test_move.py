"""MOVE and UID MOVE (RFC 6851): COPYUID in an untagged OK, then the EXPUNGEs."""

from __future__ import annotations

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    apply_expunges,
    code_value,
    copyuid,
    fetches,
    flags_of,
    message,
    number_of,
    status_items,
    uid_of,
)
from tests.transcript import Transcript


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    """INBOX selected with five messages, UIDs 1-5; message 3 is \\Flagged."""
    for i in range(1, 6):
        append(imap, message(f"m{i}"), flags="\\Flagged" if i == 3 else None)
    imap.ok("SELECT INBOX")
    return imap


def test_move_sends_copyuid_then_expunges(box: Transcript) -> None:
    trash_validity = int(code_value(box.ok("EXAMINE Trash"), b"UIDVALIDITY"))
    box.ok("SELECT INBOX")
    r = box.ok("MOVE 2 Trash")
    assert len(r.untagged) == 2, r
    assert r.untagged[0].startswith(b"* OK [COPYUID "), r
    assert copyuid(r.untagged[0]) == (trash_validity, [2], [1])
    assert r.untagged[1] == b"* 2 EXPUNGE"
    assert b"COPYUID" not in r.tagged  # it went in the untagged OK


def test_move_several_messages(box: Transcript) -> None:
    r = box.ok("MOVE 2,4:5 Trash")
    assert r.untagged[0].startswith(b"* OK [COPYUID ")
    _, source, dest = copyuid(r.untagged[0])
    assert source == [2, 4, 5]
    assert dest == [1, 2, 3]
    expunges = r.untagged[1:]
    assert all(line.endswith(b" EXPUNGE") for line in expunges)
    assert len(expunges) == 3
    assert apply_expunges([1, 2, 3, 4, 5], expunges) == [1, 3]
    items = fetches(box.ok("FETCH 1:* UID"))
    assert [uid_of(items[i]) for i in sorted(items)] == [1, 3]


def test_moved_messages_keep_flags_and_bytes(box: Transcript) -> None:
    source = fetches(box.ok("FETCH 3 (FLAGS BODY.PEEK[])"))[3]
    box.ok("MOVE 3 Spam")
    box.ok("SELECT Spam")
    moved = fetches(box.ok("FETCH 1 (FLAGS BODY.PEEK[])"))[1]
    assert moved == source
    assert flags_of(moved) == {"\\Flagged"}


def test_move_keeps_the_internal_date(imap: Transcript) -> None:
    append(imap, message("dated"), date="07-Jul-2021 07:07:07 -0300")
    imap.ok("SELECT INBOX")
    imap.ok("MOVE 1 Trash")
    imap.ok("SELECT Trash")
    item = fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
    assert item == b'INTERNALDATE "07-Jul-2021 07:07:07 -0300"'


def test_uid_move(box: Transcript) -> None:
    r = box.ok("UID MOVE 4:5 Trash")
    _, source, _ = copyuid(r.untagged[0])
    assert source == [4, 5]
    assert apply_expunges([1, 2, 3, 4, 5], r.untagged[1:]) == [1, 2, 3]
    # UIDs that are not there: nothing moves, and no COPYUID.
    r = box.ok("UID MOVE 100:200 Trash")
    assert r.untagged == []


def test_move_to_missing_mailbox_is_trycreate_and_moves_nothing(box: Transcript) -> None:
    r = box.no("MOVE 1:* Nope", code="TRYCREATE")
    assert r.untagged == []
    box.no("MOVE 1 trash", code="TRYCREATE")
    assert number_of(box.ok("SELECT INBOX"), b"EXISTS") == 5


def test_move_in_a_read_only_mailbox_is_refused(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    box.no("MOVE 1 Trash")
    assert status_items(box.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 5
    assert status_items(box.ok("STATUS Trash (MESSAGES)"))["MESSAGES"] == 0


def test_other_sessions_see_the_move(server: Server, account: Account, box: Transcript) -> None:
    with (
        Transcript.login(server, account) as source_watcher,
        Transcript.login(server, account) as dest_watcher,
    ):
        source_watcher.ok("SELECT INBOX")
        dest_watcher.ok("SELECT Trash")
        box.ok("MOVE 1:2 Trash")
        r = source_watcher.ok("NOOP")
        assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [3, 4, 5]
        assert number_of(dest_watcher.ok("NOOP"), b"EXISTS") == 2


def test_move_errors_are_bad(box: Transcript) -> None:
    box.bad("MOVE 6 Trash")
    box.bad("MOVE 1")
    box.bad("UID MOVE x Trash")
    assert status_items(box.ok("STATUS Trash (MESSAGES)"))["MESSAGES"] == 0


def test_move_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("MOVE 1 Trash")


def test_imaplib_move(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        append(s, message())
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        typ, _ = client.uid("MOVE", "1", "Trash")
        assert typ == "OK"
        assert client.untagged_responses.get("EXPUNGE") == [b"1"]
        assert client.select("Trash") == ("OK", [b"1"])
    finally:
        client.logout()
