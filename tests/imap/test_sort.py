"""SORT and UID SORT (RFC 5256), SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267 §3): every sort key,
REVERSE, ties, search criteria, charsets, and BAD for every malformed form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Server
from tests.imap.helpers import append, message
from tests.transcript import Response, Transcript


def _raw(*fields: str, body: str = "Hello.\r\n") -> bytes:
    return ("".join(f + "\r\n" for f in fields) + "\r\n" + body).encode()


# Five messages after a first that is expunged, so sequence numbers 1-5 are UIDs 2-6.
MESSAGES = [
    (
        _raw(
            "From: Zoe <zoe@b.test>",
            "To: amy@x.test",
            "Cc: Carl <carl@c.test>",
            "Subject: Re: [list] Budget",
            "Date: Mon, 01 Jan 2024 10:00:00 +0100",  # 09:00 UTC
            body="a" * 3000 + "\r\n",
        ),
        "05-Jan-2024 00:00:00 +0000",
    ),
    (
        _raw(
            "From: bob@b.test",
            "To: Yann <ann@y.test>",
            "Subject: budget",
            "Date: Mon, 01 Jan 2024 08:30:00 -0100",  # 09:30 UTC
            body="b\r\n",
        ),
        "03-Jan-2024 00:00:00 +0000",
    ),
    (
        # No Date: its INTERNALDATE (09:15 UTC) is its sent date.
        _raw(
            "From: =?UTF-8?Q?=C3=89mile?= <emile@e.test>",
            "To: Bea <bea@z.test>",
            "Cc: adam@a.test",
            "Subject: Fwd: Agenda",
            body="c" * 5000 + "\r\n",
        ),
        "01-Jan-2024 10:15:00 +0100",
    ),
    (
        _raw(
            "From: alice@a.test",
            "To: amy@x.test",
            "Subject: agenda (fwd)",
            "Date: Mon, 01 Jan 2024 04:00:00 -0500",  # 09:00 UTC, as the first
            body="d" * 40 + "\r\n",
        ),
        "04-Jan-2024 00:00:00 +0000",
    ),
    (
        # No To; the From mailbox is the first's in other case.
        _raw(
            "From: Zoe <ZOE@b.test>",
            "Subject: [tag] Re: budget",
            "Date: Sun, 31 Dec 2023 23:00:00 +0000",
            body="e" * 700 + "\r\n",
        ),
        "02-Jan-2024 00:00:00 +0000",
    ),
]


@pytest.fixture(scope="module")
def box(server: Server) -> Iterator[Transcript]:
    """One session for the module (SORT changes nothing), INBOX selected."""
    s = Transcript.login(server, server.account())
    append(s, message("gone"), flags="\\Deleted")
    for data, date in MESSAGES:
        append(s, data, date=date)
    s.ok("SELECT INBOX")
    s.ok("EXPUNGE")
    yield s
    s.close()


def _sort_line(r: Response, keyword: bytes = b"SORT") -> bytes:
    lines = r.lines(keyword)
    assert len(lines) == 1, r
    return lines[0]


def sort(s: Transcript, command: str) -> list[int]:
    line = _sort_line(s.ok(command))
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # Sent dates in UTC: 5 (Dec 31), 1 and 4 (09:00, equal: mailbox order), 3 (no Date:
        # its INTERNALDATE 09:15), 2 (09:30).
        ("DATE", [5, 1, 4, 3, 2]),
        ("REVERSE DATE", [2, 3, 1, 4, 5]),  # equal keys stay in mailbox order
        ("ARRIVAL", [3, 5, 2, 4, 1]),
        ("REVERSE ARRIVAL", [1, 4, 2, 5, 3]),
        # Base subjects: AGENDA (3, 4), BUDGET (1, 2, 5).
        ("SUBJECT", [3, 4, 1, 2, 5]),
        ("SUBJECT REVERSE DATE", [3, 4, 2, 1, 5]),
        ("REVERSE SUBJECT", [1, 2, 5, 3, 4]),
        # First From mailbox, case-insensitive: ALICE, BOB, EMILE, ZOE (1 and 5).
        ("FROM", [4, 2, 3, 1, 5]),
        ("FROM ARRIVAL", [4, 2, 3, 5, 1]),
        ("REVERSE FROM", [1, 5, 3, 2, 4]),
        # First To mailbox: none (5), AMY (1, 4), ANN, BEA.
        ("TO", [5, 1, 4, 2, 3]),
        # First Cc mailbox: none (2, 4, 5), ADAM, CARL.
        ("CC", [2, 4, 5, 3, 1]),
        # Display names, else the address: ALICE@A.TEST, BOB@B.TEST, ZOE (1, 5), then "Émile":
        # i;ascii-casemap leaves a non-ASCII letter as it is, after every ASCII one.
        ("DISPLAYFROM", [4, 2, 1, 5, 3]),
        ("REVERSE DISPLAYFROM", [3, 1, 5, 2, 4]),
        # "" (5), AMY@X.TEST (1, 4), BEA, YANN (whose address is ann@).
        ("DISPLAYTO", [5, 1, 4, 3, 2]),
    ],
)
def test_sort_keys(box: Transcript, criteria: str, expected: list[int]) -> None:
    assert sort(box, f"SORT ({criteria}) UTF-8 ALL") == expected


def test_size_orders_by_rfc822_size(box: Transcript) -> None:
    sizes = [len(data) for data, _ in MESSAGES]
    by_size = sorted(range(1, 6), key=lambda seq: sizes[seq - 1])
    assert by_size == [2, 4, 5, 1, 3]
    assert sort(box, "SORT (SIZE) UTF-8 ALL") == by_size
    assert sort(box, "SORT (REVERSE SIZE) US-ASCII ALL") == by_size[::-1]


def test_uid_sort_answers_uids(box: Transcript) -> None:
    assert sort(box, "UID SORT (DATE) UTF-8 ALL") == [6, 2, 5, 4, 3]
    assert sort(box, "UID SORT (SUBJECT) utf-8 UID 2:4") == [4, 2, 3]


def test_search_criteria_choose_the_messages(box: Transcript) -> None:
    assert sort(box, "SORT (DATE) UTF-8 FROM zoe") == [5, 1]
    assert sort(box, "SORT (REVERSE ARRIVAL) UTF-8 2:4") == [4, 2, 3]
    assert sort(box, "SORT (SUBJECT) UTF-8 OR TO amy CC adam") == [3, 4, 1]
    assert sort(box, "SORT (DATE) UTF-8 SUBJECT budget LARGER 1000") == [1]
    r = box.ok("SORT (DATE) UTF-8 FROM nobody")
    assert _sort_line(r) == b"* SORT"


def test_modseq_criterion_reports_the_highest_modseq(box: Transcript) -> None:
    r = box.ok("SORT (REVERSE DATE) UTF-8 MODSEQ 1")
    line = _sort_line(r)
    assert line.startswith(b"* SORT 2 3 1 4 5 (MODSEQ ")


def test_esort_return_options(box: Transcript) -> None:
    r = box.ok("SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
    # RFC 5267 §3: MIN and MAX are the first and last in sort order; ALL keeps that order.
    tag = r.tagged.split()[0].decode()
    assert r.lines(b"ESEARCH") == [
        f'* ESEARCH (TAG "{tag}") MIN 3 MAX 5 ALL 3:4,1:2,5 COUNT 5'.encode()
    ]
    assert r.lines(b"SORT") == []
    r = box.ok("UID SORT RETURN () (SUBJECT) UTF-8 ALL")
    tag = r.tagged.split()[0].decode()
    assert r.lines(b"ESEARCH") == [f'* ESEARCH (TAG "{tag}") UID ALL 4:5,2:3,6'.encode()]
    r = box.ok("SORT RETURN (MIN COUNT) (DATE) UTF-8 FROM nobody")
    tag = r.tagged.split()[0].decode()
    assert r.lines(b"ESEARCH") == [f'* ESEARCH (TAG "{tag}") COUNT 0'.encode()]


def test_sort_return_save_keeps_the_set_for_dollar(box: Transcript) -> None:
    """SEARCHRES with ESORT: RETURN (SAVE) keeps the messages found (as a set, which "$" gives
    back in mailbox order); with MIN or MAX alone, the first or last in sort order."""
    r = box.ok("SORT RETURN (SAVE) (SUBJECT) UTF-8 ALL")
    assert r.lines(b"ESEARCH") == []
    assert r.lines(b"SORT") == []
    r = box.ok("SEARCH $")
    assert r.lines(b"SEARCH") == [b"* SEARCH 1 2 3 4 5"]
    r = box.ok("SORT RETURN (SAVE MIN) (SUBJECT) UTF-8 ALL")
    tag = r.tagged.split()[0].decode()
    assert r.lines(b"ESEARCH") == [f'* ESEARCH (TAG "{tag}") MIN 3'.encode()]
    r = box.ok("SEARCH $")
    assert r.lines(b"SEARCH") == [b"* SEARCH 3"]


def test_unknown_charset_is_badcharset(box: Transcript) -> None:
    r = box.no("SORT (DATE) KOI8-R ALL", code="BADCHARSET")
    assert r.code == "BADCHARSET (UTF-8 US-ASCII)"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("SORT DATE UTF-8 ALL", b"Sort criteria must be a parenthesized list"),
        ("SORT () UTF-8 ALL", b"Empty sort criteria"),
        ("SORT (REVERSE) UTF-8 ALL", b"REVERSE needs a sort key"),
        ("SORT (REVERSE REVERSE DATE) UTF-8 ALL", b"REVERSE needs a sort key"),
        ("SORT (DATE NAME) UTF-8 ALL", b"Unknown sort key"),
        ("SORT (DATE", b"Missing argument"),
        ("SORT (DATE)", b"Missing charset"),
        ("SORT (DATE) UTF-8", b"Missing search criteria"),
        ("SORT (DATE) UTF-8 NOSUCHKEY", b"Unknown search key"),
        ("SORT (DATE) ALL", b"Missing search criteria"),
        ("SORT", b"Missing argument"),
        ("SORT RETURN (PARTIAL 1:2 ALL) (DATE) UTF-8 ALL", b"PARTIAL and ALL conflict"),
        ("SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL", b"Expected a number"),
        ("SORT RETURN MIN (DATE) UTF-8 ALL", b"Expected ("),
        ("UID SORT (DATE) UTF-8 (ALL", b"Missing )"),
        ("SORT (DATE)(SIZE) UTF-8 ALL", b"Expected a space"),
    ],
)
def test_malformed_sort_is_bad(box: Transcript, command: str, reason: bytes) -> None:
    r = box.bad(command)
    assert reason in r.tagged, r.tagged


def test_sort_needs_a_selected_mailbox(server: Server) -> None:
    with Transcript.login(server, server.account()) as s:
        s.bad("SORT (DATE) UTF-8 ALL")
