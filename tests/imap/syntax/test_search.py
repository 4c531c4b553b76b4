"""The SEARCH grammar (syntax/search.py): every key, RETURN and CHARSET, nesting limits."""

from __future__ import annotations

from datetime import date

import pytest

from mailgate.imap.matching import needs
from mailgate.imap.syntax.search import MAX_SEARCH_DEPTH, MAX_SEARCH_KEYS
from mailgate.imap.syntax.values import (
    AgeKey,
    All,
    And,
    BodyKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    Request,
    Search,
    SeqKey,
    SequenceSet,
    SizeKey,
    TextKey,
    UidKey,
)
from tests.imap.syntax.helpers import args, error, parse, seqset

_SAVED = SequenceSet((), saved=True)


def search(text: bytes) -> Search:
    result = args(b"a SEARCH " + text)
    assert isinstance(result, Search)
    return result


def key_of(text: bytes) -> object:
    return search(text).key


_SEEN, _UNSEEN = FlagKey("\\Seen", True), FlagKey("\\Seen", False)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (b"ALL", All()),
        (b"answered", FlagKey("\\Answered", True)),
        (b"UNANSWERED", FlagKey("\\Answered", False)),
        (b"DELETED UNDELETED", And((FlagKey("\\Deleted", True), FlagKey("\\Deleted", False)))),
        (b"DRAFT UNDRAFT", And((FlagKey("\\Draft", True), FlagKey("\\Draft", False)))),
        (b"FLAGGED UNFLAGGED", And((FlagKey("\\Flagged", True), FlagKey("\\Flagged", False)))),
        (b"SEEN UNSEEN", And((_SEEN, _UNSEEN))),
        (b"RECENT", FlagKey("\\Recent", True)),
        (b"OLD", FlagKey("\\Recent", False)),
        (b"NEW", And((FlagKey("\\Recent", True), _UNSEEN))),
        (b"KEYWORD $Junk", FlagKey("$Junk", True)),
        (b"UNKEYWORD NonJunk", FlagKey("NonJunk", False)),
        (b"FROM alice", HeaderKey("from", "alice")),
        (b'TO "Bob Smith"', HeaderKey("to", "Bob Smith")),
        (b"CC x BCC y", And((HeaderKey("cc", "x"), HeaderKey("bcc", "y")))),
        (b'HEADER X-Spam ""', HeaderKey("x-spam", "")),
        (b"HEADER Message-ID <a@b>", HeaderKey("message-id", "<a@b>")),
        (b"BODY hello", BodyKey("hello")),
        (b'TEXT "\xc3\xa4"', TextKey("ä")),
        (b"BEFORE 1-Feb-2024", DateKey("internal", "before", date(2024, 2, 1))),
        (b'ON "01-feb-2024"', DateKey("internal", "on", date(2024, 2, 1))),
        (b"SINCE 29-Feb-2024", DateKey("internal", "since", date(2024, 2, 29))),
        (b"SENTBEFORE 1-Jan-2000", DateKey("sent", "before", date(2000, 1, 1))),
        (b"SENTON 1-Jan-2000", DateKey("sent", "on", date(2000, 1, 1))),
        (b"SAVEDBEFORE 1-Jan-2000", DateKey("saved", "before", date(2000, 1, 1))),
        (b"SAVEDON 1-Jan-2000", DateKey("saved", "on", date(2000, 1, 1))),
        (b"SAVEDSINCE 1-Jan-2000", DateKey("saved", "since", date(2000, 1, 1))),
        (b"SAVEDATESUPPORTED", All()),
        (b"OLDER 3600", AgeKey("older", 3600)),
        (b"younger 60", AgeKey("younger", 60)),
        (b"$", SeqKey(_SAVED)),
        (b"UID $ NOT $", And((UidKey(_SAVED), Not(SeqKey(_SAVED))))),
        (b"SENTSINCE 1-Jan-2000", DateKey("sent", "since", date(2000, 1, 1))),
        (b"LARGER 100", SizeKey("larger", 100)),
        (b"SMALLER 0", SizeKey("smaller", 0)),
        (b"LARGER 9223372036854775807", SizeKey("larger", 2**63 - 1)),  # number64, RFC 9051
        (b"UID 1:*", UidKey(seqset((1, None)))),
        (b"1,3:*", SeqKey(seqset((1, 1), (3, None)))),
        (b"*", SeqKey(seqset((None, None)))),
        (b"MODSEQ 620162338", ModSeqKey(620162338)),
        (b'MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338)),
        (b"NOT SEEN", Not(_SEEN)),
        (b"NOT NOT SEEN", Not(Not(_SEEN))),
        (b"OR SEEN DRAFT", Or((_SEEN, FlagKey("\\Draft", True)))),
        (b"(SEEN)", _SEEN),
        (b"((((SEEN))))", _SEEN),
        (
            b"(SEEN DRAFT) (FLAGGED)",
            And((_SEEN, FlagKey("\\Draft", True), FlagKey("\\Flagged", True))),
        ),
        (
            b"OR OR OR FROM a FROM b FROM c FROM d",  # left-nested chain, flattened
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"OR FROM a OR FROM b OR FROM c FROM d",  # right-nested chain, flattened
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"OR (OR FROM a FROM b) (OR FROM c FROM d)",
            Or(tuple(HeaderKey("from", x) for x in "abcd")),
        ),
        (
            b"NOT OR SEEN (DRAFT NOT FLAGGED) 1:2",
            And(
                (
                    Not(
                        Or(
                            (
                                _SEEN,
                                And((FlagKey("\\Draft", True), Not(FlagKey("\\Flagged", True)))),
                            )
                        )
                    ),
                    SeqKey(seqset((1, 2))),
                )
            ),
        ),
        (b"OR NOT SEEN UID 5", Or((Not(_SEEN), UidKey(seqset((5, 5)))))),
        (b"ALL ", All()),  # trailing space tolerated
    ],
)
def test_search_keys(text: bytes, key: object) -> None:
    assert key_of(text) == key


def test_search_key_names_are_case_insensitive() -> None:
    assert key_of(b"or Seen not fRoM x") == Or((_SEEN, Not(HeaderKey("from", "x"))))
    assert key_of(b"uid 1 larger 5 sentsince 1-JAN-2020") == And(
        (UidKey(seqset((1, 1))), SizeKey("larger", 5), DateKey("sent", "since", date(2020, 1, 1)))
    )


def test_search_literals_and_charset() -> None:
    request = parse(b"a UID SEARCH CHARSET UTF-8 SUBJECT {6}", "Grüß".encode(), b" SEEN")
    assert request == Request(
        "a", "SEARCH", True, Search("UTF-8", And((HeaderKey("subject", "Grüß"), _SEEN)), None)
    )
    assert search(b"charset us-ascii ALL") == Search("US-ASCII", All(), None)
    assert search(b'CHARSET "utf-8" ALL').charset == "UTF-8"
    assert search(b"ALL").charset is None


@pytest.mark.parametrize(
    ("text", "returns"),
    [
        (b"RETURN (MIN MAX) ALL", ("MIN", "MAX")),
        (b"return (count all count) ALL", ("COUNT", "ALL")),
        (b"RETURN () ALL", ("ALL",)),  # RFC 4731 §3.1: empty means ALL
        (b"RETURN (COUNT) CHARSET UTF-8 ALL", ("COUNT",)),
        (b"RETURN (SAVE) ALL", ("SAVE",)),  # RFC 5182
        (b"RETURN (SAVE MIN) ALL", ("SAVE", "MIN")),
    ],
)
def test_search_return(text: bytes, returns: tuple[str, ...]) -> None:
    assert search(text).returns == returns
    assert search(text).key == All()


@pytest.mark.parametrize(
    ("text", "message", "code"),
    [
        (b"CHARSET ISO-8859-1 ALL", "Unsupported charset", "BADCHARSET"),
        (b"CHARSET \xff ALL", "Expected a string", None),
        (b'CHARSET "\xff" ALL', "Unsupported charset", "BADCHARSET"),
        (b"CHARSET UTF-8", "Missing argument", None),
        (b"RETURN (SAVE FOO) ALL", "Unknown RETURN option", None),
        (b"OLDER", "Missing argument", None),
        (b"OLDER 0", "Expected a non-zero number", None),
        (b"YOUNGER x", "Expected a number", None),
        (b"SAVEDBEFORE 2024-01-01", "Invalid date", None),
        (b"SAVEDON", "Missing argument", None),
        (b"$,1", "Unexpected characters at end of command", None),
        (b"RETURN (PARTIAL 1) ALL", 'Expected ":" in the PARTIAL range', None),
        (b"RETURN (PARTIAL 1:*) ALL", "Expected a number", None),
        (b"RETURN (PARTIAL *:1) ALL", "Expected a number", None),
        (b"RETURN (PARTIAL 0:1) ALL", "Expected a non-zero number", None),
        (b"RETURN (PARTIAL) ALL", "Expected a space", None),
        (b"RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL", "PARTIAL given twice", None),
        (b"RETURN (PARTIAL 1:2 ALL) ALL", "RETURN options PARTIAL and ALL conflict", None),
        (b"RETURN (SAVE PARTIAL 1:2) ALL", "RETURN options PARTIAL and SAVE conflict", None),
        (b"RETURN (UPDATE PARTIAL 1:2) ALL", "RETURN options PARTIAL and UPDATE conflict", None),
        (b"RETURN (UPDATE SAVE) ALL", "RETURN options UPDATE and SAVE conflict", None),
        (b"RETURN ALL", "Expected (", None),
        (b"ALL CHARSET UTF-8", "Unknown search key", None),
        (b"", "Missing argument", None),
        (b"FOO", "Unknown search key", None),
        (b"()", "Expected an atom", None),
        (b"(SEEN", "Missing )", None),
        (b"(SEEN ", "Missing )", None),
        (b"SEEN)", "Unexpected characters at end of command", None),
        (b"NOT", "Missing argument", None),
        (b"OR SEEN", "Missing argument", None),
        (b"SEEN  DRAFT", "Expected an atom", None),
        (b"FROM", "Missing argument", None),
        (b"HEADER X", "Missing argument", None),
        (b'HEADER "" x', "Empty header field name", None),
        (b'SUBJECT "\xff"', "String is not valid UTF-8", None),
        (b"KEYWORD \\Seen", "Expected an atom", None),
        (b"BEFORE 2024-01-01", "Invalid date", None),
        (b"BEFORE 30-Feb-2024", "Invalid date", None),
        (b"BEFORE 1-Foo-2024", "Invalid date", None),
        (b'BEFORE "1-Jan-2024 "', "Invalid date", None),
        (b"BEFORE 1-Jan-2024x", "Unexpected characters at end of command", None),
        (b"LARGER -1", "Expected a number", None),
        (b"LARGER 9223372036854775808", "Number out of range", None),
        (b"UID", "Missing argument", None),
        (b"UID x", "Expected a sequence set", None),
        (b"0", "Expected a non-zero number", None),
        (b"UID $:4", "Unexpected characters at end of command", None),
        (b'MODSEQ "/flags/\\\\draft" foo 1', "Invalid MODSEQ entry type", None),
        (b"MODSEQ x", "Expected a number", None),
    ],
)
def test_search_errors(text: bytes, message: str, code: str | None) -> None:
    err = error(b"a SEARCH " + text)
    assert (err.tag, err.message, err.code) == ("a", message, code)


def test_search_nesting_limit() -> None:
    deep = MAX_SEARCH_DEPTH
    assert key_of(b"(" * deep + b"SEEN" + b")" * deep) == _SEEN
    assert error(b"a SEARCH " + b"(" * (deep + 1) + b"SEEN" + b")" * (deep + 1)).message == (
        "Search program nested too deeply"
    )
    # NOT chains build a tree as deep as they are long.
    assert isinstance(key_of(b"NOT " * (deep - 1) + b"SEEN"), Not)
    assert error(b"a SEARCH " + b"NOT " * deep + b"SEEN").message == (
        "Search program nested too deeply"
    )
    # Alternating lists and ORs cannot be flattened either: each level is two deeper (so
    # half as many levels suffice, which keeps the keys under MAX_SEARCH_KEYS).
    nested = b"SEEN"
    for _ in range(deep // 2 + 1):
        nested = b"OR DRAFT (FLAGGED " + nested + b")"
    assert error(b"a SEARCH " + nested).message == "Search program nested too deeply"


# Linear parsing takes milliseconds; a quadratic one would run into this bound by far.
@pytest.mark.timeout(30)
def test_long_or_chains_are_flat_and_fast() -> None:
    longest = (MAX_SEARCH_KEYS - 1) // 2  # each OR is a key, and one more ends the chain
    left = key_of(b"OR " * longest + b"SEEN" + b" UID 1" * longest)
    right = key_of(b"OR SEEN " * longest + b"DRAFT")
    assert isinstance(left, Or)
    assert len(left.keys) == longest + 1
    assert isinstance(right, Or)
    assert len(right.keys) == longest + 1
    # Beyond the bound a program is refused, however it is nested, before it grows further.
    for program in (b"OR " * 20000 + b"SEEN" + b" UID 1" * 20000, b"OR SEEN " * 20000 + b"DRAFT"):
        refused = error(b"a SEARCH " + program)
        assert (refused.code, refused.tag) == ("LIMIT", "a")
    assert needs(left).headers is False
