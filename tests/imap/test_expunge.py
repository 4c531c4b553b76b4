"""EXPUNGE, UID EXPUNGE (RFC 4315), CLOSE (expunges silently) and UNSELECT (does not)."""

from __future__ import annotations

import time

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
    apply_expunges,
    fetches,
    message,
    number_of,
    status_items,
    uid_of,
)
from tests.transcript import Transcript


@pytest.fixture
def box(imap: Transcript) -> Transcript:
    """INBOX selected with five messages, UIDs 1-5; 2, 4 and 5 are \\Deleted."""
    for i in range(1, 6):
        append(imap, message(f"m{i}"), flags="\\Deleted" if i in (2, 4, 5) else None)
    imap.ok("SELECT INBOX")
    return imap


def uids(s: Transcript) -> list[int]:
    items = fetches(s.ok("FETCH 1:* UID"))
    return [uid_of(items[i]) for i in sorted(items)]


def test_expunge_removes_deleted_messages(box: Transcript) -> None:
    r = box.ok("EXPUNGE")
    assert len(r.untagged) == 3
    assert all(line.endswith(b" EXPUNGE") for line in r.untagged)
    assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [1, 3]
    assert uids(box) == [1, 3]
    assert status_items(box.ok("STATUS INBOX (MESSAGES DELETED)")) == {
        "MESSAGES": 2,
        "DELETED": 0,
    }


def test_uids_are_never_reused_after_an_expunge(box: Transcript) -> None:
    box.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    assert append(box, message("after")) == 6
    r = box.ok("SELECT INBOX")
    assert b"[UIDNEXT 7]" in b"".join(r.untagged)


def test_expunging_one_copy_keeps_the_others(
    server: Server, account: Account, imap: Transcript
) -> None:
    # A message sent to oneself: the Sent copy and the INBOX copy share the stored bytes.
    data = message("to myself", From=account.address, To=account.address)
    with server.smtp_client(account) as smtp:
        smtp.sendmail(account.address, [account.address], data)
    imap.ok("SELECT INBOX")
    imap.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    imap.ok("EXPUNGE")
    imap.ok("SELECT Sent")
    item = fetches(imap.ok("FETCH 1 BODY.PEEK[]"))[1]
    assert b"Subject: to myself" in item
    assert item.endswith(b"Hello there.\r\n")


def test_expunge_with_nothing_deleted(box: Transcript) -> None:
    box.ok("EXPUNGE")
    assert box.ok("EXPUNGE").untagged == []
    assert uids(box) == [1, 3]


def test_uid_expunge_only_touches_the_given_uids(box: Transcript) -> None:
    r = box.ok("UID EXPUNGE 1:4")  # 1 and 3 are not \Deleted, 5 is outside the set
    assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [1, 3, 5]
    assert uids(box) == [1, 3, 5]
    r = box.ok("UID EXPUNGE 5")
    assert r.untagged == [b"* 3 EXPUNGE"]
    assert box.ok("UID EXPUNGE 100:200").untagged == []


def test_expunge_in_a_read_only_mailbox_is_refused(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    box.no("EXPUNGE")
    box.no("UID EXPUNGE 1:*")
    assert status_items(box.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 5


def test_close_expunges_silently(box: Transcript) -> None:
    r = box.ok("CLOSE")
    assert r.untagged == []
    box.bad("FETCH 1 FLAGS")  # back in the authenticated state
    assert status_items(box.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 2


def test_close_after_examine_does_not_expunge(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    assert box.ok("CLOSE").untagged == []
    assert status_items(box.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 5


def test_unselect_does_not_expunge(box: Transcript) -> None:
    assert box.ok("UNSELECT").untagged == []
    box.bad("FETCH 1 FLAGS")
    assert status_items(box.ok("STATUS INBOX (MESSAGES DELETED)")) == {
        "MESSAGES": 5,
        "DELETED": 3,
    }


def test_another_session_sees_the_expunges_at_its_next_command(
    server: Server, account: Account, box: Transcript
) -> None:
    with Transcript.login(server, account) as other:
        other.ok("SELECT INBOX")
        box.ok("EXPUNGE")
        r = other.ok("NOOP")
        assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [1, 3]
        assert uids(other) == [1, 3]


def test_no_expunge_responses_during_fetch_store_search(
    server: Server, account: Account, box: Transcript
) -> None:
    # RFC 3501 §7.4.1: EXPUNGE is not sent while a FETCH, STORE or SEARCH is in progress
    # (sequence numbers would shift under the client); it waits for a command that allows it.
    with Transcript.login(server, account) as other:
        other.ok("SELECT INBOX")
        box.ok("EXPUNGE")
        for command in ("FETCH 1:5 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL"):
            r = other.ok(command)
            assert not any(line.endswith(b" EXPUNGE") for line in r.untagged), (command, r)
        # Numbering is unchanged until the client is told: UID 3 is still message 3.
        assert search_all(other) == [1, 3]
        r = other.ok("NOOP")
        assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [1, 3]


def test_a_session_is_told_of_expunges_whose_records_were_forgotten(
    server: Server, account: Account, box: Transcript
) -> None:
    # The server forgets expunge records after a day; a session that has not caught up since
    # is then told from the mailbox's whole UID list instead.
    with Transcript.login(server, account) as other:
        other.ok("SELECT INBOX")
        box.ok("EXPUNGE")
        assert server.call(server.store.prune_expunged(int(time.time()) - 86400)) == 0
        assert server.call(server.store.prune_expunged(int(time.time()) + 1)) >= 3
        r = other.ok("NOOP")
        assert apply_expunges([1, 2, 3, 4, 5], r.untagged) == [1, 3]
        assert uids(other) == [1, 3]
        # Later expunges are recorded and reported as before.
        box.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        box.ok("EXPUNGE")
        assert apply_expunges([1, 3], other.ok("NOOP").untagged) == [1]


def search_all(s: Transcript) -> list[int]:
    r = s.ok("SEARCH ALL")
    return [int(n) for n in r.lines(b"SEARCH")[0].split()[2:]]


def test_expunge_is_kept_across_sessions(server: Server, account: Account, box: Transcript) -> None:
    box.ok("EXPUNGE")
    with Transcript.login(server, account) as other:
        assert number_of(other.ok("SELECT INBOX"), b"EXISTS") == 2


def test_expunge_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("EXPUNGE")
    imap.bad("CLOSE")
    imap.bad("UNSELECT")


def test_expunge_syntax(box: Transcript) -> None:
    box.bad("EXPUNGE 1")
    box.bad("UID EXPUNGE")
    box.bad("UID EXPUNGE x")


def test_imaplib_expunge(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        append(s, message("keep"))
        append(s, message("drop"), flags="\\Deleted")
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        assert client.expunge() == ("OK", [b"2"])
        assert client.close()[0] == "OK"
    finally:
        client.logout()
