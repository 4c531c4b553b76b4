"""SEARCH evaluation over a small fake message: every key, RFC 3501 §6.4.4 semantics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mailgate.imap.matching import Needs, matches, needs
from mailgate.imap.syntax.commands import parse_request
from mailgate.imap.syntax.values import (
    All,
    And,
    BodyKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    Search,
    SearchKey,
    SeqKey,
    SeqRange,
    SequenceSet,
    SizeKey,
    TextKey,
    UidKey,
)

_TOKYO = timezone(timedelta(hours=9))
_NEW_YORK = timezone(timedelta(hours=-5))


@dataclass
class FakeMessage:
    """Implements the SearchMessage protocol and counts the expensive calls."""

    seq: int = 3
    uid: int = 42
    flags: frozenset[str] = frozenset({"\\Seen", "$Forwarded"})
    # 23:30 in Tokyo on 1 Feb is still 1 Feb for BEFORE/ON/SINCE (the date as given).
    internaldate: datetime = datetime(2024, 2, 1, 23, 30, tzinfo=_TOKYO)
    size: int = 2048
    modseq: int = 17
    # 20:00 on 31 Jan in New York is already 1 Feb in UTC; SENT* use the header's own date.
    sent_date: datetime | None = datetime(2024, 1, 31, 20, 0, tzinfo=_NEW_YORK)
    headers: dict[str, list[str]] = field(
        default_factory=lambda: {
            "from": ['"Alice Ärger" <alice@example.test>'],
            "to": ["bob@example.test", "Carol <carol@example.test>"],
            "cc": [],
            "subject": ["Quarterly REPORT"],
            "x-empty": [""],
        }
    )
    body: str = "Hello Bob,\r\nthe numbers are in. STRASSE\r\n"
    calls: Counter[str] = field(default_factory=Counter)

    def header_values(self, name: str) -> list[str]:
        self.calls["header_values"] += 1
        return self.headers.get(name.lower(), [])

    def header_text(self) -> str:
        self.calls["header_text"] += 1
        return "".join(f"{k}: {v}\r\n" for k, vs in self.headers.items() for v in vs)

    def body_text(self) -> str:
        self.calls["body_text"] += 1
        return self.body


def key(program: str) -> SearchKey:
    request = parse_request([b"t SEARCH " + program.encode()])
    assert isinstance(request.args, Search)
    return request.args.key


def check(program: str, msg: FakeMessage | None = None, seqs: int = 10, uids: int = 100) -> bool:
    return matches(key(program), msg or FakeMessage(), seqs, uids)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("ALL", True),
        # flags
        ("SEEN", True),
        ("UNSEEN", False),
        ("ANSWERED", False),
        ("UNANSWERED", True),
        ("DELETED", False),
        ("UNDELETED", True),
        ("DRAFT", False),
        ("UNDRAFT", True),
        ("FLAGGED", False),
        ("UNFLAGGED", True),
        ("KEYWORD $Forwarded", True),
        ("KEYWORD $forwarded", True),  # flag names compare case-insensitively
        ("UNKEYWORD $Forwarded", False),
        ("KEYWORD $Junk", False),
        ("UNKEYWORD $Junk", True),
        ("RECENT", False),  # no \Recent in the flag set
        ("OLD", True),
        ("NEW", False),
        # header fields: case-insensitive substrings of decoded values
        ("FROM alice", True),
        ('FROM "ärger"', True),  # casefolded, non-ASCII
        ('FROM "Alice Ä"', True),
        ("FROM example.test>", True),
        ("FROM bob", False),
        ("TO carol", True),
        ("TO BOB@EXAMPLE", True),
        ("CC bob", False),
        ("BCC bob", False),
        ('CC ""', False),  # no Cc field at all
        ('TO ""', True),
        ("SUBJECT report", True),
        ("SUBJECT quarterly SUBJECT report", True),
        ('SUBJECT "quarterly report"', True),
        ("HEADER Subject QUARTERLY", True),
        ('HEADER X-Empty ""', True),  # RFC 3501: "" matches any message having the field
        ("HEADER X-Empty x", False),
        ('HEADER X-Missing ""', False),
        # body and text
        ("BODY numbers", True),
        ("BODY strasse", True),
        ('BODY "straße"', True),  # casefold: "ß" matches "SS"
        ("BODY alice", False),
        ("TEXT alice", True),  # in the header
        ("TEXT numbers", True),  # in the body
        ("TEXT zebra", False),
        # internal date: the calendar date as given, timezone ignored
        ("ON 1-Feb-2024", True),
        ("ON 2-Feb-2024", False),
        ("BEFORE 1-Feb-2024", False),  # strictly before
        ("BEFORE 2-Feb-2024", True),
        ("SINCE 1-Feb-2024", True),  # on or after
        ("SINCE 2-Feb-2024", False),
        # sent date: the Date: header's own calendar date
        ("SENTON 31-Jan-2024", True),
        ("SENTON 1-Feb-2024", False),
        ("SENTBEFORE 31-Jan-2024", False),
        ("SENTBEFORE 1-Feb-2024", True),
        ("SENTSINCE 31-Jan-2024", True),
        ("SENTSINCE 1-Feb-2024", False),
        # size: strict comparisons
        ("LARGER 2047", True),
        ("LARGER 2048", False),
        ("SMALLER 2049", True),
        ("SMALLER 2048", False),
        # sequence numbers and UIDs; "*" is the largest
        ("3", True),
        ("1:2,4:*", False),
        ("2:4", True),
        ("4:2", True),
        ("*", False),
        ("UID 42", True),
        ("UID 1:41,43:*", False),
        ("UID 50:30", True),
        ("UID *", False),
        # MODSEQ: equal to or greater than (RFC 7162 §3.1.5)
        ("MODSEQ 17", True),
        ("MODSEQ 16", True),
        ("MODSEQ 18", False),
        # combinations
        ("SEEN FROM alice", True),
        ("SEEN FROM bob", False),
        ("OR FROM bob TO bob", True),
        ("OR FROM bob SUBJECT zebra", False),
        ("NOT FROM bob", True),
        ("NOT (SEEN FROM alice)", False),
        ("OR OR DRAFT FLAGGED (SEEN NOT DELETED)", True),
        ("(SEEN) (UID 42) (3)", True),
    ],
)
def test_matches(program: str, expected: bool) -> None:
    assert check(program) is expected


def test_star_is_the_largest_value() -> None:
    last = FakeMessage(seq=10, uid=100)
    assert check("*", last, seqs=10, uids=100)
    assert check("UID *", last, seqs=10, uids=100)
    assert check("9:*", last, seqs=10, uids=100)
    assert not check("*", last, seqs=11, uids=101)
    # RFC 3501 §6.4.8: UID n:* with n beyond the largest UID still names the largest.
    assert check("UID 500:*", last, seqs=10, uids=100)


def test_sent_keys_never_match_without_a_date() -> None:
    msg = FakeMessage(sent_date=None)
    for program in ("SENTON 31-Jan-2024", "SENTBEFORE 1-Jan-2100", "SENTSINCE 1-Jan-1900"):
        assert not check(program, msg)
        assert check("NOT " + program, msg)


def test_internal_date_uses_its_own_timezone() -> None:
    utc_evening = FakeMessage(internaldate=datetime(2024, 2, 1, 23, 59, tzinfo=UTC))
    assert check("ON 1-Feb-2024", utc_evening)
    tokyo_morning = FakeMessage(internaldate=datetime(2024, 2, 2, 0, 1, tzinfo=_TOKYO))
    assert check("ON 2-Feb-2024", tokyo_morning)  # 2024-02-01 15:01 UTC, but 2 Feb as given


def test_new_is_recent_and_unseen() -> None:
    fresh = FakeMessage(flags=frozenset({"\\Recent"}))
    assert check("NEW", fresh)
    assert check("RECENT", fresh)
    assert not check("OLD", fresh)
    assert not check("NEW", FakeMessage(flags=frozenset({"\\Recent", "\\Seen"})))


def test_texts_are_fetched_once_per_evaluation() -> None:
    msg = FakeMessage()
    # Or has to evaluate every key to answer False, so each text is asked for.
    assert not matches(
        Or((TextKey("zebra"), TextKey("zebra"), BodyKey("x"), HeaderKey("from", "q"))), msg, 1, 1
    )
    assert msg.calls == Counter(header_text=1, body_text=1, header_values=1)
    msg.calls.clear()
    assert check("FROM alice FROM example OR TO carol TO carol", msg)
    assert msg.calls == Counter(header_values=2)  # "from" once, "to" once


def test_cheap_keys_touch_no_text() -> None:
    msg = FakeMessage()
    assert check("SEEN UID 42 LARGER 1 MODSEQ 1 SINCE 1-Jan-2000 SENTSINCE 1-Jan-2000 3", msg)
    assert msg.calls == Counter()


def test_long_or_chain_evaluates() -> None:
    # Built directly: longer than the parser lets a program be, to show evaluation never
    # recurses along a chain.
    tree = Or(tuple(UidKey(SequenceSet((SeqRange(n, n),))) for n in range(1, 5002)))
    assert matches(tree, FakeMessage(uid=4999), 10, 6000)
    assert not matches(tree, FakeMessage(uid=5002), 10, 6000)


@pytest.mark.parametrize(
    ("program", "wanted"),
    [
        ("ALL", Needs(headers=False, body=False)),
        ("SEEN UID 1:* LARGER 5 SINCE 1-Jan-2020 SENTON 1-Jan-2020", Needs(False, False)),
        ("MODSEQ 5 1:3 KEYWORD x NEW", Needs(False, False)),
        ("FROM x", Needs(True, False)),
        ("HEADER X-Foo y", Needs(True, False)),
        ("BODY x", Needs(False, True)),
        ("TEXT x", Needs(True, True)),
        ("NOT BODY x", Needs(False, True)),
        ("OR SUBJECT a (SEEN BODY b)", Needs(True, True)),
        ("OR SEEN (DRAFT NOT CC x)", Needs(True, False)),
    ],
)
def test_needs(program: str, wanted: Needs) -> None:
    assert needs(key(program)) == wanted


def test_trees_built_by_hand() -> None:
    every = SequenceSet((SeqRange(1, None),))
    tree = And(
        (
            Not(FlagKey("\\Deleted", True)),
            Or((HeaderKey("from", "alice"), BodyKey("nothing"))),
            DateKey("internal", "since", date(2024, 1, 1)),
            SizeKey("smaller", 10_000),
            SeqKey(every),
            UidKey(every),
            ModSeqKey(1),
            All(),
        )
    )
    assert matches(tree, FakeMessage(), 10, 100)
    assert needs(tree) == Needs(headers=True, body=True)


def test_not_a_key() -> None:
    with pytest.raises(TypeError):
        matches("SEEN", FakeMessage(), 1, 1)  # type: ignore[arg-type]
