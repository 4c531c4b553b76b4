"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES and REFS over reference chains,
broken and looping references, duplicate and missing Message-IDs, subjects that join threads;
a deeply nested thread; BAD for every malformed form."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from email.utils import format_datetime

import pytest

from tests.harness import Server
from tests.imap.helpers import append, message
from tests.transcript import Response, Transcript


def _raw(*fields: str) -> bytes:
    return ("".join(f + "\r\n" for f in fields) + "From: a@t.test\r\n\r\nHi.\r\n").encode()


# Ten messages after a first that is expunged, so sequence numbers 1-10 are UIDs 2-11.
MESSAGES = [
    _raw("Message-ID: <a@t>", "Subject: Plan", "Date: Mon, 01 Jan 2024 10:00:00 +0000"),
    _raw(
        "Message-ID: <b@t>",
        "In-Reply-To: <a@t>",
        "References: <a@t>",
        "Subject: Re: Plan",
        "Date: Mon, 01 Jan 2024 11:00:00 +0000",
    ),
    _raw(
        "Message-ID: <c@t>",
        "References: <a@t> <b@t>",
        "Subject: Re: Plan",
        "Date: Mon, 01 Jan 2024 13:00:00 +0100",  # 12:00 UTC
    ),
    _raw(
        "Message-ID: <d@t>",
        "References: <a@t>",
        "Subject: RE: Plan",
        "Date: Mon, 01 Jan 2024 05:30:00 -0500",  # 10:30 UTC: before 2, its sibling
    ),
    # 5 and 6 reply to a message the mailbox lacks: a dummy holds them together.
    _raw(
        "Message-ID: <e@t>",
        "References: <missing@t>",
        "Subject: Other",
        "Date: Mon, 01 Jan 2024 09:00:00 +0000",
    ),
    _raw(
        "Message-ID: <f@t>",
        "References: <missing@t>",
        "Subject: Re: Other",
        "Date: Mon, 01 Jan 2024 09:30:00 +0000",
    ),
    # No Message-ID, no references, no Date (INTERNALDATE 08:00 UTC): a reply by its subject.
    _raw("Subject: Re: [team] Plan"),
    # The first's Message-ID again: a message of its own.
    _raw("Message-ID: <a@t>", "Subject: Dup", "Date: Mon, 01 Jan 2024 13:00:00 +0000"),
    # In-Reply-To only.
    _raw(
        "Message-ID: <g@t>",
        "In-Reply-To: <c@t>",
        "Subject: Re: Plan",
        "Date: Mon, 01 Jan 2024 12:30:00 +0000",
    ),
    # References itself and loops: a thread of its own.
    _raw(
        "Message-ID: <h@t>",
        "References: <h@t> <i@t> <h@t>",
        "Subject: Loop",
        "Date: Mon, 01 Jan 2024 14:00:00 +0000",
    ),
]


@pytest.fixture(scope="module")
def box(server: Server) -> Iterator[Transcript]:
    """One session for the module (THREAD changes nothing), INBOX selected."""
    s = Transcript.login(server, server.account())
    append(s, message("gone"), flags="\\Deleted")
    for data in MESSAGES:
        append(s, data, date="01-Jan-2024 08:00:00 +0000")
    s.ok("SELECT INBOX")
    s.ok("EXPUNGE")
    yield s
    s.close()


def _thread_line(r: Response) -> bytes:
    lines = r.lines(b"THREAD")
    assert len(lines) == 1, r
    return lines[0]


def thread(s: Transcript, command: str) -> bytes:
    return _thread_line(s.ok(command))


def test_references(box: Transcript) -> None:
    # 1's replies by date: 7 (joined by its subject, 08:00), 4 (10:30), 2 (11:00) with its
    # reply 3 and 3's reply 9. 5 and 6 under a dummy for <missing@t>, first by 5's date.
    assert thread(box, "THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD ((5)(6))(1 (7)(4)(2 3 9))(8)(10)"
    )


def test_refs_does_not_join_by_subject_and_orders_threads_by_their_newest(
    box: Transcript,
) -> None:
    # 7 stays alone (08:00); the dummy's newest is 09:30, 1's thread's 12:30 (9).
    assert thread(box, "THREAD REFS UTF-8 ALL") == b"* THREAD (7)((5)(6))(1 (4)(2 3 9))(8)(10)"


def test_orderedsubject(box: Transcript) -> None:
    # PLAN: 7 (08:00) first, then by date 1, 4, 2, 3, 9; OTHER: 5 then 6; DUP; LOOP.
    assert thread(box, "THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (7 (1)(4)(2)(3)(9))(5 6)(8)(10)"
    )


def test_uid_thread_answers_uids(box: Transcript) -> None:
    assert thread(box, "UID THREAD REFERENCES US-ASCII ALL") == (
        b"* THREAD ((6)(7))(2 (8)(5)(3 4 10))(9)(11)"
    )


def test_search_criteria_choose_the_messages(box: Transcript) -> None:
    # Without 1, 8 (the other <a@t>) is the message <a@t> names: 4 and 3 (under the missing
    # <b@t>) are its replies, and 7 keeps its own thread ("Dup" is not "Plan").
    assert thread(box, "THREAD REFERENCES UTF-8 3:10") == b"* THREAD (7)((5)(6))(8 (4)(3 9))(10)"
    # Without 8 too, a dummy stands for <a@t> with 4 and 3 (which takes the place of the dummy
    # for <b@t>); 7 joins it by subject, as a dummy gathers what a subject shares, and the
    # thread now comes first, by 7's date.
    assert thread(box, "THREAD REFERENCES UTF-8 3:7,9:10") == b"* THREAD ((7)(4)(3 9))((5)(6))(10)"
    assert thread(box, "THREAD ORDEREDSUBJECT UTF-8 SUBJECT other") == b"* THREAD (5 6)"
    r = box.ok("THREAD REFERENCES UTF-8 SUBJECT nothing")
    assert _thread_line(r) == b"* THREAD"


def test_a_deeply_nested_thread(server: Server) -> None:
    """A comb: each message of a chain of 200 has two replies, the next of the chain and a
    leaf, so the answer nests 200 deep (tests/unit/test_threading.py goes past Python's
    recursion limit without a server)."""
    count = 200
    start = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)

    def date(minutes: int) -> str:
        return "Date: " + format_datetime(start + datetime.timedelta(minutes=minutes))

    raws = []
    for i in range(1, count + 1):
        parent = f"References: <s{i - 1}@t>" if i > 1 else "X-First: yes"
        raws.append(_raw(f"Message-ID: <s{i}@t>", parent, "Subject: chain", date(2 * i)))
        raws.append(
            _raw(f"Message-ID: <l{i}@t>", f"References: <s{i}@t>", "Subject: x", date(2 * i + 1))
        )
    with Transcript.login(server, server.account()) as s:
        # One MULTIAPPEND with LITERAL+, not a round trip per message.
        tag = s.next_tag()
        literals = b"".join(b" {%d+}\r\n" % len(raw) + raw for raw in raws)
        s.send(tag.encode() + b" APPEND INBOX" + literals + b"\r\n")
        assert s.finish(tag).status == "OK"
        s.ok("SELECT INBOX")
        # Spine message i is sequence 2i-1, its leaf 2i; a leaf is older than the next spine.
        expected = f"{2 * count - 1} {2 * count}"
        for i in range(count - 1, 0, -1):
            expected = f"{2 * i - 1} ({2 * i})({expected})"
        assert thread(s, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (" + expected.encode() + b")"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("THREAD", b"Missing argument"),
        ("THREAD REFERENCES", b"Missing charset"),
        ("THREAD REFERENCES UTF-8", b"Missing search criteria"),
        ("THREAD REFERENCES ALL", b"Missing search criteria"),
        ("THREAD JWZ UTF-8 ALL", b"Unknown threading algorithm"),
        ("THREAD (REFERENCES) UTF-8 ALL", b"Expected an atom"),
        ("THREAD REFERENCES UTF-8 NOSUCHKEY", b"Unknown search key"),
        ("UID THREAD REFS UTF-8 (ALL", b"Missing )"),
    ],
)
def test_malformed_thread_is_bad(box: Transcript, command: str, reason: bytes) -> None:
    r = box.bad(command)
    assert reason in r.tagged, r.tagged


def test_unknown_charset_is_badcharset(box: Transcript) -> None:
    r = box.no("THREAD REFS ISO-2022-JP ALL", code="BADCHARSET")
    assert r.code == "BADCHARSET (UTF-8 US-ASCII)"


def test_thread_needs_a_selected_mailbox(server: Server) -> None:
    with Transcript.login(server, server.account()) as s:
        s.bad("THREAD REFERENCES UTF-8 ALL")
