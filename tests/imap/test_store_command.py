"""STORE and UID STORE: FLAGS, +FLAGS, -FLAGS, .SILENT, keywords, read-only mailboxes."""

from __future__ import annotations

import threading

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, code_value, fetches, flags_of, message, uid_of
from tests.transcript import Transcript


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    """INBOX selected with three unflagged messages, UIDs 1-3."""
    for i in range(3):
        append(imap, message(f"m{i}"))
    imap.ok("SELECT INBOX")
    return imap


def flags(s: Transcript) -> dict[int, set[str]]:
    return {seq: flags_of(item) for seq, item in fetches(s.ok("FETCH 1:* FLAGS")).items()}


def test_add_flags(box: Transcript) -> None:
    r = box.ok("STORE 1 +FLAGS (\\Seen \\Flagged)")
    items = fetches(r)
    assert list(items) == [1]
    assert flags_of(items[1]) == {"\\Seen", "\\Flagged"}
    r = box.ok("STORE 1 +FLAGS (\\Answered)")
    assert flags_of(fetches(r)[1]) == {"\\Seen", "\\Flagged", "\\Answered"}
    assert flags(box) == {1: {"\\Seen", "\\Flagged", "\\Answered"}, 2: set(), 3: set()}


def test_remove_flags(box: Transcript) -> None:
    box.ok("STORE 1:3 +FLAGS (\\Seen \\Flagged)")
    r = box.ok("STORE 2 -FLAGS (\\Flagged)")
    assert flags_of(fetches(r)[2]) == {"\\Seen"}
    assert flags(box) == {1: {"\\Seen", "\\Flagged"}, 2: {"\\Seen"}, 3: {"\\Seen", "\\Flagged"}}


def test_replace_flags(box: Transcript) -> None:
    box.ok("STORE 1 +FLAGS (\\Seen \\Flagged)")
    r = box.ok("STORE 1 FLAGS (\\Draft)")
    assert flags_of(fetches(r)[1]) == {"\\Draft"}
    box.ok("STORE 1 FLAGS ()")
    assert flags(box)[1] == set()


def test_silent_sends_no_fetch(box: Transcript) -> None:
    r = box.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert fetches(r) == {}
    r = box.ok("STORE 2 -FLAGS.SILENT (\\Deleted)")
    assert fetches(r) == {}
    r = box.ok("STORE 3 FLAGS.SILENT (\\Seen)")
    assert fetches(r) == {}
    assert flags(box) == {1: {"\\Deleted"}, 2: set(), 3: {"\\Seen"}}


def test_flags_without_parentheses(box: Transcript) -> None:
    box.ok("STORE 1 +FLAGS \\Seen \\Flagged")
    assert flags(box)[1] == {"\\Seen", "\\Flagged"}


def test_system_flags_are_case_insensitive(box: Transcript) -> None:
    r = box.ok("STORE 1 +FLAGS (\\SEEN \\flagged)")
    assert flags_of(fetches(r)[1]) == {"\\Seen", "\\Flagged"}


def test_keywords(box: Transcript) -> None:
    r = box.ok("STORE 1 +FLAGS ($Work NonJunk)")
    assert flags_of(fetches(r)[1]) == {"$Work", "NonJunk"}
    # A keyword new to the mailbox is announced in FLAGS and PERMANENTFLAGS.
    flag_lines = r.lines(b"FLAGS")
    assert any(b"$Work" in line and line.startswith(b"* FLAGS") for line in flag_lines), r
    sel = box.ok("SELECT INBOX")
    assert b"$Work" in sel.lines(b"FLAGS")[0]
    assert b"NonJunk" in sel.lines(b"FLAGS")[0]
    assert b"$Work" in code_value(sel, b"PERMANENTFLAGS")
    box.ok("STORE 1 -FLAGS ($Work)")
    assert flags(box)[1] == {"NonJunk"}


def test_uid_store_reports_uid(box: Transcript) -> None:
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    r = box.ok("UID STORE 3 +FLAGS (\\Flagged)")
    items = fetches(r)
    assert list(items) == [2]  # UID 3 is now sequence number 2
    assert uid_of(items[2]) == 3
    assert flags_of(items[2]) == {"\\Flagged"}
    assert box.ok("UID STORE 1 +FLAGS (\\Flagged)").untagged == []  # expunged UID: nothing


def test_store_range_and_star(box: Transcript) -> None:
    box.ok("STORE 2:* +FLAGS.SILENT (\\Seen)")
    assert flags(box) == {1: set(), 2: {"\\Seen"}, 3: {"\\Seen"}}


def test_flags_persist_and_reach_other_sessions(
    server: Server, account: Account, box: Transcript
) -> None:
    box.ok("STORE 2 +FLAGS (\\Flagged $Keep)")
    with Transcript.login(server, account) as other:
        other.ok("EXAMINE INBOX")
        assert flags(other)[2] == {"\\Flagged", "$Keep"}


def test_read_only_is_refused(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    box.no("STORE 1 +FLAGS (\\Seen)")
    box.no("UID STORE 1 +FLAGS (\\Seen)")
    box.ok("SELECT INBOX")
    assert flags(box)[1] == set()


def test_recent_cannot_be_stored(box: Transcript) -> None:
    box.bad("STORE 1 +FLAGS (\\Recent)")


def test_syntax_errors_are_bad(box: Transcript) -> None:
    box.bad("STORE 1 +FLAGS")
    box.bad("STORE 1 LABELS (x)")
    box.bad("STORE 1 +FLAGS (\\Bogus)")
    box.bad("STORE 1 +FLAGS (\\Seen")
    box.bad("STORE 4 +FLAGS (\\Seen)")
    box.bad("STORE 0 +FLAGS (\\Seen)")
    box.bad("STORE")
    assert flags(box) == {1: set(), 2: set(), 3: set()}


def test_store_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("STORE 1 +FLAGS (\\Seen)")


def test_imaplib_store(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        append(s, message())
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        typ, data = client.store("1", "+FLAGS", "(\\Flagged)")
        assert typ == "OK"
        assert b"\\Flagged" in data[0]
        typ, data = client.uid("STORE", "1", "-FLAGS", "(\\Flagged)")
        assert typ == "OK"
        assert b"UID 1" in data[0]
        assert b"\\Flagged" not in data[0]
    finally:
        client.logout()


def test_concurrent_flag_changes_from_two_sessions_lose_nothing(
    server: Server, account: Account, box: Transcript
) -> None:
    errors: list[BaseException] = []

    def add_keywords(prefix: str) -> None:
        try:
            with Transcript.login(server, account) as s:
                s.ok("SELECT INBOX")
                for i in range(15):
                    s.ok(f"STORE 1 +FLAGS.SILENT ({prefix}{i})")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=add_keywords, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    box.ok("NOOP")  # take the other sessions' updates first
    expected = {f"{p}{i}" for p in ("a", "b") for i in range(15)}
    assert flags(box)[1] == expected
