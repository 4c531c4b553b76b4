"""mailgate.mime.headers: line ends, HEADER.FIELDS, field values for SEARCH."""

from __future__ import annotations

import pytest

from mailgate.mime.headers import header_fields, header_values, msg_ids, normalize_crlf
from tests.mime.helpers import crlf

# ---------------------------------------------------------------------------------------------
# Line endings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd"),
        (b"a\r\r\nb", b"a\r\n\r\nb"),
        (b"", b""),
        (b"no line end", b"no line end"),
    ],
)
def test_normalize_crlf(given: bytes, expected: bytes) -> None:
    assert normalize_crlf(given) == expected


def test_normalize_crlf_returns_clean_input_unchanged() -> None:
    raw = b"Subject: x\r\n\r\nbody\r\n"
    assert normalize_crlf(raw) is raw


# ---------------------------------------------------------------------------------------------
# Header fields (HEADER.FIELDS and SEARCH)

HEADER = crlf(
    b"Received: from a\n\tby b\n"
    b"From: Alice <alice@example.com>\n"
    b"Subject: first line\n  continued\n"
    b"X-Spam: yes\n"
    b"received: again\n"
    b"SUBJECT : second\n"
    b"\n"
)


def test_header_fields_keeps_original_bytes_order_and_continuations() -> None:
    assert header_fields(HEADER, ("subject", "From")) == (
        b"From: Alice <alice@example.com>\r\n"
        b"Subject: first line\r\n  continued\r\n"
        b"SUBJECT : second\r\n"
        b"\r\n"
    )


def test_header_fields_not() -> None:
    assert header_fields(HEADER, ("Received", "Subject", "From"), exclude=True) == (
        b"X-Spam: yes\r\n\r\n"
    )
    assert header_fields(HEADER, (), exclude=True) == HEADER


def test_header_fields_without_matches_is_the_blank_line() -> None:
    assert header_fields(HEADER, ("Cc",)) == b"\r\n"
    assert header_fields(HEADER, ()) == b"\r\n"
    assert header_fields(b"", ("From",)) == b"\r\n"
    assert header_fields(b"", ("From",), exclude=True) == b"\r\n"


def test_header_fields_does_not_match_prefixes() -> None:
    header = crlf(b"From-Agent: x\nFromage: y\nX-From: z\nFrom: w\n\n")
    assert header_fields(header, ("From",)) == b"From: w\r\n\r\n"


def test_header_fields_on_a_header_without_blank_line() -> None:
    assert header_fields(b"A: 1\r\nB: 2", ("B",)) == b"B: 2\r\n\r\n"
    assert header_fields(b"A: 1\r\nB: 2", ("B",), exclude=True) == b"A: 1\r\n\r\n"


def test_header_values() -> None:
    assert header_values(HEADER, "subject") == ["first line  continued", "second"]
    assert header_values(HEADER, "Received") == ["from a\tby b", "again"]
    assert header_values(HEADER, "Cc") == []
    assert header_values(crlf(b"Subject: caf\xe9\n\n"), "Subject") == ["caf\ufffd"]


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        (b"Re: =?iso-8859-1?q?caf=E9?= ok", "Re: caf\u00e9 ok"),
        (b"=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "\u00e9"),  # one character split over two words
        (b"=?utf-8?b?w6k=?==?utf-8?q?_x?=", "\u00e9 x"),
        (b"=?x-unknown?q?abc?=", "abc"),
        (b"=?utf-8?b?!!!?=", ""),
        (b"=?utf-8?b?w6?=", "\ufffd"),  # truncated base64: what decodes, decodes
        (b"=?utf-8*en?q?hi?=", "hi"),
        (b"a =?utf-8?q?b?= c", "a b c"),
        (b"=?broken", "=?broken"),
    ],
)
def test_rfc2047_decoding(value: bytes, decoded: str) -> None:
    assert header_values(b"Subject: " + value + b"\r\n\r\n", "Subject") == [decoded]


# ---------------------------------------------------------------------------------------------
# msg-ids (RFC 5322 §3.6.4)


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        (b"<a@b.example>", ["<a@b.example>"]),
        (b"<a@b> <c@d>\t<e@f>", ["<a@b>", "<c@d>", "<e@f>"]),
        (b"<a@b><c@d>", ["<a@b>", "<c@d>"]),  # no space between them
        (b"<a@b> (a comment <x@y>) <c@d>", ["<a@b>", "<c@d>"]),
        (b"(lead) <a@b> (nested (comment)) ", ["<a@b>"]),
        (b"<a@b>\r\n <c@d>", ["<a@b>", "<c@d>"]),  # still folded
        (b"<a . b@c>", ["<a.b@c>"]),  # obs-id-left: CFWS around the dots
        (b'Your message of "Mon, 1 Jan" <a@b>', ["<a@b>"]),  # RFC 822 phrases are skipped
        (b"a@b.example", ["<a@b.example>"]),  # one bare token: brackets added
        (b"  a@b.example  ", ["<a@b.example>"]),
        (b"a@b c@d", []),  # two bare tokens: not a msg-id list
        (b"none", []),
        (b"<>", []),
        (b"<> a@b", []),
        (b"<a@b", []),  # unterminated
        (b"a@b>", []),
        (b"", []),
        (b"<\xff@x>", ["<\ufffd@x>"]),
    ],
)
def test_msg_ids(value: bytes, ids: list[str]) -> None:
    assert msg_ids(value) == ids


def test_msg_ids_of_a_huge_value_never_raise() -> None:
    assert msg_ids(b"<" * 100_000 + b"(" * 100_000) == []
    assert len(msg_ids(b"<a@b>" * 20_000)) == 20_000
