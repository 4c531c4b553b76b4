"""Property-based fuzzing of the IMAP command parser and its search and sequence-set grammar:
whatever the bytes, a Request or ParseError (tests/fuzz/targets.py, check_request); and what
the server writes (sequence sets, sections, mailbox names, dates) reads back as it was meant."""

from __future__ import annotations

import datetime as dt

from hypothesis import assume, example, given
from hypothesis import strategies as st

from mailgate.imap.syntax.commands import parse_request, parse_section
from mailgate.imap.syntax.reader import Reader
from mailgate.imap.syntax.values import (
    ParseError,
    Search,
    Section,
    SeqKey,
    SeqRange,
    SequenceSet,
    UidKey,
    dialect,
)
from mailgate.imap.wire import internaldate, mailbox, uid_set
from tests.fuzz.targets import COMMAND_WORDS, NOISE, SEARCH_WORDS, VALID_COMMANDS, check_request

# ---------------------------------------------------------------------------------------------
# Commands built from the grammar's pieces, some of them literals, and junk between them

_ATOMS = [w.strip() for w in COMMAND_WORDS + SEARCH_WORDS] + [
    b"INBOX",
    b"NIL",
    b"RETURN",
    b"(MIN MAX COUNT ALL SAVE)",
    b"CHARSET",
    b"UTF-8",
    b"KOI8-R",
    b"$",
    b"1:*",
    b"*:4294967295",
    b"2,4:6,*",
    b"BODY[1.2.MIME]<0.10>",
    b"BINARY[]",
    b"(CHANGEDSINCE 1 VANISHED)",
    b"+FLAGS.SILENT",
    b"(\\Seen \\Recent \\Frob $k)",
    b'"1-Jan-2024 10:00:00 +0100"',
    b"31-Feb-2024",
    b"OLDER 0",
    b"THREADID T1",
    b'"quoted \\" string"',
]
_piece = st.one_of(
    st.sampled_from(_ATOMS + NOISE),
    st.binary(max_size=8),
    st.integers(min_value=0, max_value=2**64).map(lambda n: str(n).encode()),
)
# A literal: (data, LITERAL+?, the size announced differs by this much).
_literal = st.tuples(st.binary(max_size=16), st.booleans(), st.sampled_from([0, 0, 0, 0, 1, -1]))


@st.composite
def commands(draw: st.DrawFn) -> list[bytes]:
    """A framed command: [line, literal, line, ...], as the server hands it to the parser."""
    tag = draw(st.sampled_from([b"a1", b"*", b"+", b"x.y", b"", b"\xff"]))
    uid = draw(st.sampled_from([b"", b"UID "]))
    name = draw(st.sampled_from([w.split()[-1] for w in COMMAND_WORDS] + [b"NOOP", b"XYZZY"]))
    chunks: list[bytes] = []
    line = tag + b" " + uid + name
    for item in draw(st.lists(st.one_of(_piece, _literal), max_size=12)):
        sep = draw(st.sampled_from([b" ", b" ", b" ", b"", b"  "]))
        if isinstance(item, tuple):
            data, plus, skew = item
            size = max(0, len(data) + skew)
            chunks += [line + sep + b"{%d%s}" % (size, b"+" if plus else b""), data]
            line = b""
        else:
            line += sep + item
    chunks.append(line)
    return chunks


@given(commands())
def test_commands_from_the_grammar(chunks: list[bytes]) -> None:
    check_request(chunks)


@given(st.sampled_from(VALID_COMMANDS), st.data())
def test_valid_commands_with_bytes_changed(seed: list[bytes], data: st.DataObject) -> None:
    chunks = list(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(chunks) - 1))
        at = data.draw(st.integers(0, len(chunks[i])))
        cut = data.draw(st.integers(0, 4))
        chunks[i] = chunks[i][:at] + data.draw(st.binary(max_size=6)) + chunks[i][at + cut :]
    check_request(chunks)


@given(st.binary(max_size=200))
@example(b"a SEARCH " + b"(" * 150 + b"ALL" + b")" * 150)
@example(b"a SEARCH " + b"OR " * 300 + b"ALL " * 301)
def test_any_line(line: bytes) -> None:
    check_request([line])


# ---------------------------------------------------------------------------------------------
# The search program and sequence sets

_number = st.integers(min_value=1, max_value=2**32 - 1)
_seq_number = st.one_of(_number, st.none())  # None is "*"


def _seq_text(ranges: list[tuple[int | None, int | None]]) -> bytes:
    def n(v: int | None) -> str:
        return "*" if v is None else str(v)

    return ",".join(n(a) if a == b else f"{n(a)}:{n(b)}" for a, b in ranges).encode()


@given(st.lists(st.tuples(_seq_number, _seq_number), min_size=1, max_size=20), _number)
def test_sequence_sets_parse_to_what_they_say(
    ranges: list[tuple[int | None, int | None]], largest: int
) -> None:
    request = parse_request([b"a UID SEARCH UID " + _seq_text(ranges)])
    assert isinstance(request.args, Search)
    assert isinstance(request.args.key, UidKey)
    sequence = request.args.key.sequence
    members = set()
    for a, b in ranges:
        low, high = sorted((largest if a is None else a, largest if b is None else b))
        if high - low < 1000:
            members.update(range(low, high + 1))
    for value in [*list(members)[:50], 1, largest, largest + 1]:
        inside = any(
            min(x, y) <= value <= max(x, y)
            for x, y in (
                (largest if a is None else a, largest if b is None else b) for a, b in ranges
            )
        )
        assert sequence.contains(value, largest) == inside, value


@given(st.lists(_number, min_size=1, max_size=50, unique=True))
def test_uid_sets_the_server_writes_read_back(uids: list[int]) -> None:
    """COPYUID, ESEARCH and VANISHED carry uid_set(); a client reads it back with the same
    grammar (the reader's sequence_set)."""
    text = uid_set(sorted(uids))
    reader = Reader([text])
    parsed = reader.sequence_set()
    reader.finish()
    assert not parsed.saved
    spans = parsed.resolve(max(uids))
    assert [u for low, high in spans for u in range(low, high + 1)] == sorted(uids)


@given(st.lists(_seq_number, min_size=1, max_size=8))
def test_a_bare_sequence_set_is_a_search_key(numbers: list[int | None]) -> None:
    request = parse_request([b"a SEARCH " + _seq_text([(n, n) for n in numbers])])
    assert isinstance(request.args, Search)
    assert request.args.key == SeqKey(SequenceSet(tuple(SeqRange(n, n) for n in numbers)))


# ---------------------------------------------------------------------------------------------
# What the server writes, read back with the parser's grammar


_field = st.from_regex(rb"[A-Za-z0-9-]{1,20}", fullmatch=True).map(lambda b: b.decode().upper())


@st.composite
def sections(draw: st.DrawFn) -> Section:
    part = tuple(draw(st.lists(_number, max_size=5)))
    choices = ["", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"] + (
        ["MIME"] if part else []
    )
    specifier = draw(st.sampled_from(choices))
    fields: tuple[str, ...] = ()
    if specifier.startswith("HEADER.FIELDS"):
        fields = tuple(draw(st.lists(_field, min_size=1, max_size=5)))
    return Section(part, specifier, fields)


@given(sections())
def test_sections_echoed_in_fetch_responses_read_back(section: Section) -> None:
    assert parse_section(section.render().encode()) == section


@given(st.text(max_size=40), st.booleans())
def test_mailbox_names_read_back(name: str, utf8: bool) -> None:
    """A name as LIST writes it (modified UTF-7, or UTF-8 once the session enabled it; quoted
    or a literal) reads back as itself."""
    # Lone surrogates: UTF-8 cannot carry them (modified UTF-7 can, and they are refused).
    assume(not (utf8 and any(0xD800 <= ord(c) < 0xE000 for c in name)))
    wire = mailbox(name, utf8)
    if wire.startswith(b"{"):
        head, data = wire.split(b"\r\n", 1)
        chunks = [b"a SELECT " + head, data, b""]
    else:
        chunks = [b"a SELECT " + wire]
    session = dialect(utf8, False)
    check_request(chunks, session)  # a refusal is a ParseError, never anything else
    try:
        request = parse_request(chunks, session)
    except ParseError:
        # Only names no mailbox can have are refused: with control characters, or lone
        # surrogates that UTF-16 cannot carry.
        refusable = [
            c for c in name if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000
        ]
        assert refusable, name
        return
    expected = "INBOX" if name.upper() == "INBOX" else name
    assert request.args.mailbox == expected  # type: ignore[union-attr]


_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


@given(
    st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 30)),
    _offsets,
)
def test_internal_dates_read_back(when: dt.datetime, minutes: int) -> None:
    """INTERNALDATE as FETCH writes it is what APPEND reads (a client copying a message)."""
    zoned = when.replace(microsecond=0, tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    reader = Reader([internaldate(zoned)])
    assert reader.date_time() == zoned
    reader.finish()
