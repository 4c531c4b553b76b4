"""COPY and UID COPY with COPYUID (RFC 4315 UIDPLUS)."""

from __future__ import annotations

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import (
    append,
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
    """INBOX selected with three messages (UIDs 1-3); message 2 is \\Flagged $Work."""
    append(imap, message("one"))
    append(imap, message("two"), flags="\\Flagged $Work")
    append(imap, message("three"))
    imap.ok("SELECT INBOX")
    return imap


def test_copy_answers_copyuid(box: Transcript) -> None:
    trash_validity = int(code_value(box.ok("EXAMINE Trash"), b"UIDVALIDITY"))
    box.ok("SELECT INBOX")
    r = box.ok("COPY 1:2 Trash", code="COPYUID")
    assert copyuid(r.tagged) == (trash_validity, [1, 2], [1, 2])
    r = box.ok("COPY 3 Trash", code="COPYUID")
    assert copyuid(r.tagged) == (trash_validity, [3], [3])


def test_copy_keeps_bytes_and_flags_and_source(box: Transcript) -> None:
    source = fetches(box.ok("FETCH 2 (FLAGS BODY.PEEK[])"))[2]
    box.ok("COPY 2 Trash")
    assert status_items(box.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 3
    box.ok("SELECT Trash")
    copied = fetches(box.ok("FETCH 1 (FLAGS BODY.PEEK[])"))[1]
    assert copied == source
    assert flags_of(copied) == {"\\Flagged", "$Work"}


def test_copy_keeps_the_internal_date(imap: Transcript) -> None:
    append(imap, message("dated"), date="07-Jul-2021 07:07:07 +0700")
    imap.ok("SELECT INBOX")
    imap.ok("COPY 1 Trash")
    imap.ok("SELECT Trash")
    item = fetches(imap.ok("FETCH 1 INTERNALDATE"))[1]
    assert item == b'INTERNALDATE "07-Jul-2021 07:07:07 +0700"'


def test_copied_keywords_are_announced_in_the_destination(box: Transcript) -> None:
    box.ok("COPY 2 Trash")
    r = box.ok("SELECT Trash")
    assert b"$Work" in r.lines(b"FLAGS")[0]


def test_uid_copy(box: Transcript) -> None:
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    r = box.ok("UID COPY 3,2 Drafts", code="COPYUID")
    _, source, dest = copyuid(r.tagged)
    assert source == [2, 3]
    assert dest == [1, 2]
    # Non-existent UIDs are ignored, and a copy of nothing has no COPYUID.
    r = box.ok("UID COPY 1 Drafts")
    assert b"COPYUID" not in r.tagged
    assert status_items(box.ok("STATUS Drafts (MESSAGES)"))["MESSAGES"] == 2


def test_copy_to_the_selected_mailbox(box: Transcript) -> None:
    r = box.ok("COPY 1 INBOX", code="COPYUID")
    _, source, dest = copyuid(r.tagged)
    assert source == [1]
    assert dest == [4]
    assert number_of(r, b"EXISTS") == 4


def test_copy_reaches_another_session_on_the_destination(
    server: Server, account: Account, box: Transcript
) -> None:
    with Transcript.login(server, account) as watcher:
        watcher.ok("SELECT Trash")
        r = box.ok("COPY 1:3 Trash", code="COPYUID")
        _, _, dest = copyuid(r.tagged)
        assert number_of(watcher.ok("NOOP"), b"EXISTS") == 3
        items = fetches(watcher.ok("FETCH 1:* UID"))
        assert [uid_of(items[i]) for i in sorted(items)] == dest


def test_copy_to_missing_mailbox_is_trycreate(box: Transcript) -> None:
    box.no("COPY 1 Nope", code="TRYCREATE")
    box.no("COPY 1 trash", code="TRYCREATE")  # case-sensitive
    assert status_items(box.ok("STATUS Trash (MESSAGES)"))["MESSAGES"] == 0


def test_copy_from_a_read_only_mailbox_is_allowed(box: Transcript) -> None:
    box.ok("EXAMINE INBOX")
    box.ok("COPY 1 Trash", code="COPYUID")


def test_copy_errors_are_bad(box: Transcript) -> None:
    box.bad("COPY 4 Trash")
    box.bad("COPY 0 Trash")
    box.bad("COPY 1")
    box.bad("COPY Trash")
    assert status_items(box.ok("STATUS Trash (MESSAGES)"))["MESSAGES"] == 0


def test_copy_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("COPY 1 Trash")


def test_imaplib_copy(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        append(s, message())
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        typ, data = client.copy("1", "Trash")
        assert typ == "OK"
        assert b"COPYUID" in data[0]
    finally:
        client.logout()
