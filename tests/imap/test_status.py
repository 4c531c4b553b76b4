"""STATUS (RFC 3501 §6.3.10, with RFC 8438 SIZE, RFC 9051 DELETED, RFC 7162 HIGHESTMODSEQ)."""

from __future__ import annotations

from tests.harness import Account, Server
from tests.imap.helpers import append, code_value, message, status_items
from tests.transcript import Transcript


def test_every_item(imap: Transcript) -> None:
    first, second = message("one"), message("two", body="A longer body.\r\n" * 5)
    append(imap, first, flags="\\Seen")
    append(imap, second, flags="\\Deleted")
    last = append(imap, message("three"))
    r = imap.ok(
        "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED HIGHESTMODSEQ)"
    )
    items = status_items(r)
    uidvalidity = int(code_value(imap.ok("EXAMINE INBOX"), b"UIDVALIDITY"))
    assert items["MESSAGES"] == 3
    assert items["RECENT"] == 3  # no session has selected INBOX since they came
    assert items["UIDNEXT"] == last + 1
    assert items["UIDVALIDITY"] == uidvalidity
    assert items["UNSEEN"] == 2
    assert items["SIZE"] == len(first) + len(second) + len(message("three"))
    assert items["DELETED"] == 1
    assert items["HIGHESTMODSEQ"] > 0
    # Items come back in the order asked, with the mailbox name quoted.
    assert r.lines(b"STATUS")[0].startswith(b'* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT ')


def test_status_of_an_empty_mailbox(imap: Transcript) -> None:
    items = status_items(imap.ok("STATUS Drafts (MESSAGES UNSEEN UIDNEXT SIZE DELETED)"))
    assert items == {"MESSAGES": 0, "UNSEEN": 0, "UIDNEXT": 1, "SIZE": 0, "DELETED": 0}


def test_highestmodseq_rises_with_changes(imap: Transcript) -> None:
    append(imap, message())
    before = status_items(imap.ok("STATUS INBOX (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"]
    imap.ok("SELECT INBOX")
    imap.ok("STORE 1 +FLAGS (\\Flagged)")
    after = status_items(imap.ok("STATUS INBOX (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"]
    assert after > before


def test_status_sees_smtp_delivery(server: Server, account: Account, imap: Transcript) -> None:
    assert status_items(imap.ok("STATUS INBOX (MESSAGES UNSEEN)")) == {"MESSAGES": 0, "UNSEEN": 0}
    with server.smtp_client(account) as smtp:
        smtp.sendmail(account.address, [account.address], message(From=account.address))
    assert status_items(imap.ok("STATUS INBOX (MESSAGES UNSEEN)")) == {"MESSAGES": 1, "UNSEEN": 1}
    # The sender's Sent copy is filed as seen.
    assert status_items(imap.ok("STATUS Sent (MESSAGES UNSEEN)")) == {"MESSAGES": 1, "UNSEEN": 0}


def test_status_of_the_selected_mailbox(imap: Transcript) -> None:
    append(imap, message())
    imap.ok("SELECT INBOX")
    assert status_items(imap.ok("STATUS INBOX (MESSAGES)")) == {"MESSAGES": 1}


def test_inbox_is_case_insensitive_other_names_are_not(imap: Transcript) -> None:
    r = imap.ok("STATUS inbox (MESSAGES)")
    assert r.lines(b"STATUS")[0].startswith(b'* STATUS "INBOX" ')
    imap.no("STATUS trash (MESSAGES)", code="NONEXISTENT")


def test_missing_mailbox_is_nonexistent(imap: Transcript) -> None:
    imap.no("STATUS Nope (MESSAGES)", code="NONEXISTENT")


def test_syntax_errors_are_bad(imap: Transcript) -> None:
    imap.bad("STATUS INBOX (BOGUS)")
    imap.bad("STATUS INBOX ()")
    imap.bad("STATUS INBOX MESSAGES")
    imap.bad("STATUS INBOX")


def test_imaplib_status(server: Server, account: Account) -> None:
    client = server.imap_client(account)
    try:
        typ, data = client.status("INBOX", "(MESSAGES UIDNEXT)")
        assert typ == "OK"
        assert data == [b'"INBOX" (MESSAGES 0 UIDNEXT 1)']
    finally:
        client.logout()
