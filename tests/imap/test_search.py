"""SEARCH and UID SEARCH: every RFC 3501 §6.4.4 key family, CHARSET, and ESEARCH (RFC 4731)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.harness import Account, Server
from tests.imap.helpers import append, message, search_numbers
from tests.transcript import Transcript

# Four messages; the mailbox also had a first message that was expunged, so sequence numbers
# 1-4 are UIDs 2-5 and a search that mixes them up fails.
MESSAGES = [
    (
        message(
            "Invoice March",
            "Please pay the invoice.\r\n",
            From="Alice <alice@example.test>",
            To="Bob <bob@example.test>",
            Date="Fri, 01 Mar 2024 09:00:00 +0000",
        ),
        "\\Seen \\Answered",
        "01-Mar-2024 12:00:00 +0000",
    ),
    (
        message(
            "Lunch",
            "Shall we have lunch?\r\n",
            From="Carol <carol@example.test>",
            To="bob@example.test",
            Cc="Dave <dave@example.test>",
            Date="Fri, 15 Mar 2024 11:00:00 +0000",
            X_Priority_Tag="urgent",
        ),
        "\\Flagged $Work",
        "15-Mar-2024 12:00:00 +0000",
    ),
    (
        (
            b"From: Alice <alice@example.test>\r\n"
            b"To: erin@example.test\r\n"
            b"Bcc: frank@example.test\r\n"
            b"Subject: =?UTF-8?Q?Caf=C3=A9_menu?=\r\n"
            b"Date: Sat, 20 Apr 2024 08:00:00 +0000\r\n"
            b"Message-ID: <cafe@example.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n"
            b"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e today.\r\n"
        ),
        "\\Draft",  # and \\Deleted, set once the first message is expunged
        "20-Apr-2024 12:00:00 +0000",
    ),
    (
        message(
            "Report",
            "x" * 5000 + "\r\n",
            From="Zed <zed@example.test>",
            To="bob@example.test",
            # 11 May in UTC, but SENTON compares the date as written (RFC 3501 §6.4.4).
            Date="Fri, 10 May 2024 23:30:00 -0500",
        ),
        "",
        "11-May-2024 12:00:00 +0000",
    ),
]


@pytest.fixture(scope="module")
def box(server: Server) -> Iterator[Transcript]:
    """One session for the whole module (SEARCH changes nothing), INBOX selected."""
    s = Transcript.login(server, server.account())
    append(s, message("gone"), flags="\\Deleted")
    for data, flags, date in MESSAGES:
        append(s, data, flags=flags, date=date)
    s.ok("SELECT INBOX")
    s.ok("EXPUNGE")
    s.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    yield s
    s.close()


def search(s: Transcript, criteria: str) -> list[int]:
    return search_numbers(s.ok(f"SEARCH {criteria}"))


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ALL", [1, 2, 3, 4]),
        ("SEEN", [1]),
        ("UNSEEN", [2, 3, 4]),
        ("ANSWERED", [1]),
        ("UNANSWERED", [2, 3, 4]),
        ("FLAGGED", [2]),
        ("UNFLAGGED", [1, 3, 4]),
        ("DELETED", [3]),
        ("UNDELETED", [1, 2, 4]),
        ("DRAFT", [3]),
        ("UNDRAFT", [1, 2, 4]),
        ("KEYWORD $Work", [2]),
        ("UNKEYWORD $Work", [1, 3, 4]),
        ("KEYWORD $Nothing", []),
        ("RECENT", [1, 2, 3, 4]),  # this session selected INBOX first (test_recent.py)
        ("NEW", [2, 3, 4]),  # recent and unseen
        ("OLD", []),
    ],
)
def test_flag_keys(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("BEFORE 15-Mar-2024", [1]),
        ("ON 15-Mar-2024", [2]),
        ("SINCE 15-Mar-2024", [2, 3, 4]),
        ('SINCE "20-Apr-2024"', [3, 4]),
        ("BEFORE 1-Jan-2000", []),
        ("SENTBEFORE 15-Mar-2024", [1]),
        ("SENTON 15-Mar-2024", [2]),
        ("SENTSINCE 20-Apr-2024", [3, 4]),
        ("SENTON 10-May-2024", [4]),
        ("SENTON 11-May-2024", []),
    ],
)
def test_date_keys(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("FROM alice", [1, 3]),
        ("FROM ALICE@EXAMPLE.TEST", [1, 3]),
        ("TO bob", [1, 2, 4]),
        ("CC dave", [2]),
        ("BCC frank", [3]),
        ("SUBJECT lunch", [2]),
        ('SUBJECT "invoice march"', [1]),
        ("SUBJECT menu", [3]),  # encoded-word subjects are decoded
        ("HEADER X-Priority-Tag urgent", [2]),
        ('HEADER X-Priority-Tag ""', [2]),  # "" matches every message with the field
        ('HEADER Message-ID ""', [1, 2, 3, 4]),
        ("HEADER X-Missing x", []),
    ],
)
def test_header_keys(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("BODY invoice", [1]),
        ("BODY INVOICE", [1]),
        ("BODY alice", []),  # BODY does not look at the header
        ("TEXT alice", [1, 3]),  # TEXT does
        ("TEXT lunch", [2]),
        ("BODY nowhere", []),
    ],
)
def test_body_and_text(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


def test_size_keys(box: Transcript) -> None:
    assert search(box, "LARGER 4000") == [4]
    assert search(box, "SMALLER 4000") == [1, 2, 3]
    assert search(box, "LARGER 100000") == []


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("2:3", [2, 3]),
        ("*", [4]),
        ("1,4", [1, 4]),
        ("3:*", [3, 4]),
        ("UID 3:4", [2, 3]),
        ("UID 1", []),  # expunged
        ("UID *", [4]),
        ("UID 5:*", [4]),
    ],
)
def test_sequence_and_uid_sets(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("FROM alice UNSEEN", [3]),  # implicit AND
        ("OR FROM carol SUBJECT report", [2, 4]),
        ("NOT FROM alice", [2, 4]),
        ("(FROM alice SEEN)", [1]),
        ("NOT (FROM alice SEEN)", [2, 3, 4]),
        ("OR OR SEEN FLAGGED DRAFT", [1, 2, 3]),
        ("OR SEEN (FROM zed LARGER 10)", [1, 4]),
        ("NOT NOT SEEN", [1]),
        ("UNDELETED NOT OR SEEN FLAGGED", [4]),
    ],
)
def test_or_not_and_lists(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert search(box, criteria) == expected


def test_uid_search_returns_uids(box: Transcript) -> None:
    assert search_numbers(box.ok("UID SEARCH ALL")) == [2, 3, 4, 5]
    assert search_numbers(box.ok("UID SEARCH FROM alice")) == [2, 4]
    assert search_numbers(box.ok("UID SEARCH UID 4:*")) == [4, 5]


def test_charset_utf8_with_literal(box: Transcript) -> None:
    r = box.ok("SEARCH CHARSET UTF-8 SUBJECT \x00", "Café".encode())
    assert search_numbers(r) == [3]
    r = box.ok("SEARCH CHARSET UTF-8 BODY \x00", "BRÛLÉE".encode())
    assert search_numbers(r) == [3]
    r = box.ok("SEARCH CHARSET utf-8 TEXT \x00", "crème".encode())
    assert search_numbers(r) == [3]


def test_charset_us_ascii(box: Transcript) -> None:
    assert search(box, "CHARSET US-ASCII FROM carol") == [2]


def test_unknown_charset_is_badcharset(box: Transcript) -> None:
    r = box.no("SEARCH CHARSET KOI8-XX FROM alice", code="BADCHARSET")
    assert r.untagged == []


def test_no_match_is_an_empty_search_response(box: Transcript) -> None:
    r = box.ok("SEARCH FROM nobody")
    assert r.untagged == [b"* SEARCH"]


def test_esearch_return_options(box: Transcript) -> None:
    tag_line = box.ok("SEARCH RETURN (MIN MAX COUNT) FROM alice")
    line = tag_line.lines(b"ESEARCH")[0]
    tag = tag_line.tagged.split()[0].decode()
    assert line == f'* ESEARCH (TAG "{tag}") MIN 1 MAX 3 COUNT 2'.encode()
    r = box.ok("SEARCH RETURN () FROM alice")
    assert r.lines(b"ESEARCH")[0].endswith(b" ALL 1,3")
    r = box.ok("SEARCH RETURN (ALL) 2:4")
    assert r.lines(b"ESEARCH")[0].endswith(b" ALL 2:4")
    r = box.ok("UID SEARCH RETURN (ALL COUNT) ALL")
    assert r.lines(b"ESEARCH")[0].endswith(b") UID ALL 2:5 COUNT 4")
    assert r.lines(b"SEARCH") == []


def test_esearch_with_no_match(box: Transcript) -> None:
    r = box.ok("SEARCH RETURN (MIN MAX ALL COUNT) FROM nobody")
    tag = r.tagged.split()[0].decode()
    assert r.lines(b"ESEARCH") == [f'* ESEARCH (TAG "{tag}") COUNT 0'.encode()]
    r = box.ok("SEARCH RETURN (MIN) FROM nobody")
    assert r.lines(b"ESEARCH") == [f'* ESEARCH (TAG "{r.tagged.split()[0].decode()}")'.encode()]


def test_search_errors_are_bad(box: Transcript) -> None:
    for criteria in (
        "",
        "BOGUS",
        "FROM",
        "(FROM alice",
        "FROM alice)",
        "OR SEEN",
        "BEFORE 32-Jan-2024",
        "BEFORE yesterday",
        "LARGER big",
        "RETURN (BOGUS) ALL",
        "UID",
        "0",
    ):
        box.bad(f"SEARCH {criteria}".rstrip())
    box.bad("SEARCH " + "(" * 200 + "ALL" + ")" * 200)
    assert search(box, "ALL") == [1, 2, 3, 4]


def test_search_needs_a_selected_mailbox(imap: Transcript) -> None:
    imap.bad("SEARCH ALL")


def test_imaplib_search(server: Server, account: Account) -> None:
    with Transcript.login(server, account) as s:
        for data, flags, date in MESSAGES:
            append(s, data, flags=flags, date=date)
    client = server.imap_client(account)
    try:
        client.select("INBOX")
        assert client.search(None, "UNSEEN") == ("OK", [b"2 3 4"])
        assert client.search("UTF-8", "SUBJECT", '"Caf\xe9"'.encode())[1] == [b"3"]
        assert client.uid("SEARCH", "FROM", "alice") == ("OK", [b"1 3"])
    finally:
        client.logout()


# imaptest's search-addresses messages: plain, named, comments inside the angle brackets,
# names as comments, two addresses, groups.
ADDRESS_HEADERS = [
    b"From: user-from@domain.org\r\nTo: user-to@domain.org\r\n",
    b"From: RealFrom <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>\r\n",
    b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@domain.org>\r\n",
    b"From: user-from@domain.org (RealFrom)\r\nTo: user-to@domain.org (RealTo)\r\n",
    b"From: user-from1@domain.org, user-from2@domain.org\r\n",
    b"From: RealFrom <user-from@domain.org>\r\n"
    b"To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n"
    b"  groupname2: groupuser3@domain.org;\r\n",
    b"From: RealFrom <user-from@domain.org>\r\nTo: groupname:;\r\n",
]


@pytest.mark.parametrize(
    ("key", "found"),
    [
        ("FROM user-from@domain.org", [1, 2, 3, 4, 6, 7]),
        ("TO user-to@domain.org", [1, 2, 3, 4]),
        ("FROM realfrom", [2, 4, 6, 7]),
        ("FROM ser-fro", [1, 2, 3, 4, 5, 6, 7]),
        ("FROM user-from2", [5]),
        ("TO groupname", [6, 7]),
        ("TO groupuser3", [6]),
        ("TO groupuser4", []),
        ("FROM comment", [3]),  # the raw field still matches too
    ],
)
def test_address_keys_match_addresses_as_parsed(
    imap: Transcript, key: str, found: list[int]
) -> None:
    for i, header in enumerate(ADDRESS_HEADERS):
        append(imap, header + b"Subject: %d\r\n\r\nbody\r\n" % i)
    imap.ok("SELECT INBOX")
    assert search_numbers(imap.ok(f"SEARCH {key}")) == found
    # The ENVELOPE has the address without its comments.
    r = imap.ok("FETCH 3 ENVELOPE")
    assert b'((NIL NIL "user-from" "domain.org"))' in r.untagged[0], r


def test_search_after_another_session_expunged_says_expungeissued(
    imap: Transcript, sessions: Callable[[Account], Transcript], account: Account
) -> None:
    """A message another session expunged cannot be reported during SEARCH (RFC 3501 §7.4.1),
    and is not searched: the tagged OK says so with EXPUNGEISSUED (RFC 5530 §3), as Dovecot's
    does, and the next NOOP tells the EXPUNGE. Found by imaptest's stress mode with SEARCH on,
    which takes an answer without the message and without the code for a wrong one."""
    for i in range(1, 4):
        append(imap, message(f"expunged elsewhere {i}"))
    imap.ok("SELECT INBOX")
    other = sessions(account)
    other.ok("SELECT INBOX")
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")

    r = imap.ok("SEARCH ALL", code="EXPUNGEISSUED")
    assert search_numbers(r) == [1, 3]  # still numbered as before: 3 is still 3
    assert r.lines(b"EXPUNGE") == []
    r = imap.ok("SEARCH SUBJECT expunged", code="EXPUNGEISSUED")
    assert search_numbers(r) == [1, 3]
    assert b"* 2 EXPUNGE" in imap.ok("NOOP").untagged
    r = imap.ok("SEARCH ALL")
    assert r.code is None
    assert search_numbers(r) == [1, 2]
