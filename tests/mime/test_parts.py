"""mailgate.mime.parts: the part tree as BODYSTRUCTURE and sections show it, search text,
broken input and the bounds on hostile input."""

from __future__ import annotations

import pytest

import mailgate.mime.parts
from mailgate.mime.headers import MAX_STRUCTURED
from mailgate.mime.imapview import extract_section, index_message
from mailgate.mime.parts import MAX_DEPTH, MAX_PARTS, body_text
from tests.mime.helpers import crlf, json_nodes, parse_wire, section

# ---------------------------------------------------------------------------------------------
# Boundaries (RFC 2046 §5.1.1)


def test_delimiter_rules() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX  \t\n"  # transport padding after the delimiter
        b"\none\n--XXY is not a delimiter\n"  # a longer boundary-like line stays content
        b"--XX\n"
        b"--XX\n"  # two delimiters in a row: an empty part between them
        b"\nthree\n\n"  # the last CRLF belongs to the close delimiter, the one before is data
        b"--XX--   \n"
        b"--XX\n\nepilogue is not a part\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (1,)) == b"one\r\n--XXY is not a delimiter"
    assert section(raw, ix, (2,)) == b""
    assert section(raw, ix, (2,), "MIME") == b""
    assert section(raw, ix, (3,)) == b"three\r\n"
    assert section(raw, ix, (4,)) is None


def test_boundary_params_are_unfolded_and_case_sensitive() -> None:
    raw = crlf(
        b'Content-Type: multipart/mixed; BOUNDARY="foo\n bar"\n\n'
        b"--FOO BAR\n\nnot a delimiter above\n--foo bar\n\npart\n--foo bar--\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (1,)) == b"part"
    assert section(raw, ix, (2,)) is None


def test_missing_close_delimiter_ends_last_part_at_end_of_body() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\n\nfirst\n--XX\nContent-Type: text/plain\n\nsecond\nand more\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (2,)) == b"second\r\nand more\r\n"
    structure = parse_wire(ix.bodystructure)
    assert structure[1][6:8] == [18, 2]


def test_missing_inner_close_delimiter_stops_at_outer_delimiter() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=o\n\n"
        b"--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\nA\n"
        b"--o\n\nB\n--o--\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (1, 1)) == b"A"
    assert section(raw, ix, (2,)) == b"B"


@pytest.mark.parametrize(
    "content_type",
    [b"multipart/mixed", b"multipart/mixed; boundary=never-used", b'multipart/mixed; boundary=""'],
)
def test_multipart_without_usable_boundary_is_a_text_leaf(content_type: bytes) -> None:
    raw = crlf(b"Content-Type: " + content_type + b"\n\n--other\n\nhello\n")
    ix = index_message(raw)
    assert ix.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 3 NIL NIL NIL NIL)'
    )
    assert section(raw, ix, (1,)) == b"--other\r\n\r\nhello\r\n"
    assert json_nodes(ix.parts) == 1


# ---------------------------------------------------------------------------------------------
# Parameters: RFC 2231


def test_rfc2231_continuations_and_charset_are_decoded() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: application/octet-stream;\n"
        b" name*0*=utf-8''%E2%82%AC%20rates; name*1*=%20.txt\n"
        b'Content-Disposition: attachment; filename*0="long "; filename*1="name.txt";\n'
        b' filename="fallback.txt"\n'
        b"\n"
        b"data\n--b\n"
        b"Content-Type: text/plain; title*=us-ascii'en'This%20is%20%2A%2A%2Afun%2A%2A%2A\n"
        b"\n"
        b"x\n--b--\n"
    )
    structure = parse_wire(index_message(raw).bodystructure)
    attachment, text = structure[0], structure[1]
    assert attachment[2] == [b"name", "\u20ac rates .txt".encode()]
    assert attachment[8] == [b"attachment", [b"filename", b"long name.txt"]]
    assert text[2] == [b"charset", b"us-ascii", b"title", b"This is ***fun***"]
    # The 8-bit UTF-8 value goes out as a literal, not as a broken quoted string.
    assert b'"name" {14}\r\n\xe2\x82\xac rates .txt' in index_message(raw).bodystructure


def test_params_quoting_comments_and_duplicates() -> None:
    raw = crlf(
        b'Content-Type: text/plain (comment; here) ; charset="utf-8" (x);\n'
        b' format=flowed; name="semi;colon \\"q\\".txt"; charset=latin1\n\nbody\n'
    )
    structure = parse_wire(index_message(raw).bodystructure)
    assert structure[2] == [
        b"charset",
        b"utf-8",
        b"format",
        b"flowed",
        b"name",
        b'semi;colon "q".txt',
    ]


def test_invalid_content_type_and_encoding_fall_back_to_defaults() -> None:
    raw = crlf(b"Content-Type: text\nContent-Transfer-Encoding: ?bad\n\nx\n")
    assert index_message(raw).bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1 NIL NIL NIL NIL)'
    )


# ---------------------------------------------------------------------------------------------
# Search text


def test_body_text_decodes_transfer_encodings_and_charsets() -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        b"Y2Fmw6kgYmFzZTY0\n"
        b"--b\nContent-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        b"caf=E9 q=\np\n"
        b"--b\nContent-Type: text/plain; charset=x-no-such-charset\n\nunknown \xc3\xa9\n"
        b"--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\naGlkZGVu\n"
        b"--b\nContent-Type: text/plain; charset=rot13\n\nnot rotated\n"
        b"--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!w6k=x\n"
        b"--b--\n"
    )
    assert body_text(raw).split("\n") == [
        "caf\u00e9 base64",
        "caf\u00e9 qp",
        "unknown \u00e9",  # unknown charset: UTF-8
        "not rotated",  # a codec that is not a text encoding is no charset
        "\u00e9",  # junk in base64 is skipped
    ]


def test_body_text_of_empty_and_non_text_messages() -> None:
    assert body_text(b"") == ""
    assert body_text(crlf(b"Content-Type: application/pdf\n\n%PDF\n")) == ""


# ---------------------------------------------------------------------------------------------
# Broken input


def test_no_blank_line_means_all_header() -> None:
    raw = b"Subject: x\r\nFrom: a@b"
    ix = index_message(raw)
    assert ix.header == raw
    assert section(raw, ix, (), "TEXT") == b""
    assert section(raw, ix, (), "HEADER") == raw
    assert parse_wire(ix.envelope)[1] == b"x"
    assert ix.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
    )


def test_empty_message() -> None:
    ix = index_message(b"")
    assert ix.size == 0
    assert ix.header == b""
    assert ix.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
    )
    assert section(b"", ix, (), "TEXT") == b""
    assert section(b"", ix, (1,)) == b""


def test_message_without_header_fields() -> None:
    raw = b"\r\nbody\r\n"
    ix = index_message(raw)
    assert ix.header == b"\r\n"
    assert section(raw, ix, (), "TEXT") == b"body\r\n"


def test_garbage_bytes() -> None:
    raw = bytes(range(256)) * 4
    ix = index_message(raw)
    parse_wire(ix.bodystructure)
    parse_wire(ix.envelope)


def test_deep_multipart_nesting_is_bounded() -> None:
    levels = 200
    raw = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(levels)
    )
    raw += b"\r\ninnermost\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels)))
    ix = index_message(raw)
    structure = parse_wire(ix.bodystructure)
    depth = 0
    while isinstance(structure[0], list):
        structure = structure[0]
        depth += 1
    assert depth == MAX_DEPTH
    assert structure[:2] == [b"text", b"plain"]  # the unparsed rest, reported as text
    assert extract_section(raw, ix.parts, (1,) * MAX_DEPTH, "") is not None
    assert extract_section(raw, ix.parts, (1,) * (MAX_DEPTH + 1), "") is None


def test_deep_rfc822_nesting_is_bounded() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * 300 + b"Subject: bottom\r\n\r\nx"
    ix = index_message(raw)
    parse_wire(ix.bodystructure)
    assert ix.bodystructure.count(b'"rfc822"') == MAX_DEPTH
    assert b"bottom" not in ix.bodystructure
    assert body_text(raw).endswith("x")


def test_false_delimiter_lines_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = crlf(
        b"Content-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\n\none\n" + b"--XXjunk\n" * 4 + b"--XX\n\ntwo\n--XX--\n"
    )
    ix = index_message(raw)
    assert section(raw, ix, (2,)) == b"two"
    monkeypatch.setattr(mailgate.mime.parts, "MAX_FALSE_DELIMITERS", 3)
    ix = index_message(raw)
    # Past the budget, scanning stops as if the close delimiter were missing.
    assert (
        section(raw, ix, (1,))
        == b"one\r\n" + b"--XXjunk\r\n" * 4 + b"--XX\r\n\r\ntwo\r\n--XX--\r\n"
    )
    assert section(raw, ix, (2,)) is None


@pytest.mark.parametrize(
    "field",
    [
        b"From: " + b"(" * 300_000,
        b"To: " + b"a@b, " * 100_000,
        b'Content-Type: text/plain; name="' + b"x;" * 200_000,
        b"Content-Type: multipart/mixed; " + b"(" * 300_000 + b" boundary=b",
        b"Content-Language: " + b"en," * 200_000,
    ],
)
def test_huge_structured_fields_are_bounded(field: bytes) -> None:
    # Only MAX_STRUCTURED bytes of a structured field are parsed (no timing assertion here;
    # the benchmark script measures it).
    raw = field + b"\r\n\r\n--b\r\n\r\nx\r\n"
    ix = index_message(raw)
    assert len(parse_wire(ix.envelope)) == 10
    assert parse_wire(ix.bodystructure)[0] in (b"text", [b"text"])
    assert len(ix.bodystructure) < 2 * MAX_STRUCTURED


def test_part_count_is_bounded() -> None:
    count = MAX_PARTS + 500
    raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + b"--p\r\n\r\nx\r\n" * count
    ix = index_message(raw)
    structure = parse_wire(ix.bodystructure)
    leaves = [item for item in structure if isinstance(item, list) and item[:1] == [b"text"]]
    assert len(leaves) == MAX_PARTS - 1  # the top-level multipart counts too
    assert extract_section(raw, ix.parts, (MAX_PARTS - 1,), "") == b"x"
    assert extract_section(raw, ix.parts, (MAX_PARTS,), "") is None
