"""SELECT, EXAMINE and CHECK: the responses a client builds its view of a mailbox from."""

from __future__ import annotations

import re

from tests.harness import Account, Server
from tests.imap.helpers import append, appenduid, code_value, message, number_of
from tests.transcript import Transcript

SYSTEM_FLAGS = b"\\Seen \\Answered \\Flagged \\Deleted \\Draft"


def test_select_empty_inbox_exact_responses(imap: Transcript) -> None:
    r = imap.ok("SELECT INBOX", code="READ-WRITE")
    lines = [
        re.sub(
            rb"MAILBOXID \(F\d+\)",
            b"MAILBOXID (Fn)",
            re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY v", line),
        )
        for line in r.untagged
    ]
    assert lines == [
        b"* FLAGS (" + SYSTEM_FLAGS + b")",
        b"* OK [PERMANENTFLAGS (" + SYSTEM_FLAGS + b" \\*)] Flags permitted",
        b"* 0 EXISTS",
        b"* 0 RECENT",
        b"* OK [UIDVALIDITY v] UIDs valid",
        b"* OK [UIDNEXT 1] Predicted next UID",
        b"* OK [MAILBOXID (Fn)] Ok",  # RFC 8474
    ]
    assert int(code_value(r, b"UIDVALIDITY")) > 0


def test_select_reports_exists_unseen_uidnext(imap: Transcript) -> None:
    append(imap, message("one"), flags="\\Seen")
    append(imap, message("two"), flags="\\Seen")
    append(imap, message("three"))
    last = append(imap, message("four"))
    r = imap.ok("SELECT INBOX", code="READ-WRITE")
    assert number_of(r, b"EXISTS") == 4
    assert number_of(r, b"RECENT") == 4  # the first session to select them (test_recent.py)
    assert code_value(r, b"UNSEEN") == b"3"  # the first unseen message's sequence number
    assert int(code_value(r, b"UIDNEXT")) == last + 1


def test_uidvalidity_matches_appenduid_and_is_stable(
    server: Server, account: Account, imap: Transcript
) -> None:
    r = imap.ok("APPEND INBOX \x00", message(), code="APPENDUID")
    uidvalidity, _ = appenduid(r)
    assert int(code_value(imap.ok("SELECT INBOX"), b"UIDVALIDITY")) == uidvalidity
    with Transcript.login(server, account) as again:
        assert int(code_value(again.ok("EXAMINE INBOX"), b"UIDVALIDITY")) == uidvalidity


def test_every_mailbox_has_its_own_uidvalidity(imap: Transcript) -> None:
    values = {
        int(code_value(imap.ok(f"SELECT {name}"), b"UIDVALIDITY"))
        for name in ("INBOX", "Sent", "Trash", "Spam", "Drafts")
    }
    assert len(values) == 5


def test_no_unseen_code_when_everything_is_seen(imap: Transcript) -> None:
    append(imap, message(), flags="\\Seen")
    r = imap.ok("SELECT INBOX")
    assert not any(b"[UNSEEN" in line for line in r.untagged)


def test_keywords_in_use_are_listed_in_flags(imap: Transcript) -> None:
    append(imap, message(), flags="$Important work")
    r = imap.ok("SELECT INBOX")
    flags = r.lines(b"FLAGS")[0]
    assert b"$Important" in flags
    assert b"work" in flags
    permanent = code_value(r, b"PERMANENTFLAGS")
    assert b"$Important" in permanent
    assert b"\\*" in permanent


def test_examine_is_read_only(imap: Transcript) -> None:
    append(imap, message())
    r = imap.ok("EXAMINE INBOX", code="READ-ONLY")
    assert number_of(r, b"EXISTS") == 1
    assert code_value(r, b"PERMANENTFLAGS") == b"()"
    imap.no("STORE 1 +FLAGS (\\Flagged)")


def test_select_builtin_mailboxes(imap: Transcript) -> None:
    for name in ("Sent", "Trash", "Spam", "Drafts"):
        imap.ok(f"SELECT {name}", code="READ-WRITE")
        imap.ok(f'EXAMINE "{name}"', code="READ-ONLY")


def test_inbox_is_case_insensitive(imap: Transcript) -> None:
    append(imap, message())
    for name in ("inbox", "InBoX", '"Inbox"'):
        assert number_of(imap.ok(f"SELECT {name}"), b"EXISTS") == 1


def test_other_names_are_case_sensitive(imap: Transcript) -> None:
    imap.no("SELECT sent", code="NONEXISTENT")
    imap.no("SELECT TRASH", code="NONEXISTENT")
    imap.no("EXAMINE drafts", code="NONEXISTENT")
    imap.ok("SELECT Sent")


def test_missing_mailbox_is_nonexistent(imap: Transcript) -> None:
    imap.no("SELECT Nope", code="NONEXISTENT")
    imap.no('EXAMINE "Nope/Deeper"', code="NONEXISTENT")


def test_failed_select_leaves_the_selected_state(imap: Transcript) -> None:
    append(imap, message())
    imap.ok("SELECT INBOX")
    imap.ok("FETCH 1 FLAGS")
    imap.no("SELECT Nope", code="NONEXISTENT")
    # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
    r = imap.bad("FETCH 1 FLAGS")
    assert b"Select a mailbox first" in r.tagged


def test_select_another_mailbox_switches(imap: Transcript) -> None:
    append(imap, message("in inbox"))
    append(imap, message("one"), "Trash")
    append(imap, message("two"), "Trash")
    assert number_of(imap.ok("SELECT INBOX"), b"EXISTS") == 1
    assert number_of(imap.ok("SELECT Trash"), b"EXISTS") == 2
    r = imap.ok("FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert b"Subject: two" in r.untagged[0]


def test_select_needs_a_mailbox(imap: Transcript) -> None:
    imap.bad("SELECT")
    imap.bad("SELECT INBOX extra")
    imap.bad("EXAMINE")


def test_check_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("CHECK")
    imap.ok("SELECT INBOX")
    imap.ok("CHECK")


def test_imaplib_select(server: Server, account: Account) -> None:
    with server.smtp_client(account) as smtp:
        smtp.sendmail(account.address, [account.address], message(From=account.address))
    client = server.imap_client(account)
    try:
        assert client.select("INBOX") == ("OK", [b"1"])
        assert client.select("INBOX", readonly=True) == ("OK", [b"1"])
        _typ, data = client.response("UIDVALIDITY")
        assert data[0] is not None
        assert int(data[0]) > 0
    finally:
        client.logout()
