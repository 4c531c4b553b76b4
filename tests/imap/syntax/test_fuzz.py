"""Fuzzing the whole parser: whatever the bytes, only ParseError escapes parse_request."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

import pytest

from mailgate.imap.matching import matches, needs
from mailgate.imap.syntax.commands import parse_request, parse_tag
from mailgate.imap.syntax.values import (
    REV1,
    CopyMove,
    Dialect,
    Fetch,
    ParseError,
    Search,
    StoreFlags,
    UidExpunge,
    dialect,
)

_VALID: list[list[bytes]] = [
    [b"a1 LOGIN {5}", b"alice", b" {3+}", b"key", b""],
    [b'a2 LOGIN "al\\"ice" secret'],
    [b"a3 AUTHENTICATE PLAIN AGFsaWNlAGtleQ=="],
    [b"a4 SELECT INBOX (CONDSTORE)"],
    [b"a5 EXAMINE Entw&APw-rfe"],
    [b"a6 CREATE Archive/2024"],
    [b"a7 RENAME {3}", b"old", b' "new"'],
    [b'a8 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("*" %) RETURN (CHILDREN STATUS (MESSAGES))'],
    [b'a9 LSUB "" *'],
    [b"b1 STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"],
    [
        b'b2 APPEND INBOX (\\Seen $x) " 1-Jan-2024 10:00:00 +0100" {5}',
        b"hello",
        b" {2}",
        b"hi",
        b"",
    ],
    [b"b3 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM {4}", b"\xc3\xa4bc", b" NOT (SEEN 1:*)"],
    [b"b4 UID SEARCH OR OR HEADER X-A b SINCE 1-Jan-2024 LARGER 5 UID 3:* MODSEQ 5"],
    [b"b5 FETCH 1:*,7 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (FROM TO)]<0.100>) (CHANGEDSINCE 3)"],
    [b"b6 UID FETCH 1 (BINARY.PEEK[1]<0.1> BINARY.SIZE[2] BODY[1.MIME] RFC822.SIZE)"],
    [b"b7 STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS.SILENT (\\Deleted foo)"],
    [b"b8 UID MOVE 1:* Trash"],
    [b"b9 UID EXPUNGE 4:2"],
    [b'c1 ID ("name" "x" "version" NIL)'],
    [b"c2 ENABLE CONDSTORE"],
    [b"c3 IDLE"],
    [b"c4 FETCH 2 FULL"],
    [b"c5 UID SORT RETURN (MIN ALL) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 OR 1:3 FROM x"],
    [b"c6 THREAD REFERENCES US-ASCII NOT DELETED"],
]
# Valid only once UTF-8 is enabled (UTF8=ACCEPT or IMAP4rev2).
_VALID_UTF8: list[list[bytes]] = [
    [b"d1 APPEND INBOX UTF8 (~{5}", b"hello", b")"],
    [b"d2 APPEND INBOX CATENATE (UTF8 (~{2}", b"hi", b") TEXT {1}", b"x", b")"],
    ['d3 CREATE "Entwürfe/R&D"'.encode()],
    ['d4 LIST "" "日本%"'.encode()],
]
_NOISE = [
    b" ",
    b"(",
    b")",
    b'"',
    b"\\",
    b"{",
    b"}",
    b"{3}",
    b"{0}",
    b"~{1}",
    b"[",
    b"]",
    b"<",
    b">",
    b".",
    b":",
    b",",
    b"*",
    b"%",
    b"$",
    b"&",
    b"-",
    b"+",
    b"=",
    b"0",
    b"4294967296",
    b"9" * 30,
    b"NIL",
    b"OR ",
    b"NOT ",
    b"(((",
    b"UID ",
    b"BODY[",
    b"HEADER.FIELDS (",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"\xc3\xa4",
    b"&AOQ-",
    b"&",
    b"\r\n",
]


def _mutate(rng: random.Random, chunks: list[bytes]) -> list[bytes]:
    chunks = list(chunks)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chunks))
        data = bytearray(chunks[i])
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(_NOISE)
        elif op == 2:
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            data[pos:pos] = data[rng.randint(0, len(data)) :][: rng.randint(1, 20)]
        elif op == 4:
            del data[pos:]
        elif op == 5 and i % 2 == 0 and i + 1 < len(chunks):
            chunks[i + 1] = chunks[i + 1][: rng.randint(0, len(chunks[i + 1]))]
        elif op == 6 and i % 2 == 0:  # split a line into a literal
            n = rng.randint(0, 5)
            head = bytes(data[:pos]) + b"{%d%s}" % (n, rng.choice([b"", b"+"]))
            literal = bytes(rng.randrange(256) for _ in range(n))
            chunks[i : i + 1] = [head, literal, bytes(data[pos:])]
            continue
        chunks[i] = bytes(data)
    if rng.random() < 0.02:
        chunks = chunks[: rng.randint(0, len(chunks))]
    return chunks


def _random_command(rng: random.Random) -> list[bytes]:
    parts = [rng.choice([b"a1 ", b"* ", b"x "]), rng.choice(list(_COMMAND_WORDS))]
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.3:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))))
        else:
            parts.append(rng.choice(_NOISE + _SEARCH_WORDS))
    return [b"".join(parts)]


_COMMAND_WORDS = [
    b"LOGIN ",
    b"SELECT ",
    b"LIST ",
    b"STATUS x ",
    b"APPEND x ",
    b"SEARCH ",
    b"UID SEARCH ",
    b"SORT ",
    b"UID SORT (DATE) UTF-8 ",
    b"THREAD REFS ",
    b"FETCH 1 ",
    b"UID FETCH * ",
    b"STORE 1 ",
    b"COPY 1 ",
    b"ID ",
    b"ENABLE ",
    b"AUTHENTICATE ",
]
_SEARCH_WORDS = [
    b"ALL ",
    b"SEEN ",
    b"FROM x ",
    b"HEADER a b ",
    b"BEFORE 1-Jan-2020 ",
    b"1:* ",
    b"LARGER 1 ",
    b"MODSEQ 1 ",
    b"KEYWORD k ",
    b"(FLAGS ",
    b"BODY.PEEK[HEADER] ",
    b"+FLAGS ",
    b"RETURN (MIN) ",
    b"CHARSET UTF-8 ",
    b"(REVERSE ",
    b"ARRIVAL) ",
    b"UTF-8 ",
]


class _AnyMessage:
    seq, uid, size, modseq = 3, 30, 1000, 9
    flags = frozenset({"\\Seen", "$Junk"})
    internaldate = datetime(2024, 1, 1, 12, tzinfo=UTC)
    sent_date = None

    def header_values(self, name: str) -> list[str]:
        return ["x"]

    def header_text(self) -> str:
        return "From: x\r\n"

    def body_text(self) -> str:
        return "hello"


def _check(chunks: list[bytes], dialect: Dialect = REV1) -> None:
    failure: ParseError | None = None
    try:
        request = parse_request(chunks, dialect)
    except ParseError as exc:
        failure = exc
    except Exception as exc:  # pragma: no cover - the assertion is the report
        raise AssertionError(f"{type(exc).__name__} escaped for {chunks!r}") from exc
    if failure is not None:
        assert failure.__cause__ is None, f"internal error {failure.__cause__!r} for {chunks!r}"
        assert failure.tag == parse_tag(chunks), chunks
        assert failure.message.isascii(), chunks
        assert failure.message.isprintable(), chunks
        assert len(failure.message) < 80, chunks
        return
    # Whatever parses must also be usable downstream without surprises.
    value = request.args
    if isinstance(value, Fetch):
        for item in value.items:
            item.response_name()
        value.sequence.resolve(5)
    elif isinstance(value, Search):
        needs(value.key)
        matches(value.key, _AnyMessage(), 5, 50)
    elif isinstance(value, StoreFlags | CopyMove | UidExpunge):
        value.sequence.resolve(0)
        value.sequence.contains(3, 5)


def test_fuzz_only_parse_error_escapes() -> None:
    """Random mutations of valid commands and random junk (fixed seed). Set
    MAILGATE_FUZZ_SECONDS to run longer."""
    rng = random.Random(3501)
    budget = float(os.environ.get("MAILGATE_FUZZ_SECONDS", "2"))
    for chunks in _VALID:
        parse_request(chunks)  # the seeds themselves are valid
    for chunks in _VALID_UTF8:
        parse_request(chunks, dialect(True, True))
    deadline = time.monotonic() + budget
    runs = 0
    while time.monotonic() < deadline or runs < 2000:
        roll = rng.random()
        if roll < 0.6:
            chunks = _mutate(rng, rng.choice(_VALID + _VALID_UTF8))
        elif roll < 0.85:
            chunks = _random_command(rng)
        else:
            chunks = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))]
        # Every dialect a session can be in (what ENABLE turned on).
        _check(chunks, dialect(rng.random() < 0.5, rng.random() < 0.5))
        runs += 1


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a SEARCH " + b"(" * 100000],
        [b"a SEARCH " + b"NOT " * 100000 + b"ALL"],
        [b"a SEARCH " + b"OR " * 100000],
        [b"a SEARCH " + b"(OR SEEN " * 30000],
        [b"a FETCH 1 BODY[" + b"1." * 50000 + b"1]"],
        [b"a FETCH " + b"1," * 100000 + b"1 FLAGS"],
        [b"a STORE 1 FLAGS " + b"x " * 50000],
        [b"a LOGIN " + b"{99999999999}"],
        [b"a LIST " + b"(" * 10000],
    ],
)
@pytest.mark.timeout(30)  # a hang guard, not a speed check: quadratic work would take hours
def test_hostile_inputs(chunks: list[bytes]) -> None:
    _check(chunks)


@pytest.mark.parametrize(
    "chunks",
    [["a NOOP"], [None], [b"a LOGIN {1}", None, b""], [b"a NOOP", 5, b""]],
)
def test_wrong_types_still_raise_parse_error(chunks: list[object]) -> None:
    with pytest.raises(ParseError):
        parse_request(chunks)  # type: ignore[arg-type]
